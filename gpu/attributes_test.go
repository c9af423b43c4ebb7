package gpu

import (
	"reflect"
	"testing"
)

func TestSpecAndMemoryGiB(t *testing.T) {
	tests := []struct {
		g       GPU
		memGiB  int
		iface   string
		fp32    float64
		knownOK bool
	}{
		{GPU{ModelKey: "h100", PCIDeviceID: "2330", MemoryMiB: 81559}, 80, "sxm", 66.9, true},
		{GPU{ModelKey: "h100", PCIDeviceID: "2321", MemoryMiB: 95830}, 94, "pcie", 60, true},
		// No PCI id: nearest memory within the interface.
		{GPU{ModelKey: "h100", Interface: "pcie", MemoryMiB: 95830}, 94, "pcie", 60, true},
		{GPU{ModelKey: "a100", Interface: "sxm", MemoryMiB: 40960}, 40, "sxm", 19.5, true},
		{GPU{ModelKey: "l40s", MemoryMiB: 46068}, 48, "pcie", 91.6, true},
		{GPU{ModelKey: "", MemoryMiB: 12288}, 12, "", 0, false},
	}
	for _, tt := range tests {
		_, v, ok := tt.g.Spec()
		if ok != tt.knownOK || v.Interface != tt.iface || v.FP32TFLOPS != tt.fp32 {
			t.Errorf("Spec(%+v) = %+v, %v", tt.g, v, ok)
		}
		if got := tt.g.MemoryGiB(); got != tt.memGiB {
			t.Errorf("MemoryGiB(%+v) = %d, want %d", tt.g, got, tt.memGiB)
		}
	}
}

func TestAkashAttributes(t *testing.T) {
	inv := Inventory{Source: SourceNVML, GPUs: []GPU{
		{Index: 0, Vendor: "nvidia", ModelKey: "h100", Interface: "sxm", PCIDeviceID: "2330", MemoryMiB: 81559},
		{Index: 1, Vendor: "nvidia", ModelKey: "h100", Interface: "sxm", PCIDeviceID: "2330", MemoryMiB: 81559},
		{Index: 2, Vendor: "nvidia", Name: "NVIDIA Graphics Device"},
	}}
	want := []string{
		"capabilities/gpu/vendor/nvidia/model/h100",
		"capabilities/gpu/vendor/nvidia/model/h100/interface/sxm",
		"capabilities/gpu/vendor/nvidia/model/h100/ram/80Gi",
		"capabilities/gpu/vendor/nvidia/model/h100/ram/80Gi/interface/sxm",
	}
	if got := inv.AkashAttributes(); !reflect.DeepEqual(got, want) {
		t.Errorf("AkashAttributes() = %q, want %q", got, want)
	}
	declared, _ := Declare("h100", 1, CPUInfo{}, 0, 0)
	if got := declared.AkashAttributes(); got != nil {
		t.Errorf("AkashAttributes(declared) = %q, want none", got)
	}
}
