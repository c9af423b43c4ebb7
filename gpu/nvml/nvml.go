// Package nvml is a small binding of the NVML calls Kiln's GPU inventory makes, loaded with dlopen at Init.
//
// It replaces github.com/NVIDIA/go-nvml, whose cgo binding compiles NVIDIA's
// whole nvml.h and makes the C compiler print dozens of deprecation warnings
// on every cold build. This one declares only what it calls: the build is
// quiet, and a binary runs on hosts without the driver (Init then returns
// ErrorLibraryNotFound). Names follow NVML's, without the nvml prefix; the
// versioned entry points (nvmlInit_v2, nvmlDeviceGetPciInfo_v3, …) are
// preferred, with the older ones as fallback, as NVML's own header does.
package nvml

import "fmt"

// Return is an nvmlReturn_t.
type Return int32

// The nvmlReturn_t values callers branch on; see nvml.h for the others.
const (
	Success                Return = 0
	ErrorUninitialized     Return = 1
	ErrorInvalidArgument   Return = 2
	ErrorNotSupported      Return = 3
	ErrorNoPermission      Return = 4
	ErrorNotFound          Return = 6
	ErrorInsufficientSize  Return = 7
	ErrorDriverNotLoaded   Return = 9
	ErrorLibraryNotFound   Return = 12
	ErrorFunctionNotFound  Return = 13
	ErrorGPUIsLost         Return = 15
	ErrorLibRMVersionMatch Return = 18
	ErrorUnknown           Return = 999
)

var returnNames = map[Return]string{
	Success:                "success",
	ErrorUninitialized:     "not initialized",
	ErrorInvalidArgument:   "invalid argument",
	ErrorNotSupported:      "not supported",
	ErrorNoPermission:      "insufficient permissions",
	ErrorNotFound:          "not found",
	ErrorInsufficientSize:  "insufficient size",
	ErrorDriverNotLoaded:   "driver not loaded",
	ErrorLibraryNotFound:   "libnvidia-ml.so.1 not found",
	ErrorFunctionNotFound:  "function not found in libnvidia-ml",
	ErrorGPUIsLost:         "GPU is lost",
	ErrorLibRMVersionMatch: "driver/library version mismatch",
	ErrorUnknown:           "unknown error",
}

// String names r without calling into the library, which may not be loaded.
func (r Return) String() string {
	if s, ok := returnNames[r]; ok {
		return s
	}
	return fmt.Sprintf("NVML error %d", int32(r))
}

// Constants of the calls below.
const (
	// DeviceMIGEnable is GetMigMode's current mode of a GPU with MIG on.
	DeviceMIGEnable = 1
	// GPUInstanceProfileCount bounds the GPU instance profile ids
	// (NVML_GPU_INSTANCE_PROFILE_COUNT); a driver that knows fewer answers
	// the others with an error.
	GPUInstanceProfileCount = 0x12
	// ComputeInstanceProfileCount bounds the compute instance profile ids.
	ComputeInstanceProfileCount = 0x9
	// ComputeInstanceEngineProfileShared shares every engine but the SMs.
	ComputeInstanceEngineProfileShared = 0
	// ValueNotAvailable is what NVML reports for an unknown 64-bit value.
	ValueNotAvailable = ^uint64(0)
	// NoInstance is a process's GPU or compute instance id outside MIG.
	NoInstance = ^uint32(0)
)

// DeviceArchitecture is an nvmlDeviceArchitecture_t.
type DeviceArchitecture uint32

// The architectures NVML names.
const (
	DeviceArchKepler    DeviceArchitecture = 2
	DeviceArchMaxwell   DeviceArchitecture = 3
	DeviceArchPascal    DeviceArchitecture = 4
	DeviceArchVolta     DeviceArchitecture = 5
	DeviceArchTuring    DeviceArchitecture = 6
	DeviceArchAmpere    DeviceArchitecture = 7
	DeviceArchAda       DeviceArchitecture = 8
	DeviceArchHopper    DeviceArchitecture = 9
	DeviceArchBlackwell DeviceArchitecture = 10
)

// Memory is an nvmlMemory_t.
type Memory struct {
	Total, Free, Used uint64
}

