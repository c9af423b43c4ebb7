package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	moby "github.com/moby/moby/client"

	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor/docker"
	"github.com/kiln-network/kiln/provider/executor/docker/dockertest"
	"github.com/kiln-network/kiln/provider/executor/scratchimage"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/x/market"
)

// needDocker returns a client of the local Docker daemon, or skips t when none answers.
func needDocker(t *testing.T) *moby.Client {
	t.Helper()
	cli, err := moby.New(moby.FromEnv)
	if err != nil {
		t.Skipf("skipping: no Docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	// 10 s: a local daemon answers a ping in milliseconds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, moby.PingOptions{}); err != nil {
		t.Skipf("skipping: no Docker daemon answers (%v); this test runs cluster members in containers", err)
	}
	return cli
}

var (
	memberImageOnce sync.Once
	memberImagePath string
	memberImageID   string
	memberImageErr  error
)

// memberImage returns a `docker save` archive of a FROM-scratch image whose only
// file is a static kiln at /kiln (CGO_ENABLED=0: `kiln work train --engine go` needs
// no libc, no python), as a tenant would build and upload it, and the image's ID.
func memberImage(t *testing.T) (path, id string) {
	t.Helper()
	memberImageOnce.Do(func() {
		dir := filepath.Dir(kilnBin)
		bin := filepath.Join(dir, "kiln-static")
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/kiln-network/kiln/cmd/kiln")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			memberImageErr = fmt.Errorf("build a static kiln: %v\n%s", err, out)
			return
		}
		prog, err := os.ReadFile(bin)
		if err != nil {
			memberImageErr = err
			return
		}
		archive, imgID, err := scratchimage.Build("kiln", prog, runtime.GOARCH, "")
		if err != nil {
			memberImageErr = err
			return
		}
		memberImagePath, memberImageID = filepath.Join(dir, "kiln-member-image.tar"), imgID
		memberImageErr = os.WriteFile(memberImagePath, archive, 0o644)
	})
	if memberImageErr != nil {
		t.Fatal(memberImageErr)
	}
	return memberImagePath, memberImageID
}

// addDockerProvider starts a provider daemon with the docker executor in a Docker
// namespace of its own, without GPUs (this host gives containers none); killing it
// removes every container, network and volume of that namespace.
func (n *clusterNet) addDockerProvider(t *testing.T, cli *moby.Client, name string) *clusterProv {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	ns := "kiln-cl" + hex.EncodeToString(b)
	p := n.startProvider(t, name, func(cfg *daemon.Config) {
		cfg.Executor = daemon.ExecutorConfig{Kind: docker.Driver}
		// One core: one member (1000m) per provider, as GPUs spread the process ones.
		cfg.Inventory.CPUCores = 1
		cfg.Executor.Set(docker.Driver, "namespace", ns)
	})
	p.reap = func(ctx context.Context) error {
		if _, err := dockertest.RemoveNamespace(ctx, cli, ns); err != nil {
			return fmt.Errorf("clean Docker namespace %s: %w", ns, err)
		}
		return nil
	}
	return p
}

// A 3-member cluster on 3 providers running the docker executor: every rank is a
// container of the tenant's own FROM-scratch image (uploaded over each lease's mTLS
// API) joined to its lease's pause container, whose namespace holds the member's
// overlay link; the ranks train data-parallel over the overlay and return the model.
func TestClusterDocker(t *testing.T) {
	cli := needDocker(t)
	n := startClusterNet(t)
	archive, imageID := memberImage(t)
	t.Cleanup(func() { cli.ImageRemove(context.Background(), imageID, moby.ImageRemoveOptions{Force: true}) })
	for i := range 3 {
		n.addDockerProvider(t, cli, fmt.Sprintf("d%d", i))
	}
	before := n.books(t)
	// 180 s: 3 uploads of a 40 MB image, placement, overlay handshakes, 200 steps of
	// 3 ranks, fetching 3 members' outputs.
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	plan := trainPlan("go", 3, 200, 20, market.FailRefund)
	plan.Manifest.Services[0].Command[0] = "/kiln"
	plan.Groups[0].GPU.Units, plan.Cluster.GPUsPerMember, plan.Manifest.Services[0].Resources.GPUUnits = 0, 0, 0
	plan.Images = map[string]string{plan.Manifest.Services[0].Name: archive}
	r, err := tenant.DeployCluster(ctx, n.c, n.tenantKey, plan, n.options(t))
	if err != nil {
		t.Fatalf("DeployCluster: %v", err)
	}
	if r.State != market.ClusterDone || r.Providers != 3 || len(r.Members) != 3 {
		t.Fatalf("cluster %+v: want done on 3 providers", r)
	}
	var weights string
	for _, m := range r.Members {
		rep, err := train.ReadRankReport(m.OutDir, int(m.Rank))
		if err != nil {
			t.Fatalf("rank %d: %v", m.Rank, err)
		}
		if rep.WorldSize != 3 || rep.Steps != 200 || (weights != "" && rep.WeightsSHA256 != weights) {
			t.Errorf("rank %d report %+v: want world 3, 200 steps, the same weights as rank 0 (%s)", m.Rank, rep, weights)
		}
		weights = rep.WeightsSHA256
	}
	vr, err := catalog.Registry().Verify(ctx, r.Members[0].OutDir, 3, []byte("e2e"), nil)
	if err != nil || vr.Verdict != "ok" {
		t.Fatalf("verify rank 0's model: %+v, %v", vr, err)
	}
	t.Logf("docker: order -> every rank running %d ms", r.OrderToAllRunningMS)
	waitClosed(t, n, r)
	sameMoney(t, before, n.books(t))
}
