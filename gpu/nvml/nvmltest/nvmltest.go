// Package nvmltest provides fake NVML libraries for tests: DGX-like servers whose readings can be overridden and on which MIG instances can be created.
package nvmltest

import (
	"fmt"
	"maps"

	"github.com/kiln-network/kiln/gpu/nvml"
)

// Server is a fake nvml.Interface: a host with Devices.
type Server struct {
	DriverVersion     string
	CUDADriverVersion int
	Devices           []*Device
	// InitFunc replaces Init; nil answers Success.
	InitFunc func() nvml.Return
	// DeviceGetHandleByIndexFunc replaces DeviceGetHandleByIndex; nil answers Devices[i].
	DeviceGetHandleByIndexFunc func(int) (nvml.Device, nvml.Return)
}

var _ nvml.Interface = (*Server)(nil)

func (s *Server) Init() nvml.Return {
	if s.InitFunc != nil {
		return s.InitFunc()
	}
	return nvml.Success
}

func (s *Server) Shutdown() nvml.Return                         { return nvml.Success }
func (s *Server) SystemGetDriverVersion() (string, nvml.Return) { return s.DriverVersion, nvml.Success }
func (s *Server) SystemGetCudaDriverVersion() (int, nvml.Return) {
	return s.CUDADriverVersion, nvml.Success
}
func (s *Server) DeviceGetCount() (int, nvml.Return) { return len(s.Devices), nvml.Success }

func (s *Server) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	if s.DeviceGetHandleByIndexFunc != nil {
		return s.DeviceGetHandleByIndexFunc(i)
	}
	if i < 0 || i >= len(s.Devices) {
		return nil, nvml.ErrorInvalidArgument
	}
	return s.Devices[i], nvml.Success
}

// Profile is a MIG GPU instance profile of a model.
type Profile struct {
	ID, Slices, Instances, SMs uint32
	MemoryMB                   uint64
}

// Device is a fake GPU. The optional readings (power, utilization,
// processes) answer ErrorNotSupported unless their Func is set, as on GPUs
// that do not report them.
type Device struct {
	Index       int
	Name, UUID  string
	MemoryBytes uint64
	PciDeviceID uint32
	BusID       string
	CCMajor     int
	CCMinor     int
	Arch        nvml.DeviceArchitecture

	EnforcedPowerLimitFunc       func() (uint32, nvml.Return)
	PowerManagementLimitFunc     func() (uint32, nvml.Return)
	UtilizationRatesFunc         func() (nvml.Utilization, nvml.Return)
	ComputeRunningProcessesFunc  func() ([]nvml.ProcessInfo, nvml.Return)
	GraphicsRunningProcessesFunc func() ([]nvml.ProcessInfo, nvml.Return)

	// Profiles are the MIG GPU instance profiles, by NVML profile index;
	// none: the GPU has no MIG.
	Profiles map[int]Profile
	// MIGMode is the current MIG mode (nvml.DeviceMIGEnable when on).
	MIGMode int
	// MigDevices are the MIG device handles, by index.
	MigDevices map[int]*Device
	// GPUInstanceID and ComputeInstanceID are set on a MIG device handle.
	GPUInstanceID, ComputeInstanceID int

	instances []*GPUInstance
}

var _ nvml.Device = (*Device)(nil)

func (d *Device) GetName() (string, nvml.Return) { return d.Name, nvml.Success }
func (d *Device) GetIndex() (int, nvml.Return)   { return d.Index, nvml.Success }
func (d *Device) GetUUID() (string, nvml.Return) { return d.UUID, nvml.Success }
func (d *Device) GetMemoryInfo() (nvml.Memory, nvml.Return) {
	return nvml.Memory{Total: d.MemoryBytes, Free: d.MemoryBytes}, nvml.Success
}
func (d *Device) GetPciInfo() (nvml.PciInfo, nvml.Return) {
	return nvml.PciInfo{BusID: d.BusID, PciDeviceID: d.PciDeviceID}, nvml.Success
}
func (d *Device) GetCudaComputeCapability() (int, int, nvml.Return) {
	return d.CCMajor, d.CCMinor, nvml.Success
}
func (d *Device) GetArchitecture() (nvml.DeviceArchitecture, nvml.Return) {
	return d.Arch, nvml.Success
}

func call[T any](f func() (T, nvml.Return)) (T, nvml.Return) {
	if f == nil {
		var zero T
		return zero, nvml.ErrorNotSupported
	}
	return f()
}

