package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	moby "github.com/moby/moby/client"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor/docker"
	"github.com/kiln-network/kiln/provider/executor/docker/dockertest"
	"github.com/kiln-network/kiln/provider/executor/executortest"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// needDocker returns a client of the local Docker daemon, or skips t when none answers.
func needDocker(t *testing.T) *moby.Client {
	t.Helper()
	return dockertest.Client(t, "runs a lease in a container")
}

// A batch lease on a provider running the docker executor, with the tenant's own
// image: uploaded over mutual TLS, run FROM scratch, its output downloaded and
// verified, and its container and image gone once the lease ends.
// dockerNet starts a chain and a provider daemon with the docker executor in a
// namespace of its own, and returns the test image archive and its ID; whatever the
// test leaves in Docker is removed at its end.
func dockerNet(t *testing.T) (n *testNet, cli *moby.Client, archive, imageID, ns string) {
	t.Helper()
	cli = needDocker(t)
	archive, imageID = executortest.ImageArchive(t)
	n = startNet(t)
	b := make([]byte, 4)
	rand.Read(b)
	ns = "kiln-dt" + hex.EncodeToString(b)
	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	cfg.Executor = daemon.ExecutorConfig{Kind: docker.Driver}
	cfg.Executor.Set(docker.Driver, "namespace", ns)
	cfg.Inventory.GPUs = nil // no GPUs for containers on this host
	// 3 s: long enough to download one small output, short enough to see the lease's
	// container and image removed within the test.
	cfg.OutputRetention = daemon.Duration(3 * time.Second)
	// NB: registered before the daemon starts, so run after it stopped (cleanups
	// run last-in first-out): a daemon stopped mid-lease keeps the lease's
	// container, network and volumes for Recover, and nothing may outlive the test.
	t.Cleanup(func() {
		if _, err := dockertest.RemoveNamespace(context.Background(), cli, ns); err != nil {
			t.Errorf("clean Docker namespace %s: %v", ns, err)
		}
		cli.ImageRemove(context.Background(), imageID, moby.ImageRemoveOptions{Force: true})
	})
	n.startDaemonWith(t, cfg)
	return n, cli, archive, imageID, ns
}

