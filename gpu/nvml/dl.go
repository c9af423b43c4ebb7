//go:build cgo && linux

package nvml

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// The NVML types this binding reads, laid out as nvml.h (API 13) declares
// them; only these are declared, so that no deprecated declaration is ever
// compiled.
typedef int kiln_nvml_ret;
typedef struct { unsigned long long total, free, used; } kiln_nvml_memory;
typedef struct {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
} kiln_nvml_pci;
typedef struct { unsigned int gpu, memory; } kiln_nvml_util;
typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId, computeInstanceId;
} kiln_nvml_proc;
typedef struct {
	unsigned int id, isP2pSupported, sliceCount, instanceCount, multiprocessorCount,
		copyEngineCount, decoderCount, encoderCount, jpegCount, ofaCount;
	unsigned long long memorySizeMB;
} kiln_nvml_gi_profile;
typedef struct { unsigned int start, size; } kiln_nvml_placement;
typedef struct {
	void *device;
	unsigned int id, profileId;
	kiln_nvml_placement placement;
} kiln_nvml_gi_info;
typedef struct {
	unsigned int id, sliceCount, instanceCount, multiprocessorCount,
		sharedCopyEngineCount, sharedDecoderCount, sharedEncoderCount, sharedJpegCount, sharedOfaCount;
} kiln_nvml_ci_profile;
typedef struct {
	void *device, *gpuInstance;
	unsigned int id, profileId;
	kiln_nvml_placement placement;
} kiln_nvml_ci_info;

