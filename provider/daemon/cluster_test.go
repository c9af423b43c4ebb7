package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// The bidder offers a cluster order as many members as fit its free GPUs, at its
// price for one; a 3-member cluster that this provider's 2 GPUs cannot hold alone is
// not half-placed, and the order says why.
func TestDaemonBidsClusterMembers(t *testing.T) {
	n := startNet(t)
	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	cfg.Inventory.GPUs = []daemon.GPUConfig{{Model: "h100", Memory: "80Gi", Interface: "sxm", Count: 2}}
	n.startDaemonWith(t, cfg)
	// 20 s: a few blocks of 200 ms for the order, the bid and the window's close.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := &market.MsgCreateOrder{Owner: n.tenant, Kind: market.KindBatch, Groups: []market.Group{batchGroup}, MaxPrice: 30_000,
		Deposit: types.NewCoin(types.NativeDenom, 20*30_000), Cluster: &market.Cluster{Members: 3, GPUsPerMember: 1, OnMemberFailure: market.FailRefund}}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, m); err != nil {
		t.Fatal(err)
	}
	orders, err := n.c.Orders(ctx, "", n.tenant)
	if err != nil || len(orders) != 1 {
		t.Fatalf("orders: %v, %v", orders, err)
	}
	id := orders[0].ID
	for {
		o, err := n.c.Order(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Unplaced != "" {
			if want := "only 2 of 3 members can be placed now (1 provider bid for 2 members in all)"; o.Unplaced != want || o.State != market.OrderOpen {
				t.Fatalf("order %s, unplaced %q; want open, %q", o.State, o.Unplaced, want)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the order never said why it was not placed: %+v", o)
		case <-time.After(20 * time.Millisecond):
		}
	}
	bids, err := n.c.Bids(ctx, id, n.prov)
	if err != nil || len(bids) != 1 || bids[0].Members != 2 {
		t.Fatalf("bids = %+v, %v; want one for 2 members", bids, err)
	}
	if ls, err := n.c.Leases(ctx, market.LeaseFilter{State: market.LeaseActive}); err != nil || len(ls) != 0 {
		t.Fatalf("active leases = %+v, %v; want none", ls, err)
	}
	if !strings.Contains(bids[0].Usage.GPUs[0].Model, "h100") || bids[0].Usage.GPUs[0].Count != 2 {
		t.Fatalf("bid usage %+v, want 2 H100s", bids[0].Usage)
	}
}

// noNetNS is an executor that cannot give a lease a network namespace: it hides the
// process executor's Namespacer.
type noNetNS struct{ executor.Executor }

// A provider whose executor cannot give a lease a network namespace never bids on a
// cluster order, and logs why; the order says no provider bid.
func TestDaemonRefusesClusterWithoutNamespaces(t *testing.T) {
	n := startNet(t)
	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	pc := process.DefaultConfig()
	pc.Dir, pc.AllowUnisolated = filepath.Join(cfg.StateDir, "exec"), true
	ex, err := process.New(pc)
	if err != nil {
		t.Fatal(err)
	}
	n.startDaemonDeps(t, cfg, daemon.Deps{Executor: noNetNS{ex}})
	// 20 s: a few blocks of 200 ms for the order, the bid window and its close.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := &market.MsgCreateOrder{Owner: n.tenant, Kind: market.KindBatch, Groups: []market.Group{batchGroup}, MaxPrice: 30_000,
		Deposit: types.NewCoin(types.NativeDenom, 20*30_000), Cluster: &market.Cluster{Members: 2, GPUsPerMember: 1, OnMemberFailure: market.FailRefund}}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, m); err != nil {
		t.Fatal(err)
	}
	poll.WaitFor(t, 15*time.Second, func() error {
		if !strings.Contains(n.logs.String(), "no bid on cluster order") {
			return errors.New("no refusal logged yet")
		}
		return nil
	})
	if logs := n.logs.String(); !strings.Contains(logs, "cannot give a lease a network namespace of its own") {
		t.Errorf("the refusal does not say why:\n%s", logs)
	}
	if bids, err := n.c.Bids(ctx, 0, n.prov); err != nil || len(bids) != 0 {
		t.Fatalf("bids = %+v, %v; want none", bids, err)
	}
}

// A cluster member whose manifest the provider took (its overlay link up, ready on
// chain) loses its link when the daemon restarts: the daemon started again reports
// it failed at once, so the cluster fails and refunds, rather than waiting for ever.
func TestDaemonRestartFailsHeldMember(t *testing.T) {
	if why := netns.Available(); why != "" {
		t.Skip("network namespaces: " + why)
	}
	n := startNet(t)
	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	cfg.Inventory.GPUs = []daemon.GPUConfig{{Model: "h100", Memory: "80Gi", Interface: "sxm", Count: 2}}
	d := n.startDaemonWith(t, cfg)
	// 40 s: placement, a manifest, a restart and the close, a few blocks each.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	m := &market.MsgCreateOrder{Owner: n.tenant, Kind: market.KindBatch, Groups: []market.Group{batchGroup}, MaxPrice: 30_000,
		Deposit: types.NewCoin(types.NativeDenom, 20*30_000), Cluster: &market.Cluster{Members: 2, GPUsPerMember: 1, OnMemberFailure: market.FailReplace}}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, m); err != nil {
		t.Fatal(err)
	}
	var cl market.ClusterLease
	poll.WaitFor(t, 20*time.Second, func() error {
		orders, err := n.c.Orders(ctx, market.OrderActive, n.tenant)
		if err != nil || len(orders) == 0 {
			return fmt.Errorf("no active order yet (%v)", err)
		}
		cl, err = n.c.Cluster(ctx, orders[0].ID)
		return err
	})
	// Rank 0 gets its manifest; rank 1 never does, so the cluster waits.
	pc := n.providerClient(t, ctx)
	man := api.Manifest{Services: []api.Service{{Name: "job", Command: []string{"true"}, Count: 1,
		Resources: api.ServiceResources{Unit: api.UnitID(0), CPUMilli: 1000, MemoryBytes: 512 << 20, StorageBytes: 1 << 30, GPUUnits: 1}}}}
	if _, err := pc.SendManifest(ctx, cl.Members[0].Lease, man); err != nil {
		t.Fatal(err)
	}
	st, err := pc.Status(ctx, cl.Members[0].Lease)
	if err != nil || st.State != api.StateWaiting || st.Overlay == nil || st.Overlay.Rank != 0 || st.Overlay.Epoch != -1 {
		t.Fatalf("rank 0 status %+v, %v: want waiting, with its overlay link", st, err)
	}
	poll.WaitFor(t, 10*time.Second, func() error {
		c, err := n.c.Cluster(ctx, cl.ID)
		if err != nil || c.Members[0].State != market.MemberReady {
			return fmt.Errorf("rank 0 not ready on chain yet: %+v, %v", c.Members, err)
		}
		return nil
	})
	d.stop(t)
	n.startDaemonWith(t, cfg)
	poll.WaitFor(t, 20*time.Second, func() error {
		c, err := n.c.Cluster(ctx, cl.ID)
		if err != nil || c.State != market.ClusterFailed {
			return fmt.Errorf("cluster %s (%v), want failed", c.State, err)
		}
		return nil
	})
	l, err := n.c.Lease(ctx, cl.Members[0].Lease)
	if err != nil || l.CloseReason != market.ReasonWorkloadFailed {
		t.Fatalf("rank 0's lease %+v, %v: want closed workload_failed", l, err)
	}
}
