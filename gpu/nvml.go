package gpu

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/kiln-network/kiln/gpu/nvml"
)

// NVML is the NVML library inventory reads. nvml.New() is the driver's
// (dlopened at Init, so a binary without the driver still starts); the fakes
// of gpu/nvml/nvmltest stand in for it in tests.
type NVML = nvml.Interface

// nvmlAvailable reports whether this build can load NVML at all (cgo on Linux).
const nvmlAvailable = nvml.Available

func defaultNVML() NVML { return nvml.New() }

// detectNVML reads the GPUs through lib. A driver that is absent or not
// loaded is ErrNoDriver; any other failure to initialise is reported as is.
func detectNVML(ctx context.Context, lib NVML) (Inventory, error) {
	if ret := lib.Init(); ret != nvml.Success {
		switch ret {
		case nvml.ErrorLibraryNotFound, nvml.ErrorDriverNotLoaded, nvml.ErrorNoPermission:
			if ret == nvml.ErrorLibraryNotFound && !nvmlAvailable {
				return Inventory{}, fmt.Errorf("nvml: %w (binary built without cgo, NVML not available)", ErrNoDriver)
			}
			return Inventory{}, fmt.Errorf("nvml init: %w (%s)", ErrNoDriver, ret)
		}
		return Inventory{}, fmt.Errorf("nvml init: %s", ret)
	}
	defer lib.Shutdown()

	inv := Inventory{Source: SourceNVML}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.Success {
		inv.Driver = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.Success && v > 0 {
		// NVML encodes CUDA 12.4 as 12040.
		inv.CUDA = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.Success {
		return Inventory{}, fmt.Errorf("nvml device count: %s", ret)
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return Inventory{}, fmt.Errorf("nvml: %w", err)
		}
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.Success {
			// One broken GPU (fallen off the bus: ErrorGPUIsLost) must not
			// hide the others; say so and go on.
			inv.Notes = append(inv.Notes, fmt.Sprintf("GPU %d: nvml handle: %s", i, ret))
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

// optional calls an NVML getter whose failure only leaves a field unknown.
func optional[T any](f func() (T, nvml.Return)) (v T, ok bool) {
	v, ret := f()
	return v, ret == nvml.Success
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
		if pci.PciDeviceID != 0 {
			g.PCIDeviceID = fmt.Sprintf("%08x", pci.PciDeviceID)
		}
		g.PCIBusID = normBusID(pci.BusID)
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
		p := int(u.GPU)
		g.UtilizationPct = &p
	}
	if cur, _, ret := dev.GetMigMode(); ret == nvml.Success {
		g.MIGMode = MIGDisabled
		if cur == nvml.DeviceMIGEnable {
			g.MIGMode = MIGEnabled
			g.MIGDevices = nvmlMIGDevices(dev)
		}
	}
	g.Processes = nvmlProcesses(dev)
	return g, nil
}

func computeCapability(dev nvml.Device) (major, minor int, ok bool) {
	major, minor, ret := dev.GetCudaComputeCapability()
	return major, minor, ret == nvml.Success
}

var nvmlArchitectures = map[nvml.DeviceArchitecture]string{
	nvml.DeviceArchKepler:    "kepler",
	nvml.DeviceArchMaxwell:   "maxwell",
	nvml.DeviceArchPascal:    "pascal",
	nvml.DeviceArchVolta:     "volta",
	nvml.DeviceArchTuring:    "turing",
	nvml.DeviceArchAmpere:    "ampere",
	nvml.DeviceArchAda:       "ada",
	nvml.DeviceArchHopper:    "hopper",
	nvml.DeviceArchBlackwell: "blackwell",
}

// nvmlMIGDevices lists the MIG devices through the GPU-instance and
// compute-instance APIs (what nvidia-smi and mig-parted use). Profile names
// follow NVIDIA's "<slices>g.<memory>gb" form, with a "<n>c." prefix when a
// compute instance takes only part of its GPU instance.
func nvmlMIGDevices(dev nvml.Device) []MIGDevice {
	var out []MIGDevice
	for p := 0; p < nvml.GPUInstanceProfileCount; p++ {
		info, ok := optional(func() (nvml.GPUInstanceProfileInfo, nvml.Return) { return dev.GetGPUInstanceProfileInfo(p) })
		if !ok {
			continue
		}
		gis, ok := optional(func() ([]nvml.GPUInstance, nvml.Return) { return dev.GetGPUInstances(&info) })
		if !ok {
			continue
		}
		giProfile := fmt.Sprintf("%dg.%dgb", info.SliceCount, (info.MemorySizeMB+1023)/1024)
		for _, gi := range gis {
			giInfo, ok := optional(gi.GetInfo)
			if !ok {
				continue
			}
			for cp := 0; cp < nvml.ComputeInstanceProfileCount; cp++ {
				ciProf, ok := optional(func() (nvml.ComputeInstanceProfileInfo, nvml.Return) {
					return gi.GetComputeInstanceProfileInfo(cp, nvml.ComputeInstanceEngineProfileShared)
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
						GPUInstanceID:     int(giInfo.ID),
						ComputeInstanceID: int(ciInfo.ID),
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
		gi, ok1 := optional(h.GetGPUInstanceID)
		ci, ok2 := optional(h.GetComputeInstanceID)
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
			if p.UsedGPUMemory != nvml.ValueNotAvailable {
				proc.UsedMemoryMiB = p.UsedGPUMemory / (1 << 20)
			}
			if p.GPUInstanceID != nvml.NoInstance {
				gi, ci := int(p.GPUInstanceID), int(p.ComputeInstanceID)
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
