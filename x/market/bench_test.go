package market_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kiln-network/kiln/sim"
	"github.com/kiln-network/kiln/x/market"
)

var (
	netsMu sync.Mutex
	nets   = map[string]*sim.Sim{}
)

// network returns a synthetic network of gpus GPUs whose orders are priced by mode,
// that has run 5 blocks of 200 orders (so leases hold capacity), built once per size,
// mode and process.
func network(b *testing.B, gpus int, mode string) *sim.Sim {
	b.Helper()
	netsMu.Lock()
	defer netsMu.Unlock()
	key := fmt.Sprintf("%s/%d", mode, gpus)
	if s, ok := nets[key]; ok {
		return s
	}
	cfg := sim.DefaultConfig()
	cfg.GPUs, cfg.Blocks, cfg.OrdersPerBlock, cfg.Churn, cfg.Mode = gpus, 5, 200, 0, mode
	s, err := sim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Run(); err != nil {
		b.Fatal(err)
	}
	nets[key] = s
	return s
}

// BenchmarkCandidates is the market's matching: finding the providers that can take
// an order (5 of them) in the free-capacity index, at 40,000 GPUs and at 1,000,000.
// The per-op time should barely grow with the network (a seek, not a scan):
//
//	go test -run - -bench Candidates -benchtime 3000x ./x/market
func BenchmarkCandidates(b *testing.B) {
	for _, gpus := range []int{40_000, 1_000_000} {
		b.Run(fmt.Sprintf("gpus=%d", gpus), func(b *testing.B) {
			s := network(b, gpus, market.ModeAuction)
			ids, ctx, done, err := s.OpenBatch(b.N)
			if err != nil {
				b.Fatal(err)
			}
			defer done()
			b.ReportAllocs()
			b.ResetTimer()
			found := 0
			for _, id := range ids {
				c, err := market.Candidates(ctx, id, 5)
				if err != nil {
					b.Fatal(err)
				}
				found += len(c)
			}
			b.ReportMetric(float64(found)/float64(len(ids)), "candidates/op")
		})
	}
}

// BenchmarkStakeAssign is stake-pool work's placement: b.N orders placed in one block
// and assigned at its end, each to a fitting provider drawn by stake x uptime, at
// 4,000 GPUs and at 40,000 (ten times the providers). The per-op time should barely
// grow with the network:
//
//	go test -run - -bench StakeAssign -benchtime 200x ./x/market
func BenchmarkStakeAssign(b *testing.B) {
	for _, gpus := range []int{4_000, 40_000} {
		b.Run(fmt.Sprintf("gpus=%d", gpus), func(b *testing.B) {
			s := network(b, gpus, market.ModeStake)
			b.ReportAllocs()
			b.ResetTimer()
			ids, ctx, done, err := s.OpenBatch(b.N)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			leased := 0
			for _, id := range ids {
				if l, ok := market.GetLease(ctx, id); ok && l.State == market.LeaseActive {
					leased++
				}
			}
			done()
			b.ReportMetric(float64(leased)/float64(len(ids)), "leased/op")
		})
	}
}
