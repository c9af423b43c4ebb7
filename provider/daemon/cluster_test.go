package daemon_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/daemon"
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
