package app

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/x/market"
)

// why-no-bids on a leased order names the lease and its holder instead of saying the
// winner "has not bid"; once the order closes it says why. A CPU-only lease shows no
// phantom GPU in the lease queries.
func TestMatchOfLeasedOrder(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("train", 1, 1))}, step{tenant, order(tenant, 1000, 100_000, gpuGroup("cpu", 1, 0))})
	h.mustExec(bid(p1, 1, 900), bid(p2, 1, 800), bid(p1, 2, 700))
	l := h.lease(1)
	if l.Provider != p2.addr {
		t.Fatalf("lease 1 went to %s, want %s", l.Provider, p2.addr)
	}
	h.block()
	var rep market.MatchReport
	if c := h.query("/market/order/1/match", &rep); c != 0 {
		t.Fatalf("match query code %d", c)
	}
	if rep.State != market.OrderActive || rep.Lease == nil || rep.Lease.Provider != p2.addr || rep.Lease.CreatedHeight != l.CreatedHeight || rep.Lease.State != market.LeaseActive {
		t.Fatalf("match of a leased order = %+v (lease %+v), want its lease with %s at height %d", rep, rep.Lease, p2.addr, l.CreatedHeight)
	}
	for _, p := range rep.Providers {
		if (p.Provider == p2.addr) != p.Leased {
			t.Errorf("provider %s: leased = %v, want %v", p.Provider, p.Leased, p.Provider == p2.addr)
		}
		if p.Provider == p2.addr && len(p.Failures) != 0 {
			t.Errorf("the lease holder is reported failing %v", p.Failures)
		}
	}

	// CPU-only lease: no "gpus" entry, in the lease and in the lease list.
	for _, path := range []string{"/market/lease/2", "/market/leases?provider=" + p1.addr.String()} {
		var raw json.RawMessage
		if c := h.query(path, &raw); c != 0 || strings.Contains(string(raw), `"model":""`) || !strings.Contains(string(raw), `"id":"2"`) {
			t.Errorf("%s = %d %s, want lease 2 without a phantom GPU", path, c, raw)
		}
	}

	h.mustExec(step{tenant, &market.MsgCloseLease{Sender: tenant.addr, LeaseID: 1}})
	rep = market.MatchReport{}
	h.query("/market/order/1/match", &rep)
	if rep.State != market.OrderClosed || rep.CloseReason == "" || rep.ClosedHeight != h.height || rep.Lease == nil || rep.Lease.State != market.LeaseClosed {
		t.Fatalf("match of a closed order = %+v (lease %+v), want closed at %d with its closed lease", rep, rep.Lease, h.height)
	}
	for _, p := range rep.Providers {
		if p.Leased {
			t.Errorf("provider %s still holds the closed lease", p.Provider)
		}
	}
}