func TestDockerLease(t *testing.T) {
	n, cli, archive, imageID, ns := dockerNet(t)

	// 90 s: an order, a lease, two image uploads (one refused), an input, a
	// container of milliseconds, the completion and output retention, at 200 ms
	// blocks. On this 2-core machine shared by several test runs (load average
	// 18) the image load alone took 19 s and the container's start 20 s.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t0 := time.Now()
	g := market.Group{Name: "job", Count: 1, CPUMilli: 500, MemoryBytes: 256 * registry.Mi, StorageBytes: registry.Gi}
	id, _, _ := n.createOrder(t, ctx, market.KindBatch, g, 1000)
	out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil)
	if err != nil || out.Lease == nil {
		t.Fatalf("no lease for order %d: %+v, %v", id, out.Order, err)
	}
	pc := n.providerClient(t, ctx)

	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fst, _ := f.Stat()
	// The tenant names another image than the archive holds: refused, and the
	// message says so once, each step named once.
	wrong := "sha256:" + strings.Repeat("ab", 32)
	_, err = pc.UploadImage(ctx, id, f, fst.Size(), wrong)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != api.CodeImageDigestMismatch ||
		strings.Count(err.Error(), "image digest mismatch") != 1 || strings.Count(err.Error(), "load image for lease") != 1 {
		t.Fatalf("UploadImage(wrong id) = %v, want 400 %s saying each thing once", err, api.CodeImageDigestMismatch)
	}
	t.Logf("a wrong image ID reads: %v", err)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	ii, err := pc.UploadImage(ctx, id, f, fst.Size(), imageID)
	if err != nil {
		t.Fatalf("UploadImage() = %v", err)
	}
	if ii.ID != imageID || ii.Size != fst.Size() || len(ii.Tags) != 0 {
		t.Fatalf("UploadImage() = %+v, want %s of %d bytes, untagged", ii, imageID, fst.Size())
	}
	t.Logf("lease %d: image %s… (%d bytes) loaded %d ms after the order", id, imageID[:19], ii.Size, time.Since(t0).Milliseconds())

	const input = "tenant input"
	if _, err := pc.UploadInput(ctx, id, "data.txt", strings.NewReader(input), int64(len(input))); err != nil {
		t.Fatalf("UploadInput() = %v", err)
	}

	// An image named by tag could be anything by the time it runs: refused
	// before anything starts.
	const want = "hello from a tenant image"
	job := api.Service{
		Name: "job", Count: 1, Image: imageID,
		Command: []string{"/testprog"}, Args: []string{"id", ";", "read-file", "/in/data.txt", ";", "write-out", "out.txt", want},
		Resources: api.ServiceResources{CPUMilli: 500, MemoryBytes: 256 * registry.Mi},
	}
	tagged := job
	tagged.Image = "busybox:latest"
	_, err = pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{tagged}})
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != api.CodeImageNotAllowed {
		t.Fatalf("SendManifest(image by tag) = %v, want 400 %s", err, api.CodeImageNotAllowed)
	}
	if _, err = pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{job}}); err != nil {
		t.Fatalf("SendManifest() = %v", err)
	}
	l := n.waitLease(t, ctx, id, "closed", closed)
	if l.CloseReason != market.ReasonCompleted {
		t.Fatalf("lease closed with %s, want completed", l.CloseReason)
	}
	t.Logf("lease %d: completed %d ms after the order", id, time.Since(t0).Milliseconds())
	// The image sets no USER and the manifest no user: the task ran
	// unprivileged, and still read its input and wrote its output.
	rc, err := pc.Logs(ctx, id, api.LogSelector{}, false)
	if err != nil {
		t.Fatalf("Logs() = %v", err)
	}
	logs, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(logs), "uid=65534 gid=65534") || !strings.Contains(string(logs), input) {
		t.Errorf("task log = %q, want it run as 65534:65534 and to have read %q", logs, input)
	}
	var got bytes.Buffer
	fi, err := pc.DownloadOutput(ctx, id, "out.txt", &got)
	if err != nil {
		t.Fatalf("DownloadOutput() = %v", err)
	}
	sum := sha256.Sum256([]byte(want))
	if got.String() != want || fi.SHA256 != hex.EncodeToString(sum[:]) || l.OutputHash == "" {
		t.Fatalf("output %q (sha256 %s), want %q (sha256 %x); chain output hash %q", got.String(), fi.SHA256, want, sum, l.OutputHash)
	}

	// Once retention is over the lease is stopped: nothing of it is left in the
	// namespace (container, network, volumes), and the image, which no other lease
	// holds, is removed.
	for {
		left, err := dockertest.List(ctx, cli, func(n string) bool { return n == ns })
		_, ierr := cli.ImageInspect(ctx, imageID)
		if err == nil && left.Empty() && cerrdefs.IsNotFound(ierr) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after the lease ended: %s (%v), image inspect %v; want none and not found", left, err, ierr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("lease %d: container, network, volumes and image gone %d ms after the order", id, time.Since(t0).Milliseconds())
}

// The tenant side of the same path: a Kiln spec whose service names an image archive,
// deployed with tenant.Deploy, which uploads the image, sends the manifest and brings
// the output back.
func TestDockerDeployImageArchive(t *testing.T) {
	n, _, archive, _, _ := dockerNet(t)
	dir := t.TempDir()
	// NB: a spec names only files in its own directory: the archive is linked there.
	if err := os.Link(archive, filepath.Join(dir, "job.tar")); err != nil {
		b, rerr := os.ReadFile(archive)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(filepath.Join(dir, "job.tar"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := filepath.Join(dir, "job.yaml")
	os.WriteFile(spec, []byte(`kind: batch
max_price: 1000ukiln
groups: [{name: job, cpu: 500m, memory: 256Mi, storage: 1Gi}]
services:
  - name: job
    image_archive: job.tar
    command: [/testprog]
    args: [write-out, out.txt, hello from a spec]
`), 0o644)
	plans, _, err := tenant.Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	// 90 s: as TestDockerLease.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out := filepath.Join(dir, "out")
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, plans[0], tenant.Options{CertDir: t.TempDir(), OutDir: out, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "out.txt")); err != nil || string(b) != "hello from a spec" || r.State != api.StateCompleted {
		t.Fatalf("deploy %+v: out.txt = %q, %v", r, b, err)
	}
}
