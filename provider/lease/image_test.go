package lease_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/provider/vault"
)

// imageExec is the process executor with a fake image store: the archive's
// content is the image's ID.
type imageExec struct {
	executor.Executor
	mu      sync.Mutex
	removed []string
}

func (e *imageExec) LoadImage(_ context.Context, r io.Reader, max int64, want string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return "", err
	}
	if int64(len(b)) > max {
		return "", executor.ErrImageTooLarge
	}
	if want != "" && want != string(b) {
		return "", fmt.Errorf("%w: archive holds %s", executor.ErrImageDigest, b)
	}
	return string(b), nil
}

func (e *imageExec) RemoveImage(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removed = append(e.removed, id)
	return nil
}

func (e *imageExec) removedImages() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.removed)
}

func newImageManager(t *testing.T, ex executor.Executor, execDir string) *lease.Manager {
	t.Helper()
	dir := t.TempDir()
	v, err := vault.Open(vault.Config{Dir: filepath.Join(dir, "vault")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := lease.DefaultConfig()
	cfg.Dir, cfg.StopGrace = filepath.Join(dir, "state"), time.Second
	m, err := lease.New(cfg, ex, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// An image belongs to the leases that loaded it: only they may name it, and
// it is removed when the last of them stops.
func TestLeaseImages(t *testing.T) {
	ctx := context.Background()
	pcfg := process.DefaultConfig()
	pcfg.AllowUnisolated, pcfg.Dir = true, filepath.Join(t.TempDir(), "exec")
	pex, err := process.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("process executor", func(t *testing.T) {
		m := newImageManager(t, pex, pcfg.Dir)
		_, err := m.LoadImage(ctx, 1, strings.NewReader("x"), 10, "")
		if !errors.Is(err, api.ErrImagesUnsupported) {
			t.Errorf("LoadImage(process) = %v, want ErrImagesUnsupported", err)
		}
	})

	ex := &imageExec{Executor: pex}
	m := newImageManager(t, ex, pcfg.Dir)
	img := "sha256:" + strings.Repeat("ab", 32)
	other := "sha256:" + strings.Repeat("cd", 32)
	if _, err := m.LoadImage(ctx, 1, strings.NewReader(img), 10, ""); !errors.Is(err, api.ErrImageTooLarge) {
		t.Errorf("LoadImage(over max) = %v, want api.ErrImageTooLarge", err)
	}
	_, err = m.LoadImage(ctx, 1, strings.NewReader(img), 1<<10, other)
	if !errors.Is(err, api.ErrImageDigest) || !errors.Is(err, executor.ErrImageDigest) {
		t.Errorf("LoadImage(wrong id) = %v, want api.ErrImageDigest and executor.ErrImageDigest", err)
	}
	// The tenant reads this message: each step once, not "image digest
	// mismatch: image digest mismatch".
	if want := "load image for lease 1: image digest mismatch: archive holds " + img; err == nil || err.Error() != want {
		t.Errorf("LoadImage(wrong id) = %q, want %q", err, want)
	}
	for _, id := range []uint64{1, 2} {
		if got, err := m.LoadImage(ctx, id, strings.NewReader(img), 1<<10, img); err != nil || got != img {
			t.Fatalf("LoadImage(lease %d) = %q, %v; want %s", id, got, err, img)
		}
	}
	if _, err := m.LoadImage(ctx, 3, strings.NewReader(other), 1<<10, ""); err != nil {
		t.Fatal(err)
	}

	man := job("true", 1)
	man.Services[0].Image = other // lease 3's
	if err := m.Deploy(ctx, info(1), man); !errors.Is(err, api.ErrImageNotAllowed) {
		t.Errorf("Deploy(another lease's image) = %v, want ErrImageNotAllowed", err)
	}
	man.Services[0].Image = img
	if err := m.Deploy(ctx, info(1), man); err != nil {
		t.Fatalf("Deploy(own image) = %v", err)
	}
	if _, err := m.LoadImage(ctx, 1, strings.NewReader(img), 1<<10, ""); !errors.Is(err, api.ErrAlreadyDeployed) {
		t.Errorf("LoadImage(deployed lease) = %v, want ErrAlreadyDeployed", err)
	}
	waitDone(t, m, 1)

	if err := m.Stop(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := ex.removedImages(); len(got) != 0 {
		t.Errorf("images removed after lease 1 stopped = %v, want none: lease 2 holds %s", got, img)
	}
	for _, id := range []uint64{2, 3} {
		if err := m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := ex.removedImages(); !slices.Equal(got, []string{img, other}) {
		t.Errorf("images removed after every lease stopped = %v, want [%s %s]", got, img, other)
	}
}