func (d *Device) GetEnforcedPowerLimit() (uint32, nvml.Return) { return call(d.EnforcedPowerLimitFunc) }
func (d *Device) GetPowerManagementLimit() (uint32, nvml.Return) {
	return call(d.PowerManagementLimitFunc)
}
func (d *Device) GetUtilizationRates() (nvml.Utilization, nvml.Return) {
	return call(d.UtilizationRatesFunc)
}
func (d *Device) GetComputeRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	return call(d.ComputeRunningProcessesFunc)
}
func (d *Device) GetGraphicsRunningProcesses() ([]nvml.ProcessInfo, nvml.Return) {
	return call(d.GraphicsRunningProcessesFunc)
}

func (d *Device) GetMigMode() (int, int, nvml.Return) {
	if len(d.Profiles) == 0 {
		return 0, 0, nvml.ErrorNotSupported
	}
	return d.MIGMode, d.MIGMode, nvml.Success
}

func (d *Device) GetGPUInstanceProfileInfo(profile int) (nvml.GPUInstanceProfileInfo, nvml.Return) {
	if len(d.Profiles) == 0 {
		return nvml.GPUInstanceProfileInfo{}, nvml.ErrorNotSupported
	}
	p, ok := d.Profiles[profile]
	if !ok {
		return nvml.GPUInstanceProfileInfo{}, nvml.ErrorInvalidArgument
	}
	return nvml.GPUInstanceProfileInfo{ID: p.ID, SliceCount: p.Slices, InstanceCount: p.Instances, MultiprocessorCount: p.SMs, MemorySizeMB: p.MemoryMB}, nvml.Success
}

func (d *Device) GetGPUInstances(info *nvml.GPUInstanceProfileInfo) ([]nvml.GPUInstance, nvml.Return) {
	var out []nvml.GPUInstance
	for _, gi := range d.instances {
		if gi.profile.ID == info.ID {
			out = append(out, gi)
		}
	}
	return out, nvml.Success
}

func (d *Device) GetMaxMigDeviceCount() (int, nvml.Return) {
	if len(d.Profiles) == 0 {
		return 0, nvml.ErrorNotSupported
	}
	return 7, nvml.Success
}

func (d *Device) GetMigDeviceHandleByIndex(i int) (nvml.Device, nvml.Return) {
	m, ok := d.MigDevices[i]
	if !ok {
		return nil, nvml.ErrorNotFound
	}
	return m, nvml.Success
}

func (d *Device) GetGPUInstanceID() (int, nvml.Return)     { return d.GPUInstanceID, nvml.Success }
func (d *Device) GetComputeInstanceID() (int, nvml.Return) { return d.ComputeInstanceID, nvml.Success }

// CreateGPUInstance creates a GPU instance of the profile with index
// profile, with the next free id, as nvmlDeviceCreateGpuInstance does. MIG
// mode must be on.
func (d *Device) CreateGPUInstance(profile int) (*GPUInstance, error) {
	p, ok := d.Profiles[profile]
	if !ok || d.MIGMode != nvml.DeviceMIGEnable {
		return nil, fmt.Errorf("GPU %d: no GPU instance profile %d with MIG mode %d", d.Index, profile, d.MIGMode)
	}
	gi := &GPUInstance{id: uint32(len(d.instances)), profile: p}
	d.instances = append(d.instances, gi)
	return gi, nil
}

// GPUInstance is a fake MIG GPU instance.
type GPUInstance struct {
	id      uint32
	profile Profile
	cis     []*ComputeInstance
}

var _ nvml.GPUInstance = (*GPUInstance)(nil)

func (g *GPUInstance) GetInfo() (nvml.GPUInstanceInfo, nvml.Return) {
	return nvml.GPUInstanceInfo{ID: g.id, ProfileID: g.profile.ID}, nvml.Success
}

// ciSlices are the slices of each compute instance profile index.
var ciSlices = []uint32{1, 2, 3, 4, 7, 8, 6}

func (g *GPUInstance) GetComputeInstanceProfileInfo(profile, engine int) (nvml.ComputeInstanceProfileInfo, nvml.Return) {
	if engine != nvml.ComputeInstanceEngineProfileShared || profile < 0 || profile >= len(ciSlices) || ciSlices[profile] > g.profile.Slices {
		return nvml.ComputeInstanceProfileInfo{}, nvml.ErrorNotSupported
	}
	s := ciSlices[profile]
	return nvml.ComputeInstanceProfileInfo{ID: uint32(profile), SliceCount: s, InstanceCount: g.profile.Slices / s, MultiprocessorCount: g.profile.SMs / g.profile.Slices * s}, nvml.Success
}

