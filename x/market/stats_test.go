package market

import (
	"fmt"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// Network statistics count GPUs and cores by where the inventory came from, price
// each model per GPU-hour as the median of the window's single-model leases, and
// forget leases older than LeaseHistoryBlocks.
func TestNetworkStats(t *testing.T) {
	ctx := indexWorld(t)
	cert := selfSignedPEM(t)
	h100 := registry.GPU{Model: "h100", MemoryBytes: 80 * registry.Gi, Interface: "sxm"}
	a100 := registry.GPU{Model: "a100", MemoryBytes: 40 * registry.Gi, Interface: "pcie"}
	provs := []struct {
		source string
		cores  uint64
		gpus   []registry.GPU
	}{
		{"detected-nvml", 32, []registry.GPU{withCount(h100, 8)}},
		{"declared", 16, []registry.GPU{withCount(h100, 4), withCount(a100, 2)}},
		{"detected-os", 64, nil},
	}
	var addrs []types.Address
	for i, p := range provs {
		a := types.ModuleAddress(fmt.Sprintf("stats-prov-%d", i))
		bank.Mint(ctx, a, types.NewCoin(types.NativeDenom, 1_000_000_000))
		inv := registry.Inventory{Source: p.source, Region: "eu-west", CPUCores: p.cores, MemoryBytes: 512 * registry.Gi, StorageBytes: registry.Ti,
			GPUs: p.gpus, Runtime: registry.DefaultRuntime()}
		if err := registry.Handle(ctx, &registry.MsgRegisterProvider{Owner: a, Endpoint: "https://127.0.0.1:8443", CertPEM: cert, Inventory: inv,
			Stake: types.NewCoin(types.NativeDenom, 100_000_000)}); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	tenant := types.ModuleAddress("stats-tenant")
	bank.Mint(ctx, tenant, types.NewCoin(types.NativeDenom, 1_000_000_000_000))
	// Three H100 leases of 2 GPUs at 200, 300 and 1000 per block: median 300 per
	// block for 2 GPUs, 150 per GPU-block, 540,000 ukiln per GPU-hour.
	lease := func(gpus uint32, price uint64, prov types.Address) {
		t.Helper()
		ctx.Height++
		g := Group{Name: "g", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi, GPU: GPURequest{Units: gpus, Models: []GPUFilter{{Model: "h100"}}}}
		if err := Handle(ctx, &MsgCreateOrder{Owner: tenant, Kind: KindBatch, Groups: []Group{g}, MaxPrice: 1000, Deposit: types.NewCoin(types.NativeDenom, 100_000)}); err != nil {
			t.Fatal(err)
		}
		id := nextSeqPeek(ctx)
		ctx.Height++
		if err := Handle(ctx, &MsgCreateBid{Provider: prov, OrderID: id, Price: price}); err != nil {
			t.Fatal(err)
		}
		EndBlock(ctx)
		if l, ok := GetLease(ctx, id); !ok || l.State != LeaseActive {
			t.Fatalf("order %d did not lease", id)
		}
	}
	lease(2, 200, addrs[0])
	lease(2, 1000, addrs[1])
	lease(2, 300, addrs[0])
	// The order book's asks: h100 at 100 and 300 per GPU-block (median 200, 720,000
	// per GPU-hour), a100 at 50; the CPU ask is not per GPU and is left out.
	for _, a := range []MsgAsk{{Provider: addrs[0], Class: "h100", Price: 100, Units: 2}, {Provider: addrs[1], Class: "h100", Price: 300, Units: 4},
		{Provider: addrs[1], Class: "a100", Price: 50, Units: 2}, {Provider: addrs[2], Class: ClassCPU, Price: 7, Units: 8}} {
		if err := Handle(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NetworkStats(ctx, DefaultStatsOptions())
	if err != nil {
		t.Fatal(err)
	}
	if s.Providers != 3 || s.ProvidersOnline != 3 || s.GPUs != (Count{14, 8, 6}) || s.CPUs != (Count{112, 96, 16}) || s.H100 != 12 || s.A100 != 2 {
		t.Fatalf("stats = %+v", s)
	}
	if s.ActiveLeases != 3 || s.LeasedGPUs != 6 || s.Utilization != 6.0/14 {
		t.Fatalf("leases %d, leased GPUs %d, utilization %v; want 3, 6, 6/14", s.ActiveLeases, s.LeasedGPUs, s.Utilization)
	}
	var h ModelPrice
	for _, p := range s.Prices {
		if p.Model == "h100" {
			h = p
		}
	}
	if h.Leases != 3 || h.LeaseMedianUkiln != 540_000 || h.LeaseMedianRef != 0.54 || h.GPUs != 12 {
		t.Fatalf("h100 price = %+v, want 3 leases, median 540000 ukiln = 0.54 USD per GPU-hour", h)
	}
	if h.Asks != 2 || h.AskMedianUkiln != 720_000 || h.AskMedianRef != 0.72 {
		t.Fatalf("h100 asks = %+v, want 2 asks, median 720000 ukiln = 0.72 USD per GPU-hour", h)
	}
	if a := s.Prices[0]; a.Model != "a100" || a.Asks != 1 || a.AskMedianUkiln != 180_000 || a.Leases != 0 {
		t.Fatalf("a100 = %+v, want one ask at 180000 per GPU-hour and no lease", a)
	}
	if len(s.Prices) != 2 {
		t.Fatalf("prices = %+v, want a100 and h100 only (CPU asks are not per GPU)", s.Prices)
	}
	// A window that starts after the leases sees none; bad options are refused.
	ctx.Height++
	if s, _ := NetworkStats(ctx, StatsOptions{WindowBlocks: 1, BlocksPerHour: 3600, RefCurrency: "USD", RefPerKILN: 1}); s.Prices[1].Leases != 0 {
		t.Fatalf("1-block window after the leases still counts %d", s.Prices[1].Leases)
	}
	for _, bad := range []StatsOptions{{WindowBlocks: 0, BlocksPerHour: 1, RefCurrency: "USD", RefPerKILN: 1}, {WindowBlocks: 1, BlocksPerHour: 1, RefCurrency: "usd", RefPerKILN: 1},
		{WindowBlocks: 1, BlocksPerHour: 1, RefCurrency: "USD", RefPerKILN: -1}} {
		if _, err := NetworkStats(ctx, bad); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
	// Lease records go once they are older than the history.
	ctx.Height += LeaseHistoryBlocks + 10
	EndBlock(ctx)
	n := 0
	ctx.Store.Iterate(madePrefix, func(_, _ []byte) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d lease records outlived the history", n)
	}
}

func withCount(g registry.GPU, n uint32) registry.GPU { g.Count = n; return g }
