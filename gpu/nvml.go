//go:build cgo

package gpu

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVML is the part of NVML that inventory needs. nvml.New() satisfies it on a
// host with the driver (go-nvml dlopens libnvidia-ml.so.1 at Init, so a binary
// without the driver still starts); go-nvml's mock servers
// (pkg/nvml/mock/dgxa100, dgxh100, ...) satisfy it in tests.
type NVML interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	SystemGetDriverVersion() (string, nvml.Return)
	SystemGetCudaDriverVersion() (int, nvml.Return)
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(int) (nvml.Device, nvml.Return)
}

// nvmlAvailable reports whether this build can use NVML at all (it needs cgo).
const nvmlAvailable = true

func defaultNVML() NVML { return nvml.New() }

// detectNVML reads the GPUs through lib. A driver that is absent or not
// loaded is ErrNoDriver; any other failure to initialise is reported as is.
func detectNVML(ctx context.Context, lib NVML) (Inventory, error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		switch ret {
		case nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_NO_PERMISSION:
			return Inventory{}, fmt.Errorf("nvml init: %w (%s)", ErrNoDriver, nvmlErr(ret))
		}
		return Inventory{}, fmt.Errorf("nvml init: %s", nvmlErr(ret))
	}
	defer lib.Shutdown()

	inv := Inventory{Source: SourceNVML}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.Driver = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS && v > 0 {
		// NVML encodes CUDA 12.4 as 12040.
		inv.CUDA = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return Inventory{}, fmt.Errorf("nvml device count: %s", nvmlErr(ret))
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return Inventory{}, fmt.Errorf("nvml: %w", err)
		}
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			// One broken GPU (fallen off the bus: ERROR_GPU_IS_LOST) must not
			// hide the others; say so and go on.
			inv.Notes = append(inv.Notes, fmt.Sprintf("GPU %d: nvml handle: %s", i, nvmlErr(ret)))
			continue
		}
		g, err := nvmlGPU(dev, i)
		if err != nil {
			inv.Notes = append(inv.Notes, fmt.Sprintf("GPU %d: %v", i, err))
			continue
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	inv.finish()
	return inv, nil
}

// nvmlErr renders a Return without calling into the library, which may not be loaded.
func nvmlErr(r nvml.Return) string {
	s, ok := nvmlReturnNames[r]
	if !ok {
		return fmt.Sprintf("NVML error %d", int32(r))
	}
	return s
}

var nvmlReturnNames = map[nvml.Return]string{
	nvml.ERROR_UNINITIALIZED:      "not initialized",
	nvml.ERROR_INVALID_ARGUMENT:   "invalid argument",
	nvml.ERROR_NOT_SUPPORTED:      "not supported",
	nvml.ERROR_NO_PERMISSION:      "insufficient permissions",
	nvml.ERROR_NOT_FOUND:          "not found",
	nvml.ERROR_DRIVER_NOT_LOADED:  "driver not loaded",
	nvml.ERROR_LIBRARY_NOT_FOUND:  "libnvidia-ml.so.1 not found",
	nvml.ERROR_FUNCTION_NOT_FOUND: "function not found in libnvidia-ml",
	nvml.ERROR_GPU_IS_LOST:        "GPU is lost",
	nvml.ERROR_UNKNOWN:            "unknown error",
}

// optional calls an NVML getter whose failure only leaves a field unknown.
// NB: go-nvml's mocks panic when a method they do not implement is called;
// a missing optional reading must not cost the whole inventory, so a panic
// here is an unknown value like any other error.
func optional[T any](f func() (T, nvml.Return)) (v T, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	v, ret := f()
	return v, ret == nvml.SUCCESS
}

