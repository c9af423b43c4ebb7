package market

import (
	"fmt"
	"math/big"
	"strconv"

	"github.com/kiln-network/kiln/types"
)

// performance is performance-based pricing (ModePerformance), as Render prices work:
// the price is per unit of measured work, not per hour of a named card. Bids and the
// order's max price are per benchmark TFLOP-hour; the auction's windows and ranking
// pick the lowest unit price. The lease then bills per block its unit price times the
// work its GPUs do in a block, by their benchmark score (Scores): a faster card earns
// more per hour at the same unit price, and a slow one cannot overcharge. The score is
// read again at every settlement, so billing follows the measured figure as it
// changes (rounded down: never more than the work measured).
type performance struct{ auction }

func (performance) Name() string { return ModePerformance }

func (performance) validateOrder(m *MsgCreateOrder) error {
	for i, g := range m.Groups {
		if g.GPU.Units == 0 {
			return types.InvalidField(fmt.Sprintf("groups[%d].gpu.units", i), 0, "performance pricing bills GPU work: every group needs GPUs")
		}
	}
	if m.Manual {
		return types.InvalidField("manual", true, "performance pricing picks the lowest price per TFLOP-hour; nobody picks")
	}
	return nil
}

// priceLease turns lease l's price from its bid (per TFLOP-hour) into a price per
// block by its GPUs' scores.
func (performance) priceLease(ctx *types.Context, p Params, l *Lease) {
	l.UnitPrice = l.Price
	l.Price, l.WorkMilliTFLOPS = perfPrice(ctx, p, l)
	ctx.Emit("lease_work_priced", "lease", idStr(l.ID), "unit_price", idStr(l.UnitPrice), "work_mtflops", idStr(l.WorkMilliTFLOPS),
		"price", idStr(l.Price))
}

// reprice updates lease l's per-block price to its GPUs' current scores before a
// settlement; it reports whether it changed.
func (performance) reprice(ctx *types.Context, p Params, l *Lease) bool {
	price, work := perfPrice(ctx, p, l)
	if price == l.Price && work == l.WorkMilliTFLOPS {
		return false
	}
	l.Price, l.WorkMilliTFLOPS = price, work
	ctx.Emit("lease_work_priced", "lease", idStr(l.ID), "unit_price", idStr(l.UnitPrice), "work_mtflops", idStr(work), "price", idStr(price))
	return true
}

// perfPrice is lease l's price per block: UnitPrice (per TFLOP-hour) x the sum of its
// GPUs' scores (milli-TFLOPS) / 1000 / perf_blocks_per_hour, rounded down.
func perfPrice(ctx *types.Context, p Params, l *Lease) (price, work uint64) {
	for _, g := range l.Usage.GPUs {
		work += g.Count * Score(ctx, l.Provider, g.GPUSpec)
	}
	x := new(big.Int).Mul(new(big.Int).SetUint64(l.UnitPrice), new(big.Int).SetUint64(work))
	x.Quo(x, big.NewInt(1000*p.PerfBlocksPerHour))
	if !x.IsUint64() {
		return ^uint64(0), work
	}
	return x.Uint64(), work
}

// ScoreSource reports a provider's benchmark score for one GPU of spec g, in
// milli-TFLOPS, or false if it has none. Modules register theirs with RegisterScores.
type ScoreSource func(ctx *types.Context, provider types.Address, g GPUSpec) (milliTFLOPS uint64, ok bool)

const scoresTable = ModuleName + "/scores"

type scoreTable struct {
	names []string
	srcs  [2][]ScoreSource // measured, then expected
}

// ScoreKind says where a ScoreSource's figures come from.
type ScoreKind int

const (
	// Measured scores (the hardware challenge) are consulted first.
	Measured ScoreKind = iota
	// Expected scores (a datasheet figure for the declared model) only when no
	// measured source has one.
	Expected
)

// RegisterScores adds a source of hardware scores for performance pricing. Measured
// sources are consulted before expected ones, each kind in registration order; the
// first that has a score for a provider's GPU gives it. It panics if h is sealed or
// name is taken: wiring bugs.
func RegisterScores(h *types.Hooks, name string, kind ScoreKind, src ScoreSource) {
	h.MustBeOpen("market scores " + name)
	t := h.Table(scoresTable, func() any { return &scoreTable{} }).(*scoreTable)
	for _, n := range t.names {
		if n == name {
			panic(fmt.Sprintf("market: scores %q registered twice", name))
		}
	}
	t.names = append(t.names, name)
	t.srcs[kind] = append(t.srcs[kind], src)
}

// Score returns provider p's score for one GPU of spec g, in milli-TFLOPS: from the
// first source that has one (measured before expected), else 0 (its work is not
// billed).
func Score(ctx *types.Context, p types.Address, g GPUSpec) uint64 {
	t, ok := ctx.Hooks.Lookup(scoresTable)
	if !ok {
		return 0
	}
	for _, srcs := range t.(*scoreTable).srcs {
		for _, src := range srcs {
			if s, ok := src(ctx, p, g); ok {
				return s
			}
		}
	}
	return 0
}

// FormatTFLOPS writes milli-TFLOPS as TFLOPS.
func FormatTFLOPS(m uint64) string {
	return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64)
}
