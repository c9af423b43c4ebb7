package market

import (
	"errors"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// Performance pricing bills measured work: at the same price per TFLOP-hour a card
// twice as fast earns twice as much per block, a slow one cannot bill more than its
// score, and billing follows the score when it changes mid-lease.
func TestPerformanceBillsWork(t *testing.T) {
	e := newEnv(t)
	scores := map[types.Address]uint64{}
	RegisterScores(e.ctx.Hooks, "test", Measured, func(_ *types.Context, p types.Address, _ GPUSpec) (uint64, bool) {
		s, ok := scores[p]
		return s, ok
	})
	fast := e.provider("fast", "eu-west", 64, map[string]uint32{"h100": 8})
	slow := e.provider("slow", "eu-west", 64, map[string]uint32{"h100": 8})
	scores[fast], scores[slow] = 60_000, 30_000 // 60 and 30 TFLOPS per GPU
	perBlock := func(unit, mtflops uint64) uint64 { return unit * mtflops / 1000 / 3600 }

	var leases [2]Lease
	for i, p := range []types.Address{fast, slow} {
		g := Group{Name: "main", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi, GPU: GPURequest{Units: 2, Models: []GPUFilter{{Model: "h100"}}}}
		id := uint64(i + 1)
		e.must(&MsgCreateOrder{Owner: e.tenant, Kind: KindService, Groups: []Group{g}, MaxPrice: 40_000, Deposit: types.NewCoin(types.NativeDenom, 400_000_000), Mode: ModePerformance})
		e.next()
		if err := e.do(&MsgCreateBid{Provider: p, OrderID: id, Price: 40_001}); err == nil {
			t.Fatal("a bid over the max price per TFLOP-hour was taken")
		}
		e.must(&MsgCreateBid{Provider: p, OrderID: id, Price: 36_000})
		e.next()
		l, ok := GetLease(e.ctx, id)
		if !ok || l.UnitPrice != 36_000 || l.WorkMilliTFLOPS != 2*scores[p] || l.Price != perBlock(36_000, 2*scores[p]) {
			t.Fatalf("lease = %+v, want 36000/TFLOP-h x %d mTFLOPS = %d per block", l, 2*scores[p], perBlock(36_000, 2*scores[p]))
		}
		e.must(&MsgStartLease{Provider: p, LeaseID: id})
		leases[i] = l
	}
	if leases[0].Price != 2*leases[1].Price {
		t.Fatalf("fast card bills %d per block, slow %d: want twice", leases[0].Price, leases[1].Price)
	}
	// The slow card's score drops (a measured figure replaces the expected one):
	// its next blocks bill the lower figure.
	e.next()
	e.next()
	before := bank.Balance(e.ctx, slow, types.NativeDenom)
	scores[slow] = 10_000
	e.next()
	got := bank.Balance(e.ctx, slow, types.NativeDenom) - before
	want := perBlock(36_000, 20_000)
	if l, _ := GetLease(e.ctx, 2); l.Price != want || l.WorkMilliTFLOPS != 20_000 {
		t.Fatalf("after the score dropped: lease price %d work %d, want %d", l.Price, l.WorkMilliTFLOPS, want)
	}
	if got > want {
		t.Fatalf("slow provider got %d for a block of %d mTFLOPS, more than %d", got, 20_000, want)
	}
	// Performance orders need GPUs.
	m := &MsgCreateOrder{Owner: e.tenant, Kind: KindBatch, MaxPrice: 10, Deposit: types.NewCoin(types.NativeDenom, 1000), Mode: ModePerformance,
		Groups: []Group{{Name: "m", Count: 1, CPUMilli: 1, MemoryBytes: 1}}}
	if err := m.ValidateBasic(); !errors.Is(err, types.ErrInvalidMsg) {
		t.Fatalf("CPU-only performance order: %v", err)
	}
}