// nvmlGPU reads one device. Name and UUID are required; the rest is optional.
func nvmlGPU(dev nvml.Device, i int) (GPU, error) {
	g := GPU{Index: i}
	name, ok := optional(dev.GetName)
	if !ok {
		return GPU{}, errors.New("nvml: cannot read the device name")
	}
	g.Name = name
	if idx, ok := optional(dev.GetIndex); ok {
		g.Index = idx
	}
	g.UUID, _ = optional(dev.GetUUID)
	if mem, ok := optional(dev.GetMemoryInfo); ok {
		g.MemoryMiB = mem.Total / (1 << 20)
	}
	if pci, ok := optional(dev.GetPciInfo); ok {
		if pci.PciDeviceId != 0 {
			g.PCIDeviceID = fmt.Sprintf("%08x", pci.PciDeviceId)
		}
		g.PCIBusID = normBusID(cString(pci.BusId[:]))
	}
	if major, minor, ok := computeCapability(dev); ok {
		g.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	}
	if arch, ok := optional(dev.GetArchitecture); ok {
		g.Architecture = nvmlArchitectures[arch]
	}
	if mW, ok := optional(dev.GetEnforcedPowerLimit); ok && mW > 0 {
		g.PowerLimitW = float64(mW) / 1000
	} else if mW, ok := optional(dev.GetPowerManagementLimit); ok && mW > 0 {
		g.PowerLimitW = float64(mW) / 1000
	}
	if u, ok := optional(dev.GetUtilizationRates); ok {
		p := int(u.Gpu)
		g.UtilizationPct = &p
	}
	if cur, ok := migModeOf(dev); ok {
		g.MIGMode = MIGDisabled
		if cur == nvml.DEVICE_MIG_ENABLE {
			g.MIGMode = MIGEnabled
			g.MIGDevices = nvmlMIGDevices(dev)
		}
	}
	g.Processes = nvmlProcesses(dev)
	return g, nil
}

func computeCapability(dev nvml.Device) (major, minor int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	major, minor, ret := dev.GetCudaComputeCapability()
	return major, minor, ret == nvml.SUCCESS
}

func migModeOf(dev nvml.Device) (current int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	current, _, ret := dev.GetMigMode()
	return current, ret == nvml.SUCCESS
}

var nvmlArchitectures = map[nvml.DeviceArchitecture]string{
	nvml.DEVICE_ARCH_KEPLER:    "kepler",
	nvml.DEVICE_ARCH_MAXWELL:   "maxwell",
	nvml.DEVICE_ARCH_PASCAL:    "pascal",
	nvml.DEVICE_ARCH_VOLTA:     "volta",
	nvml.DEVICE_ARCH_TURING:    "turing",
	nvml.DEVICE_ARCH_AMPERE:    "ampere",
	nvml.DEVICE_ARCH_ADA:       "ada",
	nvml.DEVICE_ARCH_HOPPER:    "hopper",
	nvml.DEVICE_ARCH_BLACKWELL: "blackwell",
}

