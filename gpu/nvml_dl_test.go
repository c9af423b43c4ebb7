//go:build cgo && linux

package gpu

import (
	"context"
	"testing"

	"github.com/kiln-network/kiln/gpu/nvml"
	"github.com/kiln-network/kiln/gpu/nvml/nvmltest"
)

// Detect through the dlopen binding, against a library with NVML's ABI: the
// inventory a provider registers, read the way it is on a real host.
func TestNVMLThroughLibrary(t *testing.T) {
	inv, err := Detect(context.Background(), Options{NVML: nvml.NewAt(nvmltest.Library(t)), NVIDIASMI: "-"})
	if err != nil {
		t.Fatalf("Detect() = %v", err)
	}
	if inv.Source != SourceNVML || inv.Driver != "590.48.01" || inv.CUDA != "13.1" || len(inv.GPUs) != 2 {
		t.Fatalf("Detect() = source %s, driver %q, CUDA %q, %d GPUs; want nvml, 590.48.01, 13.1, 2", inv.Source, inv.Driver, inv.CUDA, len(inv.GPUs))
	}
	h, a := inv.GPUs[0], inv.GPUs[1]
	if h.Name != "NVIDIA H100 80GB HBM3" || h.ModelKey != "h100" || h.UUID != "GPU-11111111-2222-3333-4444-555555555555" ||
		h.MemoryMiB != 81559 || h.PCIBusID != "00000000:17:00.0" || h.PCIDeviceID != "2330" ||
		h.ComputeCapability != "9.0" || h.Architecture != "hopper" || h.PowerLimitW != 700 || h.MIGMode != MIGEnabled {
		t.Errorf("GPU 0 = %s", mustJSON(t, h))
	}
	want := []MIGDevice{
		{Index: 0, Profile: "3g.40gb", GPUInstanceID: 1, ComputeInstanceID: 0, MemoryMiB: 40320, SMCount: 60},
		{Index: 1, Profile: "1g.10gb", GPUInstanceID: 2, ComputeInstanceID: 0, MemoryMiB: 9984, SMCount: 16, UUID: "MIG-5c8f1f52-4a9b-5d6f-8a3c-000000000002"},
	}
	if len(h.MIGDevices) != len(want) || h.MIGDevices[0] != want[0] || h.MIGDevices[1] != want[1] {
		t.Errorf("MIG devices = %+v, want %+v", h.MIGDevices, want)
	}
	if a.ModelKey != "a100" || a.PowerLimitW != 400 || a.UtilizationPct == nil || *a.UtilizationPct != 87 ||
		a.MIGMode != MIGDisabled || len(a.Processes) != 40 || a.Processes[0].Type != "C" || a.Processes[39].UsedMemoryMiB != 40 {
		t.Errorf("GPU 1 = %s", mustJSON(t, a))
	}
}
