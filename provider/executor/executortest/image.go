package executortest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	imageOnce sync.Once
	imagePath string
	imageID   string
	imageErr  error
)

// ImageArchive returns the path of a `docker save` archive of a FROM-scratch
// image holding testprog at /testprog, and the image's ID ("sha256:<hex>"),
// as a tenant would upload it. It is built without a Docker daemon, once per
// test process, and cached beside the testprog binary; the same source gives
// the same archive and ID.
func ImageArchive(tb testing.TB) (path, id string) {
	tb.Helper()
	p, id, err := TestImageArchive()
	if err != nil {
		tb.Fatalf("build test image archive: %v", err)
	}
	return p, id
}

// TestImageArchive is ImageArchive for callers without a testing.TB.
func TestImageArchive() (path, id string, err error) {
	imageOnce.Do(func() { imagePath, imageID, imageErr = buildImageArchive() })
	return imagePath, imageID, imageErr
}

func buildImageArchive() (string, string, error) {
	prog, err := TestProg()
	if err != nil {
		return "", "", err
	}
	bin, err := os.ReadFile(prog)
	if err != nil {
		return "", "", err
	}
	// NB: fixed times and owners keep the layer, so the image ID, stable.
	epoch := time.Unix(0, 0).UTC()
	layer := tarOf([]tarFile{{name: "testprog", mode: 0o755, body: bin, mtime: epoch}})
	layerSum := sha256.Sum256(layer)
	layerHex := hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{"/testprog"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerHex}},
	})
	if err != nil {
		return "", "", err
	}
	configSum := sha256.Sum256(config)
	configHex := hex.EncodeToString(configSum[:])
	manifest, err := json.Marshal([]map[string]any{{
		"Config":   configHex + ".json",
		"RepoTags": []string{"kiln-executortest:archive"},
		"Layers":   []string{layerHex + "/layer.tar"},
	}})
	if err != nil {
		return "", "", err
	}
	archive := tarOf([]tarFile{
		{name: layerHex + "/", dir: true, mtime: epoch},
		{name: layerHex + "/layer.tar", mode: 0o644, body: layer, mtime: epoch},
		{name: configHex + ".json", mode: 0o644, body: config, mtime: epoch},
		{name: "manifest.json", mode: 0o644, body: manifest, mtime: epoch},
	})

	out := filepath.Join(filepath.Dir(prog), "image-"+configHex[:16]+".tar")
	id := "sha256:" + configHex
	if _, err := os.Stat(out); err == nil {
		return out, id, nil
	}
	tmp := out + ".tmp-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return "", "", err
	}
	return out, id, os.Rename(tmp, out)
}

type tarFile struct {
	name  string
	dir   bool
	mode  int64
	body  []byte
	mtime time.Time
}

func tarOf(files []tarFile) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: f.mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if f.dir {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		tw.WriteHeader(hdr)
		tw.Write(f.body)
	}
	tw.Close()
	return buf.Bytes()
}
