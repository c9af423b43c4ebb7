package gpu

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kiln-network/kiln/gpu/nvml"
	"github.com/kiln-network/kiln/gpu/nvml/nvmltest"
)

// TestNVMLDGXA100 drives the NVML path with a fake DGX A100: eight
// A100-SXM4-40GB, driver 550.54.15, CUDA 12.4. It reports only the basic
// readings; everything else must come out unknown.
func TestNVMLDGXA100(t *testing.T) {
	inv, err := Detect(context.Background(), Options{NVML: nvmltest.DGXA100(), NVIDIASMI: "-"})
	if err != nil {
		t.Fatalf("Detect(dgxa100) error = %v", err)
	}
	if inv.Source != SourceNVML || inv.Driver != "550.54.15" || inv.CUDA != "12.4" {
		t.Errorf("Detect(dgxa100) = source %q driver %q cuda %q, want %q 550.54.15 12.4", inv.Source, inv.Driver, inv.CUDA, SourceNVML)
	}
	if len(inv.GPUs) != 8 {
		t.Fatalf("Detect(dgxa100) found %d GPUs, want 8", len(inv.GPUs))
	}
	for i, g := range inv.GPUs {
		want := GPU{
			Index: i, Name: "NVIDIA A100-SXM4-40GB", ModelKey: "a100", Vendor: "nvidia",
			Architecture: "ampere", MemoryMiB: 40960, Interface: InterfaceSXM,
			ComputeCapability: "8.0", PCIDeviceID: "20b0", MIGMode: MIGDisabled,
			UUID: fmt.Sprintf("GPU-a100a100-0000-0000-0000-%012d", i), PCIBusID: fmt.Sprintf("00000000:%02x:00.0", 0x07+0x10*i),
		}
		if g.Index != want.Index || g.Name != want.Name || g.ModelKey != want.ModelKey || g.UUID != want.UUID || g.PCIBusID != want.PCIBusID ||
			g.Architecture != want.Architecture || g.MemoryMiB != want.MemoryMiB ||
			g.Interface != want.Interface || g.ComputeCapability != want.ComputeCapability ||
			g.PCIDeviceID != want.PCIDeviceID || g.MIGMode != want.MIGMode ||
			g.PowerLimitW != 0 || g.UtilizationPct != nil || len(g.Processes) != 0 {
			t.Errorf("GPU %d = %+v, want %+v", i, g, want)
		}
	}
	if inv.CPU.Threads == 0 {
		t.Errorf("CPU not filled from the OS: %+v", inv.CPU)
	}
}

// NVML's profile indices of the GPU and compute instance profiles used below.
const (
	giProfile1Slice = 0
	giProfile3Slice = 2
	giProfile2Slice = 1
	ciProfile1Slice = 0
	ciProfile3Slice = 2
)

// TestNVMLMIG creates MIG instances on the fake and checks the MIG devices
// come out with NVIDIA's profile names, ordered as nvidia-smi orders them.
func TestNVMLMIG(t *testing.T) {
	srv := nvmltest.DGXA100()
	dev := srv.Devices[0]
	dev.MIGMode = nvml.DeviceMIGEnable
	// The last: a compute instance of one slice in a GPU instance of two.
	for _, p := range []struct{ gi, ci int }{{giProfile3Slice, ciProfile3Slice}, {giProfile1Slice, ciProfile1Slice}, {giProfile1Slice, ciProfile1Slice}, {giProfile2Slice, ciProfile1Slice}} {
		gi, err := dev.CreateGPUInstance(p.gi)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gi.CreateComputeInstance(p.ci); err != nil {
			t.Fatal(err)
		}
	}
	// One MIG device handle, for GI 1 / CI 0.
	dev.MigDevices = map[int]*nvmltest.Device{1: {GPUInstanceID: 1, ComputeInstanceID: 0, UUID: "MIG-one"}}
	inv, err := Detect(context.Background(), Options{NVML: srv, NVIDIASMI: "-"})
	if err != nil {
		t.Fatal(err)
	}
	g := inv.GPUs[0]
	if g.MIGMode != MIGEnabled {
		t.Fatalf("GPU 0 MIGMode = %q, want enabled", g.MIGMode)
	}
	want := []MIGDevice{
		{Index: 0, Profile: "3g.20gb", GPUInstanceID: 0},
		{Index: 1, Profile: "1g.5gb", GPUInstanceID: 1, UUID: "MIG-one"},
		{Index: 2, Profile: "1g.5gb", GPUInstanceID: 2},
		{Index: 3, Profile: "1c.2g.10gb", GPUInstanceID: 3},
	}
	if len(g.MIGDevices) != len(want) {
		t.Fatalf("MIGDevices = %+v, want %d devices", g.MIGDevices, len(want))
	}
	for i, w := range want {
		d := g.MIGDevices[i]
		if d.Index != w.Index || d.Profile != w.Profile || d.GPUInstanceID != w.GPUInstanceID || d.UUID != w.UUID || d.MemoryMiB == 0 {
			t.Errorf("MIGDevices[%d] = %+v, want %+v (and memory)", i, d, w)
		}
	}
	if inv.GPUs[1].MIGMode != MIGDisabled || len(inv.GPUs[1].MIGDevices) != 0 {
		t.Errorf("GPU 1 = %q with %d MIG devices, want disabled and none", inv.GPUs[1].MIGMode, len(inv.GPUs[1].MIGDevices))
	}
}

