//go:build cgo && linux

package nvml_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/gpu/nvml"
	"github.com/kiln-network/kiln/gpu/nvml/nvmltest"
)

// The binding's own C compiles without a single warning, even with -Wall
// -Wextra: a cold `go build` prints nothing for it.
func TestPreambleCompilesWithoutWarnings(t *testing.T) {
	src, err := os.ReadFile("dl.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start, end := strings.Index(s, "/*\n"), strings.Index(s, "*/\nimport \"C\"")
	if start < 0 || end < 0 {
		t.Fatal("no cgo preamble in dl.go")
	}
	var c strings.Builder
	for _, line := range strings.Split(s[start+3:end], "\n") {
		if !strings.HasPrefix(line, "#cgo ") {
			c.WriteString(line + "\n")
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "preamble.c")
	if err := os.WriteFile(file, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// -Wno-unused-function: cgo calls the static trampolines, a lone compile does not.
	out, err := exec.Command(nvmltest.CC(t), "-c", "-Wall", "-Wextra", "-Wno-unused-function", "-Werror", "-o", filepath.Join(dir, "p.o"), file).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("cc preamble: %v\n%s", err, out)
	}
}

func TestMissingLibrary(t *testing.T) {
	lib := nvml.NewAt(filepath.Join(t.TempDir(), "libnvidia-ml.so.1"))
	if r := lib.Init(); r != nvml.ErrorLibraryNotFound {
		t.Fatalf("Init() of a missing library = %v, want %v", r, nvml.ErrorLibraryNotFound)
	}
	if _, r := lib.DeviceGetCount(); r == nvml.Success {
		t.Errorf("DeviceGetCount() without a library = success")
	}
}

// Every call of the binding, through dlopen, against a library with NVML's
// ABI: values, struct fields, fallbacks to older entry points, buffers grown
// when too small, and handles of GPU and compute instances.
func TestFakeLibrary(t *testing.T) {
	lib := nvml.NewAt(nvmltest.Library(t))
	if r := lib.Init(); r != nvml.Success {
		t.Fatalf("Init() = %v", r)
	}
	defer lib.Shutdown()
	must := func(what string, r nvml.Return) {
		t.Helper()
		if r != nvml.Success {
			t.Fatalf("%s = %v, want success", what, r)
		}
	}
	v, r := lib.SystemGetDriverVersion()
	must("SystemGetDriverVersion()", r)
	cuda, r := lib.SystemGetCudaDriverVersion() // only the unversioned entry point exists
	must("SystemGetCudaDriverVersion()", r)
	n, r := lib.DeviceGetCount()
	must("DeviceGetCount()", r)
	if v != "590.48.01" || cuda != 13010 || n != 2 {
		t.Fatalf("driver %q, CUDA %d, %d GPUs; want 590.48.01, 13010, 2", v, cuda, n)
	}
	if _, r := lib.DeviceGetHandleByIndex(2); r != nvml.ErrorInvalidArgument {
		t.Errorf("DeviceGetHandleByIndex(2) = %v, want %v", r, nvml.ErrorInvalidArgument)
	}

	h100, r := lib.DeviceGetHandleByIndex(0)
	must("DeviceGetHandleByIndex(0)", r)
	a100, r := lib.DeviceGetHandleByIndex(1)
	must("DeviceGetHandleByIndex(1)", r)
	name, _ := h100.GetName()
	idx, _ := a100.GetIndex()
	uuid, _ := h100.GetUUID()
	mem, _ := h100.GetMemoryInfo()
	pci, _ := h100.GetPciInfo()
	major, minor, _ := h100.GetCudaComputeCapability()
	arch, _ := h100.GetArchitecture()
	power, _ := h100.GetEnforcedPowerLimit()
	util, _ := a100.GetUtilizationRates()
	if name != "NVIDIA H100 80GB HBM3" || idx != 1 || uuid != "GPU-11111111-2222-3333-4444-555555555555" ||
		mem.Total != 85520809984 || mem.Used != 1<<30 || mem.Free != mem.Total-mem.Used ||
		pci.BusID != "00000000:17:00.0" || pci.PciDeviceID != 0x233010de || pci.PciSubSystemID != 0x16c110de ||
		major != 9 || minor != 0 || arch != nvml.DeviceArchHopper || power != 700000 || util.GPU != 87 || util.Memory != 12 {
		t.Errorf("H100: %q index(A100) %d %q %+v %+v cc %d.%d arch %d power %d; A100 util %+v", name, idx, uuid, mem, pci, major, minor, arch, power, util)
	}
	if _, r := a100.GetEnforcedPowerLimit(); r != nvml.ErrorNotSupported {
		t.Errorf("A100 GetEnforcedPowerLimit() = %v, want %v", r, nvml.ErrorNotSupported)
	}

	procs, r := a100.GetComputeRunningProcesses() // 40: more than the first buffer
	must("GetComputeRunningProcesses()", r)
	if len(procs) != 40 || procs[39].Pid != 1039 || procs[39].UsedGPUMemory != 40<<20 || procs[0].GPUInstanceID != nvml.NoInstance {
		t.Errorf("GetComputeRunningProcesses() = %d processes, last %+v", len(procs), procs[len(procs)-1])
	}
	if g, r := h100.GetGraphicsRunningProcesses(); r != nvml.Success || len(g) != 0 {
		t.Errorf("GetGraphicsRunningProcesses() = %v, %v; want none", g, r)
	}

	cur, pending, r := h100.GetMigMode()
	if r != nvml.Success || cur != nvml.DeviceMIGEnable || pending != nvml.DeviceMIGEnable {
		t.Errorf("GetMigMode() = %d, %d, %v; want enabled", cur, pending, r)
	}
	type inst struct{ gi, ci, giSlices, ciSlices uint32 }
	var got []inst
	for p := range nvml.GPUInstanceProfileCount {
		info, r := h100.GetGPUInstanceProfileInfo(p)
		if r != nvml.Success {
			continue
		}
		gis, r := h100.GetGPUInstances(&info)
		must("GetGPUInstances()", r)
		for _, gi := range gis {
			gInfo, r := gi.GetInfo()
			must("GpuInstance.GetInfo()", r)
			for cp := range nvml.ComputeInstanceProfileCount {
				ciProf, r := gi.GetComputeInstanceProfileInfo(cp, nvml.ComputeInstanceEngineProfileShared)
				if r != nvml.Success {
					continue
				}
				cis, r := gi.GetComputeInstances(&ciProf)
				must("GetComputeInstances()", r)
				for _, ci := range cis {
					cInfo, r := ci.GetInfo() // only the old entry point exists
					must("ComputeInstance.GetInfo()", r)
					got = append(got, inst{gInfo.ID, cInfo.ID, info.SliceCount, ciProf.SliceCount})
				}
			}
		}
	}
	want := []inst{{2, 0, 1, 1}, {1, 0, 3, 3}} // by profile: 1 slice (id 0) first
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("MIG instances = %+v, want %+v", got, want)
	}
	max, _ := h100.GetMaxMigDeviceCount()
	mig, r := h100.GetMigDeviceHandleByIndex(0)
	must("GetMigDeviceHandleByIndex(0)", r)
	gi, _ := mig.GetGPUInstanceID()
	ci, _ := mig.GetComputeInstanceID()
	migUUID, _ := mig.GetUUID()
	if max != 7 || gi != 2 || ci != 0 || !strings.HasPrefix(migUUID, "MIG-") {
		t.Errorf("MIG device: max %d, GI %d, CI %d, %q", max, gi, ci, migUUID)
	}
}
