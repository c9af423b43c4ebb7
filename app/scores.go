package app

import (
	"math"

	"github.com/kiln-network/kiln/gpu"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
)

// Hardware scores for performance pricing, in milli-TFLOPS per GPU (= GFLOPS). Both
// read the matmul benchmark's scale: the GPU catalogue's expected figure
// (gpu.ExpectedMatmulGFLOPS, what x/liveness's hardware challenge expects of a model),
// or the rate the challenge measured. Every node reads the same figures: the
// catalogue is compiled in, the measurements are chain state.

// catalogueScore is the expected figure for the provider's declared model: what a
// provider is billed at until its hardware is measured.
func catalogueScore(_ *types.Context, _ types.Address, g market.GPUSpec) (uint64, bool) {
	gflops, ok := gpu.ExpectedMatmulGFLOPS(g.Model)
	if !ok || gflops <= 0 {
		return 0, false
	}
	// NB: rounded once here, so no float reaches the ledger's arithmetic.
	return uint64(math.Round(gflops)), true
}

// measuredScore is the rate x/liveness's last passed hardware challenge of the
// provider's model reported, capped at the model's expected figure (the provider
// reports its own duration: a claim may lower its pay, never raise it above the
// datasheet's); a model whose last challenge failed or was slow scores 0, so it bills
// nothing until a later one passes.
func measuredScore(ctx *types.Context, p types.Address, g market.GPUSpec) (uint64, bool) {
	s, ok := liveness.GetScore(ctx, p, g.Model)
	if !ok || s.Passed == 0 && !s.Flagged {
		return 0, false
	}
	if s.Flagged {
		return 0, true
	}
	got := s.LastReportedMFLOPS / 1000
	if want, ok := catalogueScore(ctx, p, g); ok {
		got = min(got, want)
	}
	return got, true
}