// TestNVMLOptionalReadings fills the readings the fake leaves out (power,
// utilization, processes) and checks they are read.
func TestNVMLOptionalReadings(t *testing.T) {
	srv := nvmltest.DGXH100()
	dev := srv.Devices[0]
	dev.EnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return 700000, nvml.Success }
	dev.UtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{GPU: 37}, nvml.Success }
	dev.ComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 4242, UsedGPUMemory: 2 << 30, GPUInstanceID: nvml.NoInstance}}, nvml.Success
	}
	dev.GraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 4242, UsedGPUMemory: 2 << 30, GPUInstanceID: nvml.NoInstance}, {Pid: 7, UsedGPUMemory: nvml.ValueNotAvailable, GPUInstanceID: nvml.NoInstance}}, nvml.Success
	}
	// A second GPU enforces no limit: the management limit stands in.
	srv.Devices[1].PowerManagementLimitFunc = func() (uint32, nvml.Return) { return 650000, nvml.Success }
	inv, err := Detect(context.Background(), Options{NVML: srv, NVIDIASMI: "-"})
	if err != nil {
		t.Fatal(err)
	}
	g := inv.GPUs[0]
	if g.ModelKey != "h100" || g.Interface != InterfaceSXM || g.ComputeCapability != "9.0" {
		t.Errorf("GPU 0 = %s/%s/%s, want h100/sxm/9.0", g.ModelKey, g.Interface, g.ComputeCapability)
	}
	if g.PowerLimitW != 700 || inv.GPUs[1].PowerLimitW != 650 || inv.GPUs[2].PowerLimitW != 0 {
		t.Errorf("PowerLimitW = %v, %v, %v; want 700, 650 and unknown", g.PowerLimitW, inv.GPUs[1].PowerLimitW, inv.GPUs[2].PowerLimitW)
	}
	if g.UtilizationPct == nil || *g.UtilizationPct != 37 {
		t.Errorf("UtilizationPct = %v, want 37", g.UtilizationPct)
	}
	wantProcs := []Process{{PID: 4242, Type: "C+G", UsedMemoryMiB: 2048}, {PID: 7, Type: "G"}}
	if len(g.Processes) != len(wantProcs) {
		t.Fatalf("Processes = %+v, want %+v", g.Processes, wantProcs)
	}
	for i, w := range wantProcs {
		if p := g.Processes[i]; p.PID != w.PID || p.Type != w.Type || p.UsedMemoryMiB != w.UsedMemoryMiB || p.GPUInstanceID != nil {
			t.Errorf("Processes[%d] = %+v, want %+v", i, p, w)
		}
	}
}