// nvmlMIGDevices lists the MIG devices through the GPU-instance and
// compute-instance APIs (what nvidia-smi and mig-parted use). Profile names
// follow NVIDIA's "<slices>g.<memory>gb" form, with a "<n>c." prefix when a
// compute instance takes only part of its GPU instance.
func nvmlMIGDevices(dev nvml.Device) []MIGDevice {
	var out []MIGDevice
	for p := 0; p < nvml.GPU_INSTANCE_PROFILE_COUNT; p++ {
		info, ok := optional(func() (nvml.GpuInstanceProfileInfo, nvml.Return) { return dev.GetGpuInstanceProfileInfo(p) })
		if !ok {
			continue
		}
		gis, ok := optional(func() ([]nvml.GpuInstance, nvml.Return) { return dev.GetGpuInstances(&info) })
		if !ok {
			continue
		}
		giProfile := fmt.Sprintf("%dg.%dgb", info.SliceCount, (info.MemorySizeMB+1023)/1024)
		for _, gi := range gis {
			giInfo, ok := optional(gi.GetInfo)
			if !ok {
				continue
			}
			for cp := 0; cp < nvml.COMPUTE_INSTANCE_PROFILE_COUNT; cp++ {
				ciProf, ok := optional(func() (nvml.ComputeInstanceProfileInfo, nvml.Return) {
					return gi.GetComputeInstanceProfileInfo(cp, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
				})
				if !ok {
					continue
				}
				cis, ok := optional(func() ([]nvml.ComputeInstance, nvml.Return) { return gi.GetComputeInstances(&ciProf) })
				if !ok {
					continue
				}
				for _, ci := range cis {
					ciInfo, ok := optional(ci.GetInfo)
					if !ok {
						continue
					}
					profile := giProfile
					if ciProf.SliceCount != info.SliceCount {
						profile = fmt.Sprintf("%dc.%s", ciProf.SliceCount, giProfile)
					}
					out = append(out, MIGDevice{
						Profile:           profile,
						GPUInstanceID:     int(giInfo.Id),
						ComputeInstanceID: int(ciInfo.Id),
						MemoryMiB:         info.MemorySizeMB,
						SMCount:           int(ciProf.MultiprocessorCount),
					})
				}
			}
		}
	}
	// NB: NVML enumerates by profile; nvidia-smi numbers MIG devices by
	// (GPU instance, compute instance). Sort the same way and number them.
	sort.Slice(out, func(a, b int) bool {
		if out[a].GPUInstanceID != out[b].GPUInstanceID {
			return out[a].GPUInstanceID < out[b].GPUInstanceID
		}
		return out[a].ComputeInstanceID < out[b].ComputeInstanceID
	})
	for i := range out {
		out[i].Index = i
	}
	// UUIDs live on the MIG device handles, matched by (GI, CI) id. The mocks
	// have no MIG handles; the devices then simply carry no UUID.
	max, _ := optional(dev.GetMaxMigDeviceCount)
	for i := 0; i < max; i++ {
		h, ok := optional(func() (nvml.Device, nvml.Return) { return dev.GetMigDeviceHandleByIndex(i) })
		if !ok || h == nil {
			continue
		}
		gi, ok1 := optional(h.GetGpuInstanceId)
		ci, ok2 := optional(h.GetComputeInstanceId)
		uuid, ok3 := optional(h.GetUUID)
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		for j := range out {
			if out[j].GPUInstanceID == gi && out[j].ComputeInstanceID == ci {
				out[j].UUID = uuid
			}
		}
	}
	return out
}

func nvmlProcesses(dev nvml.Device) []Process {
	var out []Process
	seen := map[uint32]bool{}
	add := func(ps []nvml.ProcessInfo, typ string) {
		for _, p := range ps {
			if seen[p.Pid] {
				// Listed as both compute and graphics.
				for i := range out {
					if out[i].PID == int(p.Pid) {
						out[i].Type = "C+G"
					}
				}
				continue
			}
			seen[p.Pid] = true
			proc := Process{PID: int(p.Pid), Type: typ}
			// NVML reports unknown memory as the max uint64 (NVML_VALUE_NOT_AVAILABLE).
			if p.UsedGpuMemory != ^uint64(0) {
				proc.UsedMemoryMiB = p.UsedGpuMemory / (1 << 20)
			}
			// 0xFFFFFFFF means "not under MIG".
			if p.GpuInstanceId != ^uint32(0) {
				gi, ci := int(p.GpuInstanceId), int(p.ComputeInstanceId)
				proc.GPUInstanceID, proc.ComputeInstanceID = &gi, &ci
			}
			out = append(out, proc)
		}
	}
	if ps, ok := optional(dev.GetComputeRunningProcesses); ok {
		add(ps, "C")
	}
	if ps, ok := optional(dev.GetGraphicsRunningProcesses); ok {
		add(ps, "G")
	}
	return out
}

// cString converts a NUL-terminated C char array.
func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}
