package explorer

import (
	"testing"
	"time"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

func provider(b byte, source string, model string, gpus uint32, cores uint64) registry.Provider {
	inv := registry.Inventory{Source: source, Region: "eu-west", CPUCores: cores}
	if gpus > 0 {
		inv.GPUs = []registry.GPU{{Model: model, Count: gpus, MemoryBytes: 80 << 30, Interface: "sxm"}}
	}
	return registry.Provider{Owner: types.Address{b}, Inventory: inv, CreatedHeight: 1}
}

func lease(id uint64, prov byte, model string, gpus uint64, price uint64, created, closed int64) market.LeaseView {
	l := market.Lease{ID: id, Attempt: 1, Owner: types.Address{200}, Provider: types.Address{prov}, Price: price, Denom: "ukiln",
		State: market.LeaseActive, CreatedHeight: created, Usage: market.Usage{CPUMilli: 1000}}
	if gpus > 0 {
		l.Usage.GPUs = []market.GPUCount{{GPUSpec: market.GPUSpec{Model: model}, Count: gpus}}
	}
	if closed > 0 {
		l.State, l.ClosedHeight, l.CloseReason = market.LeaseClosed, closed, market.ReasonCompleted
	}
	return market.ShowLease(l)
}

// snapshotAt makes a snapshot at height h with one block per second.
func snapshotAt(h int64, provs []registry.Provider, leases []market.LeaseView) *Snapshot {
	s := &Snapshot{ChainID: "t", Height: h, Providers: provs, Leases: leases}
	t0 := time.Unix(1_700_000_000, 0)
	for i := int64(0); i < 10 && h-i >= 1; i++ {
		s.Blocks = append(s.Blocks, BlockRow{Height: h - i, Time: t0.Add(time.Duration(h-i) * time.Second)})
	}
	for _, l := range leases {
		s.Orders = append(s.Orders, market.Order{ID: l.ID, State: map[string]string{market.LeaseActive: market.OrderActive, market.LeaseClosed: market.OrderClosed}[l.State]})
		s.Escrow = append(s.Escrow, escrow.EscrowAccount{OrderID: l.ID, Paid: 100, Fees: 1, Refunded: 10})
	}
	s.index()
	return s
}

func TestOverviewCounts(t *testing.T) {
	s := snapshotAt(100,
		[]registry.Provider{provider(1, "declared", "h100", 8, 64), provider(2, "detected-nvml", "a100", 4, 32), provider(3, "detected-os", "", 0, 16)},
		[]market.LeaseView{lease(1, 1, "h100", 2, 200, 10, 0), lease(2, 1, "h100", 1, 150, 20, 50), lease(3, 2, "a100", 4, 400, 30, 0), lease(4, 3, "", 0, 10, 40, 0)})
	o := buildOverview(s, map[string]bool{types.Address{1}.String(): true, types.Address{2}.String(): false})
	check := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("GPUsDeclared", o.GPUsDeclared, 8)
	check("GPUsDetected", o.GPUsDetected, 4)
	check("CPUsDeclared", o.CPUsDeclared, 64)
	check("CPUsDetected", o.CPUsDetected, 48)
	check("GPUsInUse", o.GPUsInUse, 6) // leases 1 (2×h100) and 3 (4×a100)
	check("ActiveLeases", o.ActiveLeases, 3)
	check("ProvidersProbed", o.ProvidersProbed, 2)
	check("ProvidersOnline", o.ProvidersOnline, 1)
	check("GPUUtilization", o.GPUUtilization, 50.0)
	check("PaidToProviders", o.PaidToProviders, uint64(400))
	check("BlocksPerSecond", o.BlocksPerSecond, 1.0)
	if len(o.Models) != 2 || o.Models[0].Model != "a100" || o.Models[1].Model != "h100" {
		t.Fatalf("models %+v", o.Models)
	}
	// h100: only lease 1 is active: 200 per block for 2 GPUs.
	check("h100 price per GPU-block", o.Models[1].PricePerGPUBlock, 100.0)
	check("h100 price per GPU-hour", o.Models[1].PricePerGPUHour, 100.0*3600/1e6)
	check("a100 in use", o.Models[0].InUse, 4)
	check("a100 detected", o.Models[0].Detected, 4)
}

// The utilization series is, at each bucket's last height, what the leases made by
// then and not yet closed hold, and it ends at what is active now.
func TestUtilizationSeries(t *testing.T) {
	s := snapshotAt(100, []registry.Provider{provider(1, "declared", "h100", 10, 10)},
		[]market.LeaseView{lease(1, 1, "h100", 5, 100, 10, 20), lease(2, 1, "h100", 2, 100, 15, 0)})
	series := utilizationSeries(s, 10, 10)
	if len(series) != 2 || series[0].Name != "GPUs" {
		t.Fatalf("series %+v", series)
	}
	want := func(h int64) float64 {
		g := 0.0
		if h >= 10 && h < 20 {
			g += 5
		}
		if h >= 15 {
			g += 2
		}
		return 100 * g / 10
	}
	for _, p := range series[0].Points {
		if got := p.Y; got != want(int64(p.X)) {
			t.Errorf("at height %g: %g%%, want %g%%", p.X, got, want(int64(p.X)))
		}
	}
	last := series[0].Points[len(series[0].Points)-1]
	if last.X != 100 || last.Y != 20 {
		t.Errorf("last point %+v, want height 100 at 20%%", last)
	}
}

// Over a long history the series keeps at most chartPoints points and never goes
// below zero, whatever the leases' heights.
func TestUtilizationSeriesBounded(t *testing.T) {
	var ls []market.LeaseView
	for i := 0; i < 500; i++ {
		closed := int64(0)
		if i%3 != 0 {
			closed = int64(i*37%10_000 + 5)
		}
		ls = append(ls, lease(uint64(i+1), 1, "h100", 1, 10, int64(i*37%10_000+1), closed))
	}
	s := snapshotAt(10_000, []registry.Provider{provider(1, "declared", "h100", 1000, 10)}, ls)
	for _, sd := range utilizationSeries(s, 1000, 10) {
		if len(sd.Points) > chartPoints {
			t.Errorf("%s: %d points, want at most %d", sd.Name, len(sd.Points), chartPoints)
		}
		for _, p := range sd.Points {
			if p.Y < 0 {
				t.Errorf("%s at %g: %g%% < 0", sd.Name, p.X, p.Y)
			}
		}
	}
}

func TestPayments(t *testing.T) {
	l := market.Lease{Price: 10, StartedHeight: 100}
	a := escrow.EscrowAccount{Deposited: 1000, Balance: 0, Refunded: 955, SettledHeight: 110} // 45 left for pay: the last block ran dry
	ps := payments(l, a)
	if len(ps) == 0 || ps[0].X != 100 || ps[0].Y != 0 {
		t.Fatalf("payments %+v: want to start at the start height with 0", ps)
	}
	last := ps[len(ps)-1]
	if last.X != 110 || last.Y != 45 {
		t.Errorf("last point %+v, want height 110 with the 45 that left the escrow", last)
	}
	if got := payments(market.Lease{Price: 10}, a); len(got) != 0 {
		t.Errorf("a lease that never started paid %+v", got)
	}
}

// The verification page keeps slashes, the verify module's events, and the events of
// the other non-core modules in the table (liveness_, tee_), never the market's.
func TestKeepEvent(t *testing.T) {
	mods := []app.ModuleInfo{{Name: "market"}, {Name: "liveness"}, {Name: "tee"}, {Name: "infer"}, {Name: "verify"}}
	for typ, want := range map[string]bool{"slash_bond": true, "fraud_proven": true, "work_committed": true, "challenge_opened": true,
		"liveness_failed": true, "tee_attested": true, "lease_closed": false, "order_created": false, "infer_requested": false, "transfer": false} {
		if got := keepEvent(mods, typ); got != want {
			t.Errorf("keepEvent(%s) = %v, want %v", typ, got, want)
		}
	}
	if keepEvent([]app.ModuleInfo{{Name: "market"}}, "liveness_failed") {
		t.Errorf("kept a liveness event on a chain without the liveness module")
	}
}
