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
	nets   = map[int]*sim.Sim{}
)

// network returns a synthetic network of gpus GPUs that has run 5 blocks of 200
// orders (so leases hold capacity), built once per size and process.
func network(b *testing.B, gpus int) *sim.Sim {
	b.Helper()
	netsMu.Lock()
	defer netsMu.Unlock()
	if s, ok := nets[gpus]; ok {
		return s
	}
	cfg := sim.DefaultConfig()
	cfg.GPUs, cfg.Blocks, cfg.OrdersPerBlock, cfg.Churn = gpus, 5, 200, 0
	s, err := sim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Run(); err != nil {
		b.Fatal(err)
	}
	nets[gpus] = s
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
			s := network(b, gpus)
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