// TestNVMLInitErrors checks how Init failures map: a missing library or an
// unloaded driver is ErrNoDriver (fall back), anything else is reported.
func TestNVMLInitErrors(t *testing.T) {
	tests := []struct {
		ret        nvml.Return
		noDriver   bool
		wantSubstr string
	}{
		{nvml.ErrorLibraryNotFound, true, "libnvidia-ml.so.1 not found"},
		{nvml.ErrorDriverNotLoaded, true, "driver not loaded"},
		{nvml.ErrorUnknown, false, "unknown error"},
	}
	if !nvml.Available {
		tests[0].wantSubstr = "built without cgo"
	}
	for _, tt := range tests {
		t.Run(tt.wantSubstr, func(t *testing.T) {
			lib := &nvmltest.Server{InitFunc: func() nvml.Return { return tt.ret }}
			_, err := detectNVML(context.Background(), lib)
			if err == nil || errors.Is(err, ErrNoDriver) != tt.noDriver {
				t.Fatalf("detectNVML(Init=%d) = %v, want ErrNoDriver=%v", tt.ret, err, tt.noDriver)
			}
			if !contains(err.Error(), tt.wantSubstr) {
				t.Errorf("detectNVML(Init=%d) = %q, want it to mention %q", tt.ret, err, tt.wantSubstr)
			}
		})
	}
}

// TestNVMLLostGPU: one device whose handle fails is noted, the others are kept.
func TestNVMLLostGPU(t *testing.T) {
	srv := nvmltest.DGXA100()
	srv.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 3 {
			return nil, nvml.ErrorGPUIsLost
		}
		return srv.Devices[i], nvml.Success
	}
	inv, err := Detect(context.Background(), Options{NVML: srv, NVIDIASMI: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) != 7 || len(inv.Notes) == 0 || !contains(inv.Notes[0], "GPU is lost") {
		t.Errorf("Detect(lost GPU 3) = %d GPUs, notes %q; want 7 and a note", len(inv.GPUs), inv.Notes)
	}
}

// TestNVMLLive runs Detect against the real driver where there is one, and
// checks it agrees with `nvidia-smi -q -x` on the same host. Skipped on hosts
// without an NVIDIA driver.
func TestNVMLLive(t *testing.T) {
	inv, err := Detect(context.Background(), Options{NVIDIASMI: "-"})
	if errors.Is(err, ErrNoDriver) {
		t.Skipf("no NVIDIA driver on this host: %v", err)
	}
	if err != nil {
		t.Fatalf("Detect() = %v", err)
	}
	if inv.Source != SourceNVML || len(inv.GPUs) == 0 || inv.Driver == "" || inv.CUDA == "" {
		t.Fatalf("Detect() = %s", mustJSON(t, inv))
	}
	for _, g := range inv.GPUs {
		if g.UUID == "" || g.MemoryMiB == 0 || g.PCIBusID == "" || g.ComputeCapability == "" {
			t.Errorf("GPU %d incomplete: %s", g.Index, mustJSON(t, g))
		}
		if g.ModelKey == "" {
			t.Logf("GPU %d (%s, PCI %s) is not in the catalogue", g.Index, g.Name, g.PCIDeviceID)
		}
	}
	smi, err := Detect(context.Background(), Options{SkipNVML: true})
	if err != nil {
		t.Skipf("nvidia-smi not usable here: %v", err)
	}
	if len(smi.GPUs) != len(inv.GPUs) || smi.Driver != inv.Driver {
		t.Fatalf("nvidia-smi sees %d GPUs, driver %q; NVML %d, %q", len(smi.GPUs), smi.Driver, len(inv.GPUs), inv.Driver)
	}
	for i := range inv.GPUs {
		a, b := inv.GPUs[i], smi.GPUs[i]
		if a.UUID != b.UUID || a.Name != b.Name || a.ModelKey != b.ModelKey || a.Interface != b.Interface ||
			a.PCIBusID != b.PCIBusID || a.PCIDeviceID != b.PCIDeviceID || a.MemoryMiB != b.MemoryMiB || a.MIGMode != b.MIGMode {
			t.Errorf("GPU %d: NVML and nvidia-smi disagree:\nnvml: %s\nsmi:  %s", i, mustJSON(t, a), mustJSON(t, b))
		}
	}
	t.Logf("%s", mustJSON(t, inv))
}
