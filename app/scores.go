package app

import (
	"math"

	"github.com/kiln-network/kiln/gpu"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// catalogueScore is the hardware score performance pricing falls back on: the GPU
// catalogue's expected FP32 TFLOPS for the provider's declared model (the variant of
// its interface and memory, else the model's fastest), in milli-TFLOPS. It is an
// Expected source: a module that measures GPUs (the hardware challenge, x/liveness)
// registers a Measured one, consulted first; until then, declared hardware is billed
// at its datasheet figure. The catalogue is
// compiled in, so every node reads the same figures.
func catalogueScore(_ *types.Context, _ types.Address, g market.GPUSpec) (uint64, bool) {
	m, ok := gpu.LookupModel(g.Model)
	if !ok {
		return 0, false
	}
	best, exact := 0.0, 0.0
	for _, v := range m.Variants {
		best = math.Max(best, v.FP32TFLOPS)
		if v.Interface == g.Interface && uint64(v.MemoryGiB)*registry.Gi == g.MemoryBytes {
			exact = v.FP32TFLOPS
		}
	}
	if exact > 0 {
		best = exact
	}
	if best <= 0 {
		return 0, false
	}
	// NB: rounded to whole milli-TFLOPS here, once, so no float reaches the ledger's
	// arithmetic.
	return uint64(math.Round(best * 1000)), true
}
