package gpu

// Expected matrix-product throughput: what the hardware challenge (work/matmul's
// challenge, an FP32-tolerant float matrix product) should reach on each catalogued
// model, in GFLOPS. The ledger's liveness parameters take their defaults from here,
// so a change here changes new genesis files, never a running chain.

// CPUModel is the model key of a CPU-only provider's challenges: its figure is per
// core.
const CPUModel = "cpu"

// CPUMatmulGFLOPSPerCore is what one core reaches on the challenge with Kiln's Go
// kernel (matmul.Multiply, float64, no SIMD): measured on the 2-core build machine
// with TestMeasureCPUThroughput (n=512, best of 3): 0.49 GFLOPS per core under a load
// average of 12, about 1 unloaded. The lower figure is used: it is the floor an
// honest, busy CPU provider still reaches, and "far slower" is judged against it.
const CPUMatmulGFLOPSPerCore = 0.5

// GEMMEfficiency is the share of a GPU's dense FP32 peak an FP32 GEMM reaches in
// practice (cuBLAS SGEMM on large square matrices reaches 60-90% of peak on
// Ampere/Hopper/Ada parts); 0.5 is deliberately low so an honest card is never judged
// slow by it.
const GEMMEfficiency = 0.5

// ExpectedMatmulGFLOPS returns the throughput expected of one unit of model key (a
// GPU model key, or CPUModel for one CPU core): for a GPU, GEMMEfficiency times the
// lowest dense FP32 peak among the model's variants (a PCIe board is never held to
// its SXM sibling's figure). ok is false for an unknown model or one without an FP32
// figure.
func ExpectedMatmulGFLOPS(key string) (gflops float64, ok bool) {
	if key == CPUModel {
		return CPUMatmulGFLOPSPerCore, true
	}
	m, ok := LookupModel(key)
	if !ok {
		return 0, false
	}
	low := 0.0
	for _, v := range m.Variants {
		if v.FP32TFLOPS > 0 && (low == 0 || v.FP32TFLOPS < low) {
			low = v.FP32TFLOPS
		}
	}
	if low == 0 {
		return 0, false
	}
	return low * 1000 * GEMMEfficiency, true
}

// ExpectedMatmulFigures returns ExpectedMatmulGFLOPS for every catalogued model that
// has one, and for CPUModel, by key.
func ExpectedMatmulFigures() map[string]float64 {
	out := map[string]float64{CPUModel: CPUMatmulGFLOPSPerCore}
	for _, m := range Models() {
		if g, ok := ExpectedMatmulGFLOPS(m.Key); ok {
			out[m.Key] = g
		}
	}
	return out
}
