package docker

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/kiln-network/kiln/provider/executor"
)

// Errors of LoadImage: the executor package's, under the names callers of
// this package have used.
var (
	// ErrImageTooLarge is returned for an archive over the size limit.
	ErrImageTooLarge = executor.ErrImageTooLarge
	// ErrImageDigest is returned when the archive's image is not the one asked for.
	ErrImageDigest = executor.ErrImageDigest
	// ErrImageArchive is returned for an archive that is not one `docker save` image.
	ErrImageArchive = executor.ErrImageArchive
)

var (
	_ executor.ImageLoader  = (*Executor)(nil)
	_ executor.ImageRemover = (*Executor)(nil)
)

// manifestEntry is one image of a `docker save` archive's manifest.json.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// LoadImage loads a tenant-uploaded `docker save` archive holding exactly one
// image and returns its ID (the sha256 of its config); tasks then name the
// image by it. With wantID set ("sha256:<hex>" or "<hex>") the image must be
// that one; empty accepts whatever image the archive holds. Its errors do not
// repeat "load image": the caller names the step.
//
// The archive is spooled to a temporary file, at most maxBytes of it, and
// checked before the daemon sees it: size, one image, config digest. Its tags
// are stripped before loading, so that a tenant can never re-point a name
// (say "ubuntu:latest") that other leases use.
func (e *Executor) LoadImage(ctx context.Context, r io.Reader, maxBytes int64, wantID string) (string, error) {
	want := strings.TrimPrefix(wantID, "sha256:")
	if wantID != "" {
		if len(want) != 64 {
			return "", fmt.Errorf("want id %q: must be sha256:<64 hex>", wantID)
		}
		if _, err := hex.DecodeString(want); err != nil {
			return "", fmt.Errorf("want id %q: %w", wantID, err)
		}
	}
	spool, err := os.CreateTemp("", "kiln-image-*.tar")
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	n, err := io.Copy(spool, io.LimitReader(r, maxBytes+1))
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	if n > maxBytes {
		return "", fmt.Errorf("%w: over %d bytes", ErrImageTooLarge, maxBytes)
	}

	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("rewind spool: %w", err)
	}
	m, digests, err := scanArchive(spool)
	if err != nil {
		return "", err
	}
	if wantID == "" {
		// NB: the config's digest is the image's ID, so the check below
		// still proves the daemon loaded this archive's image.
		want = digests[m.Config]
	}
	if got := digests[m.Config]; got != want {
		return "", fmt.Errorf("%w: archive holds sha256:%s, want sha256:%s", ErrImageDigest, got, want)
	}

	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("rewind spool: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(untag(pw, spool)) }()
	res, err := e.cli.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		return "", fmt.Errorf("docker load: %w", err)
	}
	defer res.Close()
	if err := loadError(res); err != nil {
		return "", fmt.Errorf("docker load: %w", err)
	}
	ins, err := e.cli.ImageInspect(ctx, "sha256:"+want)
	if err != nil {
		return "", fmt.Errorf("inspect sha256:%s: %w", want, err)
	}
	if ins.ID != "sha256:"+want {
		return "", fmt.Errorf("%w: daemon has %s, want sha256:%s", ErrImageDigest, ins.ID, want)
	}
	e.log.Info("image loaded", "id", ins.ID, "bytes", n)
	return ins.ID, nil
}

// RemoveImage removes a loaded image once its lease ended. It keeps an image
// that has a tag (the operator's, never a tenant load's) or that a container
// still uses, and never forces.
func (e *Executor) RemoveImage(ctx context.Context, id string) error {
	ins, err := e.cli.ImageInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove image %s: inspect: %w", id, err)
	}
	if len(ins.RepoTags) > 0 {
		e.log.Info("image kept: it has tags", "id", id, "tags", ins.RepoTags)
		return nil
	}
	_, err = e.cli.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true})
	switch {
	case err == nil:
		e.log.Info("image removed", "id", id)
		return nil
	case cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		e.log.Info("image kept: in use", "id", id, "reason", err)
		return nil
	}
	return fmt.Errorf("remove image %s: %w", id, err)
}

// scanArchive reads a `docker save` archive and returns its single manifest
// entry and the sha256 of every regular file in it.
func scanArchive(r io.Reader) (manifestEntry, map[string]string, error) {
	var manifest []manifestEntry
	digests := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return manifestEntry{}, nil, fmt.Errorf("%w: %v", ErrImageArchive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(hdr.Name)
		if name == "manifest.json" {
			// 1 MiB: a manifest lists layer paths, nothing large.
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&manifest); err != nil {
				return manifestEntry{}, nil, fmt.Errorf("%w: manifest.json: %v", ErrImageArchive, err)
			}
			continue
		}
		h := sha256.New()
		if _, err := io.Copy(h, tr); err != nil {
			return manifestEntry{}, nil, fmt.Errorf("%w: %s: %v", ErrImageArchive, name, err)
		}
		digests[name] = hex.EncodeToString(h.Sum(nil))
	}
	if len(manifest) != 1 {
		return manifestEntry{}, nil, fmt.Errorf("%w: want exactly one image in manifest.json, got %d", ErrImageArchive, len(manifest))
	}
	m := manifest[0]
	m.Config = path.Clean(m.Config)
	if _, ok := digests[m.Config]; !ok {
		return manifestEntry{}, nil, fmt.Errorf("%w: config %s not in archive", ErrImageArchive, m.Config)
	}
	return m, digests, nil
}

// untag copies a `docker save` archive, dropping the tags from manifest.json,
// the legacy repositories file and the OCI index's image names.
func untag(w io.Writer, r io.Reader) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		switch name {
		case "repositories", "index.json", "oci-layout":
			// NB: without index.json the daemon reads the archive as a
			// docker-format one through manifest.json.
			continue
		case "manifest.json":
			var manifest []map[string]any
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&manifest); err != nil {
				return err
			}
			for _, m := range manifest {
				delete(m, "RepoTags")
			}
			b, err := json.Marshal(manifest)
			if err != nil {
				return err
			}
			hdr.Size = int64(len(b))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// loadError returns the error a `docker load` progress stream reports, if any.
func loadError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read progress: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
	}
}