// PciInfo is the part of an nvmlPciInfo_t inventory reads.
type PciInfo struct {
	// BusID is domain:bus:device.function, as NVML writes it ("00000000:17:00.0").
	BusID string
	// PciDeviceID is the device id << 16 | the vendor id.
	PciDeviceID uint32
	// PciSubSystemID is the sub-system device id.
	PciSubSystemID uint32
}

// Utilization is an nvmlUtilization_t: percent of the last sample period.
type Utilization struct {
	GPU, Memory uint32
}

// ProcessInfo is an nvmlProcessInfo_t.
type ProcessInfo struct {
	Pid uint32
	// UsedGPUMemory is in bytes; ValueNotAvailable when unknown.
	UsedGPUMemory uint64
	// GPUInstanceID and ComputeInstanceID are NoInstance outside MIG.
	GPUInstanceID, ComputeInstanceID uint32
}

// GPUInstanceProfileInfo is the part of an nvmlGpuInstanceProfileInfo_t inventory reads.
type GPUInstanceProfileInfo struct {
	ID, SliceCount, InstanceCount, MultiprocessorCount uint32
	MemorySizeMB                                       uint64
}

// GPUInstanceInfo is the part of an nvmlGpuInstanceInfo_t inventory reads.
type GPUInstanceInfo struct {
	ID, ProfileID uint32
}

// ComputeInstanceProfileInfo is the part of an nvmlComputeInstanceProfileInfo_t inventory reads.
type ComputeInstanceProfileInfo struct {
	ID, SliceCount, InstanceCount, MultiprocessorCount uint32
}

// ComputeInstanceInfo is the part of an nvmlComputeInstanceInfo_t inventory reads.
type ComputeInstanceInfo struct {
	ID, ProfileID uint32
}

// Interface is the library: New returns the real one; tests use fakes
// (package nvmltest).
type Interface interface {
	// Init loads the library (the first time) and initializes NVML. It
	// returns ErrorLibraryNotFound when the driver's library is absent.
	Init() Return
	Shutdown() Return
	SystemGetDriverVersion() (string, Return)
	// SystemGetCudaDriverVersion is the CUDA version the driver supports,
	// 1000 × major + 10 × minor (12.4 is 12040).
	SystemGetCudaDriverVersion() (int, Return)
	DeviceGetCount() (int, Return)
	DeviceGetHandleByIndex(index int) (Device, Return)
}

// Device is a GPU, or a MIG device of one.
type Device interface {
	GetName() (string, Return)
	GetIndex() (int, Return)
	GetUUID() (string, Return)
	GetMemoryInfo() (Memory, Return)
	GetPciInfo() (PciInfo, Return)
	GetCudaComputeCapability() (major, minor int, ret Return)
	GetArchitecture() (DeviceArchitecture, Return)
	// GetEnforcedPowerLimit and GetPowerManagementLimit are in milliwatts.
	GetEnforcedPowerLimit() (uint32, Return)
	GetPowerManagementLimit() (uint32, Return)
	GetUtilizationRates() (Utilization, Return)
	GetMigMode() (current, pending int, ret Return)
	GetGPUInstanceProfileInfo(profile int) (GPUInstanceProfileInfo, Return)
	GetGPUInstances(info *GPUInstanceProfileInfo) ([]GPUInstance, Return)
	GetMaxMigDeviceCount() (int, Return)
	GetMigDeviceHandleByIndex(index int) (Device, Return)
	// GetGPUInstanceID and GetComputeInstanceID are a MIG device's instances.
	GetGPUInstanceID() (int, Return)
	GetComputeInstanceID() (int, Return)
	GetComputeRunningProcesses() ([]ProcessInfo, Return)
	GetGraphicsRunningProcesses() ([]ProcessInfo, Return)
}

// GPUInstance is a MIG GPU instance.
type GPUInstance interface {
	GetInfo() (GPUInstanceInfo, Return)
	GetComputeInstanceProfileInfo(profile, engineProfile int) (ComputeInstanceProfileInfo, Return)
	GetComputeInstances(info *ComputeInstanceProfileInfo) ([]ComputeInstance, Return)
}

// ComputeInstance is a MIG compute instance.
type ComputeInstance interface {
	GetInfo() (ComputeInstanceInfo, Return)
}
