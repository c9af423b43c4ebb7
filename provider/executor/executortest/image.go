package executortest

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-network/kiln/provider/executor/scratchimage"
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
	archive, id, err := scratchimage.Build("testprog", bin, runtime.GOARCH, "kiln-executortest:archive")
	if err != nil {
		return "", "", err
	}
	out := filepath.Join(filepath.Dir(prog), "image-"+strings.TrimPrefix(id, "sha256:")[:16]+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, id, nil
	}
	tmp := out + ".tmp-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return "", "", err
	}
	return out, id, os.Rename(tmp, out)
}