func (g *GPUInstance) GetComputeInstances(info *nvml.ComputeInstanceProfileInfo) ([]nvml.ComputeInstance, nvml.Return) {
	var out []nvml.ComputeInstance
	for _, ci := range g.cis {
		if ci.profile == info.ID {
			out = append(out, ci)
		}
	}
	return out, nvml.Success
}

// CreateComputeInstance creates a compute instance of the profile with index
// profile in g, with the next free id.
func (g *GPUInstance) CreateComputeInstance(profile int) (*ComputeInstance, error) {
	if _, r := g.GetComputeInstanceProfileInfo(profile, nvml.ComputeInstanceEngineProfileShared); r != nvml.Success {
		return nil, fmt.Errorf("GPU instance %d: compute instance profile %d: %v", g.id, profile, r)
	}
	ci := &ComputeInstance{id: uint32(len(g.cis)), profile: uint32(profile)}
	g.cis = append(g.cis, ci)
	return ci, nil
}

// ComputeInstance is a fake MIG compute instance.
type ComputeInstance struct {
	id, profile uint32
}

func (c *ComputeInstance) GetInfo() (nvml.ComputeInstanceInfo, nvml.Return) {
	return nvml.ComputeInstanceInfo{ID: c.id, ProfileID: c.profile}, nvml.Success
}

// The MIG profiles (NVML profile index → profile) of the A100 40GB and the H100 80GB.
var (
	a100Profiles = map[int]Profile{
		0: {ID: 19, Slices: 1, Instances: 7, SMs: 14, MemoryMB: 4864},
		1: {ID: 14, Slices: 2, Instances: 3, SMs: 28, MemoryMB: 9856},
		2: {ID: 9, Slices: 3, Instances: 2, SMs: 42, MemoryMB: 19968},
		3: {ID: 5, Slices: 4, Instances: 1, SMs: 56, MemoryMB: 19968},
		4: {ID: 0, Slices: 7, Instances: 1, SMs: 98, MemoryMB: 40192},
	}
	h100Profiles = map[int]Profile{
		0: {ID: 19, Slices: 1, Instances: 7, SMs: 16, MemoryMB: 9856},
		1: {ID: 14, Slices: 2, Instances: 3, SMs: 32, MemoryMB: 20096},
		2: {ID: 9, Slices: 3, Instances: 2, SMs: 60, MemoryMB: 40320},
		3: {ID: 5, Slices: 4, Instances: 1, SMs: 64, MemoryMB: 40320},
		4: {ID: 0, Slices: 7, Instances: 1, SMs: 132, MemoryMB: 80896},
	}
)

// DGXA100 returns a host of eight A100-SXM4-40GB, driver 550.54.15, CUDA
// 12.4, MIG capable and off.
func DGXA100() *Server {
	s := &Server{DriverVersion: "550.54.15", CUDADriverVersion: 12040}
	for i := range 8 {
		s.Devices = append(s.Devices, &Device{
			Index: i, Name: "NVIDIA A100-SXM4-40GB", UUID: fmt.Sprintf("GPU-a100a100-0000-0000-0000-%012d", i),
			MemoryBytes: 40 << 30, PciDeviceID: 0x20B010DE, BusID: fmt.Sprintf("00000000:%02X:00.0", 0x07+0x10*i),
			CCMajor: 8, CCMinor: 0, Arch: nvml.DeviceArchAmpere, Profiles: maps.Clone(a100Profiles),
		})
	}
	return s
}

// DGXH100 returns a host of eight H100 80GB HBM3 (SXM), driver 550.54.15,
// CUDA 12.4, MIG capable and off.
func DGXH100() *Server {
	s := &Server{DriverVersion: "550.54.15", CUDADriverVersion: 12040}
	for i := range 8 {
		s.Devices = append(s.Devices, &Device{
			Index: i, Name: "NVIDIA H100 80GB HBM3", UUID: fmt.Sprintf("GPU-h100h100-0000-0000-0000-%012d", i),
			MemoryBytes: 80 << 30, PciDeviceID: 0x233010DE, BusID: fmt.Sprintf("00000000:%02X:00.0", 0x18+0x10*i),
			CCMajor: 9, CCMinor: 0, Arch: nvml.DeviceArchHopper, Profiles: maps.Clone(h100Profiles),
		})
	}
	return s
}
