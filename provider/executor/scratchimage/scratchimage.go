// Package scratchimage builds the `docker save` archive of a FROM-scratch
// image that holds one program, without a Docker daemon.
package scratchimage

import (
	"archive/tar"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"time"
)

// Build returns the archive of an image for linux/arch whose only file is
// prog at /name, its entrypoint, beside an empty /tmp (mode 1777: Go's
// os.MkdirTemp, as most programs, needs one; docker gives none to a FROM
// scratch container), tagged tag (none if empty), and the image's ID
// ("sha256:<hex>"). Times and owners are fixed, so the same program gives the
// same archive and ID.
func Build(name string, prog []byte, arch, tag string) (archive []byte, id string, err error) {
	if name == "" || path.Base(name) != name {
		return nil, "", fmt.Errorf("scratch image: program name %q: must be one path element", name)
	}
	epoch := time.Unix(0, 0).UTC()
	layer := tarOf([]file{{name: "tmp/", dir: true, mode: 0o1777, mtime: epoch}, {name: name, mode: 0o755, body: prog, mtime: epoch}})
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{"/" + name}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerHex}},
	})
	if err != nil {
		return nil, "", fmt.Errorf("scratch image: %w", err)
	}
	configSum := sha256.Sum256(config)
	configHex := hex.EncodeToString(configSum[:])
	entry := map[string]any{"Config": configHex + ".json", "Layers": []string{layerHex + "/layer.tar"}}
	if tag != "" {
		entry["RepoTags"] = []string{tag}
	}
	manifest, err := json.Marshal([]map[string]any{entry})
	if err != nil {
		return nil, "", fmt.Errorf("scratch image: %w", err)
	}
	return tarOf([]file{
		{name: layerHex + "/", dir: true, mtime: epoch},
		{name: layerHex + "/layer.tar", mode: 0o644, body: layer, mtime: epoch},
		{name: configHex + ".json", mode: 0o644, body: config, mtime: epoch},
		{name: "manifest.json", mode: 0o644, body: manifest, mtime: epoch},
	}), "sha256:" + configHex, nil
}

type file struct {
	name  string
	dir   bool
	mode  int64
	body  []byte
	mtime time.Time
}

func tarOf(files []file) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: f.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if f.dir {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, cmp.Or(f.mode, 0o755), 0
		}
		// NB: writes to a bytes.Buffer cannot fail, nor can a header of these fields.
		tw.WriteHeader(hdr)
		tw.Write(f.body)
	}
	tw.Close()
	return buf.Bytes()
}
