package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/market"
)

// An auto_redeploy service whose provider dies: the chain closes the lease at the
// liveness deadline and re-opens the order, another provider wins it, and the tenant's
// watch sends that provider the workload, which runs there.
func TestAutoRedeployMovesService(t *testing.T) {
	n := startNet(t)
	// 60 s: a lease, heartbeat_timeout blocks (3 s), a second auction and a deploy.
	deadline := time.Now().Add(60 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	cheap := n.startDaemon(t, filepath.Join(t.TempDir(), "cheap"))

	g := market.Group{Name: "web", Count: 1, CPUMilli: 500, MemoryBytes: 64 << 20, StorageBytes: 64 << 20,
		GPU: market.GPURequest{Units: 1, Models: []market.GPUFilter{{Model: "h100"}}}}
	plan := tenant.Plan{Name: "web", Kind: market.KindService, Groups: []market.Group{g}, MaxPrice: 5000, AutoRedeploy: true,
		Deposit: types.NewCoin(types.NativeDenom, 5000*600),
		Manifest: api.Manifest{Services: []api.Service{{Name: "web", Command: []string{"sleep", "30"}, Count: 1,
			Resources: api.ServiceResources{Unit: 1, CPUMilli: 500, MemoryBytes: 64 << 20, StorageBytes: 64 << 20, GPUUnits: 1}}}}}
	opts := tenant.Options{CertDir: t.TempDir(), Progress: func(s string) { t.Log(s) }}
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, plan, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Provider != n.prov {
		t.Fatalf("the only provider should win: got %s", r.Provider)
	}

	// NB: the second provider starts once the first holds the lease: with a one-block
	// bid window at 200 ms blocks, two providers racing for the first auction on a
	// loaded machine let the slower one's bid miss the window now and then.
	// A second, dearer provider with its own funded key.
	key2, addr2 := newKey(t)
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &bank.MsgSend{From: n.tenant, To: addr2,
		Amount: types.Coins{types.NewCoin(types.NativeDenom, 300_000_000)}}); err != nil {
		t.Fatal(err)
	}
	cfg2 := testConfig(filepath.Join(t.TempDir(), "dear"))
	cfg2.Pricing.GPUHour["h100"] = 20_000_000
	d2, err := daemon.New(cfg2, daemon.Deps{Client: n.c, Key: key2, Logger: slog.New(slog.NewTextHandler(n.logs, nil)).With("provider", "dear")})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- d2.Run(ctx2) }()
	defer func() { cancel2(); <-done2 }()
	select {
	case <-d2.Ready():
	case err := <-done2:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("second provider not ready")
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- tenant.Watch(watchCtx, n.c, n.tenantKey, plan, r, opts) }()

	cheap.stop(t) // killed: no more heartbeats
	var l market.Lease
	poll.WaitFor(t, time.Until(deadline), func() error {
		var err error
		if l, err = n.c.Lease(ctx, r.OrderID); err != nil {
			return err
		}
		if l.Attempt <= r.Attempt || l.State != market.LeaseActive {
			return fmt.Errorf("order %d was not re-leased: last %+v", r.OrderID, l)
		}
		return nil
	})
	if l.Provider != addr2 {
		t.Fatalf("re-made lease went to %s, want the second provider %s", l.Provider, addr2)
	}
	// The watch sends the workload to the new provider, where it runs.
	cert, err := tenant.EnsureCert(ctx, n.c, n.tenantKey, opts.CertDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, _, err := tenant.Connect(ctx, n.c, addr2, cert)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	poll.WaitFor(t, time.Until(deadline), func() error {
		st, err := pc.Status(ctx, r.OrderID)
		if err != nil {
			return err
		}
		if st.State != api.StateRunning {
			return fmt.Errorf("the service is not running on the second provider: %+v", st)
		}
		return nil
	})
	stopWatch()
	if err := <-watched; err != nil {
		t.Fatalf("watch: %v", err)
	}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &market.MsgCloseLease{Sender: n.tenant, LeaseID: r.OrderID}); err != nil {
		t.Fatal(err)
	}
}
