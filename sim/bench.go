package sim

import (
	"fmt"
	"syscall"
	"time"

	"io"
	"runtime"
	"runtime/debug"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// BenchOptions configure the market benchmark.
type BenchOptions struct {
	// Small and Large are the two network sizes compared (GPUs).
	Small, Large int
	// Blocks and OrdersPerBlock are the load, the same on both networks.
	Blocks         int
	OrdersPerBlock float64
	// BatchOrders is how many fresh orders are matched, timed, on each network.
	BatchOrders int
	Progress    io.Writer
}

// DefaultBenchOptions: 40,000 GPUs (io.net/Aethir scale) against 1,000,000, each
// running 10 blocks of 300 orders before 3,000 fresh orders are matched, timed.
func DefaultBenchOptions() BenchOptions {
	return BenchOptions{Small: 40_000, Large: 1_000_000, Blocks: 10, OrdersPerBlock: 300, BatchOrders: 3000}
}

// BenchResult is what `kiln bench market` reports.
type BenchResult struct {
	// OrdersPerSecond is orders matched per CPU-second on the large network: for
	// each order placed on chain, the market finds the providers that can take it
	// (market.Candidates over the free-capacity index: the search that would grow
	// with the network if it scanned). OrdersPerSecondSmall is the same on the small
	// network.
	OrdersPerSecond      float64 `json:"orders_per_s"`
	OrdersPerSecondSmall float64 `json:"orders_per_s_small"`
	// CostRatio is the matching CPU time per order on the large network over that on
	// the small one: 1 when matching does not grow with the network.
	CostRatio float64 `json:"cost_ratio_1m_vs_40k"`
	// MatchMicros* are the matching CPU time per order, in microseconds.
	MatchMicrosSmall float64 `json:"match_us_per_order_small"`
	MatchMicrosLarge float64 `json:"match_us_per_order_large"`
	// FullPath* are the chain's whole CPU time per leased order while the network
	// ran (order placed, search, bids, window close and lease, per-block
	// settlement), in microseconds, and its large/small ratio.
	FullPathMicrosSmall float64 `json:"full_path_us_per_order_small"`
	FullPathMicrosLarge float64 `json:"full_path_us_per_order_large"`
	FullPathRatio       float64 `json:"full_path_cost_ratio"`
	FullPathOrdersPerS  float64 `json:"full_path_orders_per_s"`
	PeakRSSMiB          float64 `json:"peak_rss_mib"`
	MatchedOrders       int     `json:"matched_orders"`
	Small               Result  `json:"small"`
	Large               Result  `json:"large"`
	MachineCPUs         int     `json:"machine_cpus"`
	Target              string  `json:"target"`
}

// Bench runs the same load on a small and a large network: each is built, runs
// o.Blocks blocks of o.OrdersPerBlock orders (so leases hold capacity and the index
// is churned), and then has the market match a batch of fresh orders, timed alone.
// Memory is returned between the two.
func Bench(o BenchOptions) (BenchResult, error) {
	if o.Small < 64 || o.Large < o.Small {
		return BenchResult{}, fmt.Errorf("sizes: need 64 <= small (%d) <= large (%d)", o.Small, o.Large)
	}
	if o.BatchOrders < 1 || o.BatchOrders > 1_000_000 {
		return BenchResult{}, fmt.Errorf("batch orders: must be 1 to 1000000 (got %d)", o.BatchOrders)
	}
	type run struct {
		res     Result
		us      float64
		matched int
	}
	do := func(gpus int) (run, error) {
		cfg := DefaultConfig()
		cfg.GPUs, cfg.Blocks, cfg.OrdersPerBlock, cfg.Progress = gpus, o.Blocks, o.OrdersPerBlock, o.Progress
		// NB: no churn and the same seed: both networks get the same orders, so the
		// ratio measures the network's size alone.
		cfg.Churn = 0
		t := time.Now()
		s, err := New(cfg)
		if err != nil {
			return run{}, err
		}
		built := time.Since(t)
		res, err := s.Run()
		if err != nil {
			return run{}, err
		}
		res.BuildSeconds = built.Seconds()
		us, matched, err := s.matchBatch(o.BatchOrders)
		return run{res, us, matched}, err
	}
	small, err := do(o.Small)
	if err != nil {
		return BenchResult{}, fmt.Errorf("%d GPUs: %w", o.Small, err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	large, err := do(o.Large)
	if err != nil {
		return BenchResult{}, fmt.Errorf("%d GPUs: %w", o.Large, err)
	}
	r := BenchResult{Small: small.res, Large: large.res, MatchMicrosSmall: round(small.us, 3), MatchMicrosLarge: round(large.us, 3),
		FullPathMicrosSmall: small.res.MatchMicros, FullPathMicrosLarge: large.res.MatchMicros, FullPathOrdersPerS: large.res.OrdersPerSecond,
		MatchedOrders: large.matched, PeakRSSMiB: PeakRSSMiB(), MachineCPUs: runtime.NumCPU(),
		Target: "orders_per_s >= 10000, cost_ratio_1m_vs_40k <= 2"}
	if large.us > 0 {
		r.OrdersPerSecond = round(1e6/large.us, 1)
	}
	if small.us > 0 {
		r.OrdersPerSecondSmall = round(1e6/small.us, 1)
		r.CostRatio = round(large.us/small.us, 3)
	}
	if small.res.MatchMicros > 0 {
		r.FullPathRatio = round(large.res.MatchMicros/small.res.MatchMicros, 3)
	}
	return r, nil
}

// matchBatch places n fresh orders in one block and, in the next, has the market
// find each one's providers (BidsPerOrder of them). It returns the CPU time per
// order in microseconds and how many orders found at least one provider.
//
// The time is the matching thread's own (getrusage RUSAGE_THREAD, the goroutine
// locked to it), after a garbage collection: the simulator holds the whole state in
// the Go heap, where a node keeps it in pebble, so the collector's background work
// grows with the simulated network in a way a node's does not; allocation-driven
// assists on the matching thread still count.
func (s *Sim) matchBatch(n int) (float64, int, error) {
	s.begin()
	first := s.nextID + 1
	for range n {
		m, gpus, jobBlocks := s.newOrder()
		if err := s.lg.Deliver(m); err != nil {
			return 0, 0, fmt.Errorf("create order: %w", err)
		}
		s.track(m, gpus, jobBlocks)
	}
	if err := s.end(); err != nil {
		return 0, 0, err
	}
	ctx := s.begin()
	defer func() { _ = s.end() }()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	runtime.GC()
	matched := 0
	t := threadCPUTime()
	for id := first; id <= s.nextID; id++ {
		c, err := market.Candidates(ctx, id, s.cfg.BidsPerOrder)
		if err != nil {
			return 0, 0, err
		}
		if len(c) > 0 {
			matched++
		}
	}
	d := threadCPUTime() - t
	return float64(d.Nanoseconds()) / 1e3 / float64(n), matched, nil
}

// threadCPUTime is the calling OS thread's CPU time so far (Linux).
func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return cpuTime()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// OpenBatch places n fresh orders in one block and opens the next block, returning
// the orders' IDs and the open block's context: what a benchmark matches against.
// Call the returned done once finished with the context.
func (s *Sim) OpenBatch(n int) (ids []uint64, ctx *types.Context, done func(), err error) {
	s.begin()
	for range n {
		m, gpus, jobBlocks := s.newOrder()
		if err := s.lg.Deliver(m); err != nil {
			return nil, nil, nil, fmt.Errorf("create order: %w", err)
		}
		ids = append(ids, s.track(m, gpus, jobBlocks).id)
	}
	if err := s.end(); err != nil {
		return nil, nil, nil, err
	}
	return ids, s.begin(), func() { _ = s.end() }, nil
}