static void *kiln_nvml_open(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
static void *kiln_nvml_sym(void *lib, const char *name) { return dlsym(lib, name); }

// One trampoline per signature: h is a handle, p a pointer, u an unsigned int.
static kiln_nvml_ret kiln_nvml_v(void *f) { return ((kiln_nvml_ret (*)(void))f)(); }
static kiln_nvml_ret kiln_nvml_p(void *f, void *p) { return ((kiln_nvml_ret (*)(void *))f)(p); }
static kiln_nvml_ret kiln_nvml_pu(void *f, void *p, unsigned int u) { return ((kiln_nvml_ret (*)(void *, unsigned int))f)(p, u); }
static kiln_nvml_ret kiln_nvml_up(void *f, unsigned int u, void *p) { return ((kiln_nvml_ret (*)(unsigned int, void *))f)(u, p); }
static kiln_nvml_ret kiln_nvml_hp(void *f, void *h, void *p) { return ((kiln_nvml_ret (*)(void *, void *))f)(h, p); }
static kiln_nvml_ret kiln_nvml_hpu(void *f, void *h, void *p, unsigned int u) { return ((kiln_nvml_ret (*)(void *, void *, unsigned int))f)(h, p, u); }
static kiln_nvml_ret kiln_nvml_hpp(void *f, void *h, void *p, void *q) { return ((kiln_nvml_ret (*)(void *, void *, void *))f)(h, p, q); }
static kiln_nvml_ret kiln_nvml_hup(void *f, void *h, unsigned int u, void *p) { return ((kiln_nvml_ret (*)(void *, unsigned int, void *))f)(h, u, p); }
static kiln_nvml_ret kiln_nvml_hupp(void *f, void *h, unsigned int u, void *p, void *q) { return ((kiln_nvml_ret (*)(void *, unsigned int, void *, void *))f)(h, u, p, q); }
static kiln_nvml_ret kiln_nvml_huup(void *f, void *h, unsigned int u, unsigned int v, void *p) { return ((kiln_nvml_ret (*)(void *, unsigned int, unsigned int, void *))f)(h, u, v, p); }
*/
import "C"

import (
	"sync"
	"unsafe"
)

// Available is true when this build can load NVML: cgo on Linux.
const Available = true

// DefaultLibrary is the driver's NVML library, found by the dynamic linker.
const DefaultLibrary = "libnvidia-ml.so.1"

// New returns the NVML of DefaultLibrary; nothing is loaded before Init.
func New() Interface { return NewAt(DefaultLibrary) }

// NewAt returns the NVML library at path (a name the dynamic linker looks up,
// or a file); nothing is loaded before Init.
func NewAt(path string) Interface { return &library{path: path} }

type library struct {
	path string

	once sync.Once
	ok   bool // the library loaded
	fn   funcs
}

// funcs are the library's entry points; nil when it lacks one.
type funcs struct {
	init, shutdown, driverVersion, cudaVersion, count, handleByIndex unsafe.Pointer

	name, index, uuid, memory, pci, cc, arch, enforcedPower, powerLimit, util   unsafe.Pointer
	migMode, giProfile, gis, maxMig, migHandle, giID, ciID, computeP, graphicsP unsafe.Pointer

	giInfo, ciProfile, cis, ciInfo unsafe.Pointer
}

// load dlopens the library and resolves every entry point, each from the
// newest version this binding knows to the oldest.
func (l *library) load() {
	cpath := C.CString(l.path)
	defer C.free(unsafe.Pointer(cpath))
	h := C.kiln_nvml_open(cpath)
	if h == nil {
		return
	}
	sym := func(names ...string) unsafe.Pointer {
		for _, n := range names {
			cn := C.CString(n)
			p := C.kiln_nvml_sym(h, cn)
			C.free(unsafe.Pointer(cn))
			if p != nil {
				return p
			}
		}
		return nil
	}
	l.fn = funcs{
		init:          sym("nvmlInit_v2", "nvmlInit"),
		shutdown:      sym("nvmlShutdown"),
		driverVersion: sym("nvmlSystemGetDriverVersion"),
		cudaVersion:   sym("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"),
		count:         sym("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"),
		handleByIndex: sym("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"),
		name:          sym("nvmlDeviceGetName"),
		index:         sym("nvmlDeviceGetIndex"),
		uuid:          sym("nvmlDeviceGetUUID"),
		memory:        sym("nvmlDeviceGetMemoryInfo"),
		pci:           sym("nvmlDeviceGetPciInfo_v3"),
		cc:            sym("nvmlDeviceGetCudaComputeCapability"),
		arch:          sym("nvmlDeviceGetArchitecture"),
		enforcedPower: sym("nvmlDeviceGetEnforcedPowerLimit"),
		powerLimit:    sym("nvmlDeviceGetPowerManagementLimit"),
		util:          sym("nvmlDeviceGetUtilizationRates"),
		migMode:       sym("nvmlDeviceGetMigMode"),
		giProfile:     sym("nvmlDeviceGetGpuInstanceProfileInfo"),
		gis:           sym("nvmlDeviceGetGpuInstances"),
		maxMig:        sym("nvmlDeviceGetMaxMigDeviceCount"),
		migHandle:     sym("nvmlDeviceGetMigDeviceHandleByIndex"),
		giID:          sym("nvmlDeviceGetGpuInstanceId"),
		ciID:          sym("nvmlDeviceGetComputeInstanceId"),
		// NB: _v3 and _v2 take the same nvmlProcessInfo_t; _v1's is smaller.
		computeP:  sym("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"),
		graphicsP: sym("nvmlDeviceGetGraphicsRunningProcesses_v3", "nvmlDeviceGetGraphicsRunningProcesses_v2"),
		giInfo:    sym("nvmlGpuInstanceGetInfo"),
		ciProfile: sym("nvmlGpuInstanceGetComputeInstanceProfileInfo"),
		cis:       sym("nvmlGpuInstanceGetComputeInstances"),
		ciInfo:    sym("nvmlComputeInstanceGetInfo_v2", "nvmlComputeInstanceGetInfo"),
	}
	l.ok = true
}

func (l *library) Init() Return {
	l.once.Do(l.load)
	if !l.ok {
		return ErrorLibraryNotFound
	}
	if l.fn.init == nil {
		return ErrorFunctionNotFound
	}
	return Return(C.kiln_nvml_v(l.fn.init))
}

func (l *library) Shutdown() Return {
	if !l.ok || l.fn.shutdown == nil {
		return ErrorUninitialized
	}
	return Return(C.kiln_nvml_v(l.fn.shutdown))
}

// driverVersionBuffer is NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE; nameBuffer
// NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
const (
	driverVersionBuffer = 80
	nameBuffer          = 96
)

// str calls f(h, buf, len) for a string out-parameter, h omitted when nil.
func str(f, h unsafe.Pointer, size int) (string, Return) {
	if f == nil {
		return "", ErrorFunctionNotFound
	}
	buf := make([]byte, size)
	var r C.kiln_nvml_ret
	if h == nil {
		r = C.kiln_nvml_pu(f, unsafe.Pointer(&buf[0]), C.uint(size))
	} else {
		r = C.kiln_nvml_hpu(f, h, unsafe.Pointer(&buf[0]), C.uint(size))
	}
	return cString(buf), Return(r)
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (l *library) SystemGetDriverVersion() (string, Return) {
	return str(l.fn.driverVersion, nil, driverVersionBuffer)
}

func (l *library) SystemGetCudaDriverVersion() (int, Return) {
	if l.fn.cudaVersion == nil {
		return 0, ErrorFunctionNotFound
	}
	var v C.int
	r := C.kiln_nvml_p(l.fn.cudaVersion, unsafe.Pointer(&v))
	return int(v), Return(r)
}

func (l *library) DeviceGetCount() (int, Return) {
	if l.fn.count == nil {
		return 0, ErrorFunctionNotFound
	}
	var n C.uint
	r := C.kiln_nvml_p(l.fn.count, unsafe.Pointer(&n))
	return int(n), Return(r)
}

func (l *library) DeviceGetHandleByIndex(i int) (Device, Return) {
	if l.fn.handleByIndex == nil {
		return nil, ErrorFunctionNotFound
	}
	var h unsafe.Pointer
	r := Return(C.kiln_nvml_up(l.fn.handleByIndex, C.uint(i), unsafe.Pointer(&h)))
	if r != Success {
		return nil, r
	}
	return &device{l: l, h: h}, Success
}

// device is an nvmlDevice_t: a pointer owned by the library.
type device struct {
	l *library
	h unsafe.Pointer
}

// out calls f(h, p) for one out-parameter.
func (d *device) out(f, p unsafe.Pointer) Return {
	if f == nil {
		return ErrorFunctionNotFound
	}
	return Return(C.kiln_nvml_hp(f, d.h, p))
}

func (d *device) GetName() (string, Return) { return str(d.l.fn.name, d.h, nameBuffer) }
func (d *device) GetUUID() (string, Return) { return str(d.l.fn.uuid, d.h, nameBuffer) }

func (d *device) GetIndex() (int, Return) {
	var v C.uint
	r := d.out(d.l.fn.index, unsafe.Pointer(&v))
	return int(v), r
}

func (d *device) GetMemoryInfo() (Memory, Return) {
	var m C.kiln_nvml_memory
	r := d.out(d.l.fn.memory, unsafe.Pointer(&m))
	return Memory{Total: uint64(m.total), Free: uint64(m.free), Used: uint64(m.used)}, r
}

func (d *device) GetPciInfo() (PciInfo, Return) {
	var p C.kiln_nvml_pci
	r := d.out(d.l.fn.pci, unsafe.Pointer(&p))
	bus := C.GoBytes(unsafe.Pointer(&p.busId[0]), C.int(len(p.busId)))
	return PciInfo{BusID: cString(bus), PciDeviceID: uint32(p.pciDeviceId), PciSubSystemID: uint32(p.pciSubSystemId)}, r
}

func (d *device) GetCudaComputeCapability() (int, int, Return) {
	if d.l.fn.cc == nil {
		return 0, 0, ErrorFunctionNotFound
	}
	var major, minor C.int
	r := C.kiln_nvml_hpp(d.l.fn.cc, d.h, unsafe.Pointer(&major), unsafe.Pointer(&minor))
	return int(major), int(minor), Return(r)
}

func (d *device) GetArchitecture() (DeviceArchitecture, Return) {
	var v C.uint
	r := d.out(d.l.fn.arch, unsafe.Pointer(&v))
	return DeviceArchitecture(v), r
}

func (d *device) GetEnforcedPowerLimit() (uint32, Return) {
	var v C.uint
	r := d.out(d.l.fn.enforcedPower, unsafe.Pointer(&v))
	return uint32(v), r
}

func (d *device) GetPowerManagementLimit() (uint32, Return) {
	var v C.uint
	r := d.out(d.l.fn.powerLimit, unsafe.Pointer(&v))
	return uint32(v), r
}

func (d *device) GetUtilizationRates() (Utilization, Return) {
	var u C.kiln_nvml_util
	r := d.out(d.l.fn.util, unsafe.Pointer(&u))
	return Utilization{GPU: uint32(u.gpu), Memory: uint32(u.memory)}, r
}

func (d *device) GetMigMode() (int, int, Return) {
	if d.l.fn.migMode == nil {
		return 0, 0, ErrorFunctionNotFound
	}
	var cur, pending C.uint
	r := C.kiln_nvml_hpp(d.l.fn.migMode, d.h, unsafe.Pointer(&cur), unsafe.Pointer(&pending))
	return int(cur), int(pending), Return(r)
}

func (d *device) GetGPUInstanceProfileInfo(profile int) (GPUInstanceProfileInfo, Return) {
	if d.l.fn.giProfile == nil {
		return GPUInstanceProfileInfo{}, ErrorFunctionNotFound
	}
	var p C.kiln_nvml_gi_profile
	r := C.kiln_nvml_hup(d.l.fn.giProfile, d.h, C.uint(profile), unsafe.Pointer(&p))
	return GPUInstanceProfileInfo{
		ID: uint32(p.id), SliceCount: uint32(p.sliceCount), InstanceCount: uint32(p.instanceCount),
		MultiprocessorCount: uint32(p.multiprocessorCount), MemorySizeMB: uint64(p.memorySizeMB),
	}, Return(r)
}

// handles calls f(h, id, array, &count) with room for max handles and
// returns the count it reports. The array is C memory: it receives the
// library's pointers.
func handles(f, h unsafe.Pointer, id uint32, max uint32) ([]unsafe.Pointer, Return) {
	if f == nil {
		return nil, ErrorFunctionNotFound
	}
	if max == 0 {
		return nil, Success
	}
	arr := C.calloc(C.size_t(max), C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(arr)
	count := C.uint(max)
	r := Return(C.kiln_nvml_hupp(f, h, C.uint(id), arr, unsafe.Pointer(&count)))
	if r != Success {
		return nil, r
	}
	got := unsafe.Slice((*unsafe.Pointer)(arr), max)
	return append([]unsafe.Pointer(nil), got[:min(uint32(count), max)]...), Success
}

func (d *device) GetGPUInstances(info *GPUInstanceProfileInfo) ([]GPUInstance, Return) {
	hs, r := handles(d.l.fn.gis, d.h, info.ID, info.InstanceCount)
	out := make([]GPUInstance, len(hs))
	for i, h := range hs {
		out[i] = &gpuInstance{l: d.l, h: h}
	}
	return out, r
}

func (d *device) GetMaxMigDeviceCount() (int, Return) {
	var v C.uint
	r := d.out(d.l.fn.maxMig, unsafe.Pointer(&v))
	return int(v), r
}

func (d *device) GetMigDeviceHandleByIndex(i int) (Device, Return) {
	if d.l.fn.migHandle == nil {
		return nil, ErrorFunctionNotFound
	}
	var h unsafe.Pointer
	r := Return(C.kiln_nvml_hup(d.l.fn.migHandle, d.h, C.uint(i), unsafe.Pointer(&h)))
	if r != Success {
		return nil, r
	}
	return &device{l: d.l, h: h}, Success
}

func (d *device) GetGPUInstanceID() (int, Return) {
	var v C.uint
	r := d.out(d.l.fn.giID, unsafe.Pointer(&v))
	return int(v), r
}

func (d *device) GetComputeInstanceID() (int, Return) {
	var v C.uint
	r := d.out(d.l.fn.ciID, unsafe.Pointer(&v))
	return int(v), r
}

// processes asks f for the running processes, growing the buffer while the
// library says it is too small (processes come and go between calls).
func (d *device) processes(f unsafe.Pointer) ([]ProcessInfo, Return) {
	if f == nil {
		return nil, ErrorFunctionNotFound
	}
	for n := C.uint(16); n <= 1<<16; n *= 2 {
		buf := make([]C.kiln_nvml_proc, n)
		count := n
		r := Return(C.kiln_nvml_hpp(f, d.h, unsafe.Pointer(&count), unsafe.Pointer(&buf[0])))
		if r == ErrorInsufficientSize {
			continue
		}
		if r != Success {
			return nil, r
		}
		out := make([]ProcessInfo, 0, min(count, n))
		for _, p := range buf[:min(count, n)] {
			out = append(out, ProcessInfo{Pid: uint32(p.pid), UsedGPUMemory: uint64(p.usedGpuMemory),
				GPUInstanceID: uint32(p.gpuInstanceId), ComputeInstanceID: uint32(p.computeInstanceId)})
		}
		return out, Success
	}
	return nil, ErrorInsufficientSize
}

func (d *device) GetComputeRunningProcesses() ([]ProcessInfo, Return) {
	return d.processes(d.l.fn.computeP)
}

func (d *device) GetGraphicsRunningProcesses() ([]ProcessInfo, Return) {
	return d.processes(d.l.fn.graphicsP)
}

// gpuInstance is an nvmlGpuInstance_t.
type gpuInstance struct {
	l *library
	h unsafe.Pointer
}

func (g *gpuInstance) GetInfo() (GPUInstanceInfo, Return) {
	if g.l.fn.giInfo == nil {
		return GPUInstanceInfo{}, ErrorFunctionNotFound
	}
	var info C.kiln_nvml_gi_info
	r := C.kiln_nvml_hp(g.l.fn.giInfo, g.h, unsafe.Pointer(&info))
	return GPUInstanceInfo{ID: uint32(info.id), ProfileID: uint32(info.profileId)}, Return(r)
}

func (g *gpuInstance) GetComputeInstanceProfileInfo(profile, engineProfile int) (ComputeInstanceProfileInfo, Return) {
	if g.l.fn.ciProfile == nil {
		return ComputeInstanceProfileInfo{}, ErrorFunctionNotFound
	}
	var p C.kiln_nvml_ci_profile
	r := C.kiln_nvml_huup(g.l.fn.ciProfile, g.h, C.uint(profile), C.uint(engineProfile), unsafe.Pointer(&p))
	return ComputeInstanceProfileInfo{
		ID: uint32(p.id), SliceCount: uint32(p.sliceCount), InstanceCount: uint32(p.instanceCount),
		MultiprocessorCount: uint32(p.multiprocessorCount),
	}, Return(r)
}

func (g *gpuInstance) GetComputeInstances(info *ComputeInstanceProfileInfo) ([]ComputeInstance, Return) {
	hs, r := handles(g.l.fn.cis, g.h, info.ID, info.InstanceCount)
	out := make([]ComputeInstance, len(hs))
	for i, h := range hs {
		out[i] = &computeInstance{l: g.l, h: h}
	}
	return out, r
}

// computeInstance is an nvmlComputeInstance_t.
type computeInstance struct {
	l *library
	h unsafe.Pointer
}

func (c *computeInstance) GetInfo() (ComputeInstanceInfo, Return) {
	if c.l.fn.ciInfo == nil {
		return ComputeInstanceInfo{}, ErrorFunctionNotFound
	}
	var info C.kiln_nvml_ci_info
	r := C.kiln_nvml_hp(c.l.fn.ciInfo, c.h, unsafe.Pointer(&info))
	return ComputeInstanceInfo{ID: uint32(info.id), ProfileID: uint32(info.profileId)}, Return(r)
}
