package daemon_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/x/market"
)

// A batch job whose outputs take longer to seal than the chain's heartbeat timeout
// (large outputs, a slow disk, a loaded machine) keeps its lease: the daemon's
// heartbeats go on while the lease manager seals, and the lease completes once the
// seal is done. Before, the daemon's per-block upkeep waited for the sealing lease's
// status, so no lease of the provider was heartbeated and the chain closed them as
// provider_unresponsive.
func TestHeartbeatsGoOnWhileOutputsSeal(t *testing.T) {
	n := startNet(t)
	sealing, release := make(chan struct{}), make(chan struct{})
	var began, released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	defer unblock() // NB: before the daemon's stop (registered later, run first) would wait on it
	n.startDaemonDeps(t, testConfig(filepath.Join(t.TempDir(), "provider")), daemon.Deps{BeforeSeal: func(_ uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error) {
		began.Do(func() { close(sealing) })
		<-release
		return outs, nil
	}})
	t.Cleanup(unblock)
	// 60 s: a deployment, heartbeat_timeout + 3 blocks of sealing and the completion,
	// at 200 ms blocks, on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, batchPlan(unitsScript), tenant.Options{CertDir: t.TempDir(), NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sealing:
	case <-ctx.Done():
		t.Fatal("the job's outputs were never sealed")
	}
	st, err := n.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.c.WaitHeight(ctx, st.Height+heartbeatTimeout+3); err != nil {
		t.Fatal(err)
	}
	l, err := n.c.Lease(ctx, r.OrderID)
	if err != nil || l.State != market.LeaseActive || l.LastHeartbeat <= st.Height {
		t.Fatalf("lease %d after %d blocks of sealing: %+v, %v; want active, heartbeated after height %d", r.OrderID, heartbeatTimeout+3, l, err, st.Height)
	}
	unblock()
	if l := n.waitLease(t, ctx, r.OrderID, "completed", closed); l.CloseReason != market.ReasonCompleted {
		t.Fatalf("lease %d closed %s, want completed", r.OrderID, l.CloseReason)
	}
}
