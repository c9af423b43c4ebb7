package app

import (
	"testing"

	"github.com/kiln-network/kiln/x/market"
)

// /market/stats counts the registered hardware and prices leases per GPU-hour; the
// candidates of an order are the providers that can take it, from the free-capacity
// index; bad query parameters are refused with a code, not a panic.
func TestStatsAndCandidatesQueries(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("train", 1, 1, "a100"))}, step{tenant, order(tenant, 1000, 100_000, gpuGroup("any", 1, 2))})
	var c struct {
		Candidates []market.Candidate `json:"candidates"`
	}
	if code := h.query("/market/order/1/candidates", &c); code != 0 || len(c.Candidates) != 1 || c.Candidates[0].Provider != p2.addr {
		t.Fatalf("candidates of an a100 order = %d %+v, want only provider 2", code, c.Candidates)
	}
	if code := h.query("/market/order/2/candidates?limit=5", &c); code != 0 || len(c.Candidates) != 2 || c.Candidates[0].Provider != p2.addr {
		t.Fatalf("candidates of a 2-GPU order = %d %+v, want provider 2 (4 free) then 1 (2 free)", code, c.Candidates)
	}
	h.mustExec(bid(p2, 1, 720), bid(p1, 2, 500))
	var s market.Stats
	if code := h.query("/market/stats?blocks=10&ref_per_kiln=2.5", &s); code != 0 {
		t.Fatalf("stats query code %d", code)
	}
	if s.Providers != 2 || s.GPUs.Total != 6 || s.A100 != 4 || s.ActiveLeases != 2 || s.LeasedGPUs != 3 || s.RefPerKILN != 2.5 {
		t.Fatalf("stats = %+v", s)
	}
	for _, p := range s.Prices {
		// 720 ukiln per block for one a100: 2,592,000 ukiln = 2.592 KILN = 6.48 ref per hour.
		if p.Model == "a100" && (p.Leases != 1 || p.LeaseMedianUkiln != 2_592_000 || p.LeaseMedianRef != 6.48) {
			t.Fatalf("a100 price = %+v", p)
		}
	}
	for _, bad := range []string{"/market/stats?blocks=0", "/market/stats?blocks=x", "/market/stats?ref_per_kiln=-1", "/market/stats?ref=usd",
		"/market/order/1/candidates", "/market/order/3/candidates?limit=2000", "/market/order/9/candidates"} {
		if code := h.query(bad, nil); code == 0 {
			t.Errorf("%s accepted", bad)
		}
	}
}
