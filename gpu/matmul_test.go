package gpu

import "testing"

func TestExpectedMatmulGFLOPS(t *testing.T) {
	tests := []struct {
		key  string
		want float64
		ok   bool
	}{
		{CPUModel, CPUMatmulGFLOPSPerCore, true},
		{"h100", 0, true}, // checked below: the PCIe board's figure, not the SXM's
		{"no-such-gpu", 0, false},
	}
	for _, tt := range tests {
		got, ok := ExpectedMatmulGFLOPS(tt.key)
		if ok != tt.ok || tt.want != 0 && got != tt.want {
			t.Errorf("ExpectedMatmulGFLOPS(%q) = %v, %v; want %v, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
	h, _ := LookupModel("h100")
	low, high := 0.0, 0.0
	for _, v := range h.Variants {
		if v.FP32TFLOPS > 0 && (low == 0 || v.FP32TFLOPS < low) {
			low = v.FP32TFLOPS
		}
		high = max(high, v.FP32TFLOPS)
	}
	if got, _ := ExpectedMatmulGFLOPS("h100"); got != low*1000*GEMMEfficiency || low == high {
		t.Errorf("h100: %v GFLOPS; variants' FP32 from %v to %v TFLOPS: want the lowest at %v efficiency", got, low, high, GEMMEfficiency)
	}
	figs := ExpectedMatmulFigures()
	if len(figs) < 10 || figs[CPUModel] != CPUMatmulGFLOPSPerCore {
		t.Fatalf("ExpectedMatmulFigures: %d models, cpu %v", len(figs), figs[CPUModel])
	}
	for k, g := range figs {
		if g <= CPUMatmulGFLOPSPerCore && k != CPUModel {
			t.Errorf("%s: %v GFLOPS, not above one CPU core", k, g)
		}
	}
}
