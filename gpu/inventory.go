package gpu

import (
	"errors"
	"fmt"
	"strings"
)

// Where an Inventory came from. Only the detected ones describe hardware that
// was actually seen; the registry and the bidder must treat SourceDeclared as
// a claim, never as a measurement.
const (
	// SourceNVML: read from the driver through NVML on this host.
	SourceNVML = "detected-nvml"
	// SourceNVIDIASMI: parsed from nvidia-smi output (run here, or read from a file).
	SourceNVIDIASMI = "detected-nvidia-smi"
	// SourceOS: no NVIDIA driver; CPU, memory and disk only, read from the OS.
	SourceOS = "detected-os"
	// SourceDeclared: typed in by a person (demos, simulations); nothing was detected.
	SourceDeclared = "declared"
)

// ErrNoDriver is returned (wrapped) by Detect when neither NVML nor nvidia-smi
// is usable. The inventory returned with it is still valid: CPU-only.
var ErrNoDriver = errors.New("no NVIDIA driver found")

// ErrUnknownFormat is returned by Parse and FromFile for input that is none of
// the nvidia-smi formats this package reads.
var ErrUnknownFormat = errors.New("not a recognised nvidia-smi output")

// Interfaces a GPU can be attached by, in Akash's vocabulary (lower case).
const (
	InterfacePCIe = "pcie"
	InterfaceSXM  = "sxm"
)

// MIG modes of a GPU. Empty means the GPU does not support MIG (or the source
// did not say).
const (
	MIGEnabled  = "enabled"
	MIGDisabled = "disabled"
)

// Inventory is the hardware of one provider host.
type Inventory struct {
	// Source is one of SourceNVML, SourceNVIDIASMI, SourceOS, SourceDeclared.
	Source string `json:"source"`
	// Driver is the NVIDIA driver (kernel module) version, e.g. "550.54.15".
	Driver string `json:"driver,omitempty"`
	// CUDA is the highest CUDA version the driver supports, e.g. "12.4".
	CUDA string `json:"cuda,omitempty"`
	// GPUs in index order.
	GPUs []GPU `json:"gpus"`
	// CPU of the host; zero when the source does not describe the host (a file).
	CPU CPUInfo `json:"cpu"`
	// MemoryBytes is the host's RAM.
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	// DiskBytes is the size of the filesystem holding the work directory.
	DiskBytes uint64 `json:"disk_bytes,omitempty"`
	// Topology is the GPU/NIC interconnect matrix of `nvidia-smi topo -m`, when known.
	Topology *Topology `json:"topology,omitempty"`
	// Notes say what could not be read and why ("no NVIDIA driver found").
	Notes []string `json:"notes,omitempty"`
}

// CPUInfo describes the host's processors.
type CPUInfo struct {
	// Model is the marketing name, e.g. "AMD EPYC 7763 64-Core Processor".
	Model string `json:"model,omitempty"`
	// Cores is the number of physical cores over all sockets.
	Cores int `json:"cores,omitempty"`
	// Threads is the number of logical CPUs.
	Threads int `json:"threads,omitempty"`
}

// GPU is one physical GPU.
type GPU struct {
	// Index is the NVML / nvidia-smi index (not stable across reboots; UUID is).
	Index int `json:"index"`
	// UUID as the driver reports it ("GPU-..."); masked captures keep their mask.
	UUID string `json:"uuid,omitempty"`
	// Name is the product name as reported, e.g. "NVIDIA H100 80GB HBM3".
	Name string `json:"name"`
	// ModelKey is the normalized model in Akash's naming ("h100", "rtx4090");
	// empty when neither the PCI device id nor the name is in the Catalog.
	ModelKey string `json:"model_key,omitempty"`
	// Vendor is "nvidia" (or "amd" for catalogue entries).
	Vendor string `json:"vendor"`
	// Architecture, lower case: "hopper", "ampere", ...
	Architecture string `json:"architecture,omitempty"`
	// MemoryMiB is the total framebuffer memory.
	MemoryMiB uint64 `json:"memory_mib,omitempty"`
	// Interface is InterfacePCIe or InterfaceSXM; empty when unknown.
	Interface string `json:"interface,omitempty"`
	// ComputeCapability is CUDA's "major.minor", from the driver or the Catalog.
	ComputeCapability string `json:"compute_capability,omitempty"`
	// PCIBusID as nvidia-smi prints it: "00000000:18:00.0".
	PCIBusID string `json:"pci_bus_id,omitempty"`
	// PCIDeviceID is the 4-hex-digit device id, lower case ("2330"); vendor is implied by Vendor.
	PCIDeviceID string `json:"pci_device_id,omitempty"`
	// MIGMode is MIGEnabled, MIGDisabled, or empty when MIG is not supported.
	MIGMode string `json:"mig_mode,omitempty"`
	// MIGDevices are the MIG instances when MIGMode is enabled.
	MIGDevices []MIGDevice `json:"mig_devices,omitempty"`
	// PowerLimitW is the enforced power limit in watts; 0 when unknown.
	PowerLimitW float64 `json:"power_limit_w,omitempty"`
	// UtilizationPct is the GPU utilization at the time of reading; nil when unknown
	// (N/A, e.g. with MIG enabled).
	UtilizationPct *int `json:"utilization_pct,omitempty"`
	// Processes using the GPU at the time of reading.
	Processes []Process `json:"processes,omitempty"`
}

// MIGDevice is one MIG instance (a GPU instance + compute instance pair).
type MIGDevice struct {
	// Index of the MIG device on its parent GPU.
	Index int `json:"index"`
	// Profile is NVIDIA's profile name, e.g. "3g.40gb"; empty when the source does not say.
	Profile string `json:"profile,omitempty"`
	// UUID ("MIG-...") when known.
	UUID string `json:"uuid,omitempty"`
	// GPUInstanceID and ComputeInstanceID as in nvidia-smi.
	GPUInstanceID     int `json:"gpu_instance_id"`
	ComputeInstanceID int `json:"compute_instance_id"`
	// MemoryMiB of the instance; 0 when unknown.
	MemoryMiB uint64 `json:"memory_mib,omitempty"`
	// SMCount is the number of multiprocessors; 0 when unknown.
	SMCount int `json:"sm_count,omitempty"`
}

// Process is a process holding a GPU context.
type Process struct {
	PID int `json:"pid"`
	// Type is "C" (compute), "G" (graphics) or "C+G".
	Type string `json:"type,omitempty"`
	Name string `json:"name,omitempty"`
	// UsedMemoryMiB; 0 when unknown (e.g. Windows WDDM).
	UsedMemoryMiB uint64 `json:"used_memory_mib,omitempty"`
	// GPUInstanceID and ComputeInstanceID under MIG; nil otherwise.
	GPUInstanceID     *int `json:"gpu_instance_id,omitempty"`
	ComputeInstanceID *int `json:"compute_instance_id,omitempty"`
}

// Detected reports whether the inventory was read from hardware rather than declared.
func (inv Inventory) Detected() bool {
	return strings.HasPrefix(inv.Source, "detected-")
}

// Validate checks the invariants every Inventory must hold before it is
// registered: a known Source, consistent GPU indexes, known interfaces.
func (inv Inventory) Validate() error {
	switch inv.Source {
	case SourceNVML, SourceNVIDIASMI, SourceOS, SourceDeclared:
	default:
		return &FieldError{Field: "source", Value: inv.Source, Msg: "must be one of detected-nvml, detected-nvidia-smi, detected-os, declared"}
	}
	if inv.Source == SourceOS && len(inv.GPUs) > 0 {
		return &FieldError{Field: "gpus", Value: fmt.Sprint(len(inv.GPUs)), Msg: "must be empty for source detected-os"}
	}
	seen := make(map[int]bool, len(inv.GPUs))
	for i, g := range inv.GPUs {
		if seen[g.Index] {
			return &FieldError{Field: fmt.Sprintf("gpus[%d].index", i), Value: fmt.Sprint(g.Index), Msg: "duplicate"}
		}
		seen[g.Index] = true
		switch g.Interface {
		case "", InterfacePCIe, InterfaceSXM:
		default:
			return &FieldError{Field: fmt.Sprintf("gpus[%d].interface", i), Value: g.Interface, Msg: "must be pcie or sxm"}
		}
		switch g.MIGMode {
		case "", MIGEnabled, MIGDisabled:
		default:
			return &FieldError{Field: fmt.Sprintf("gpus[%d].mig_mode", i), Value: g.MIGMode, Msg: "must be enabled or disabled"}
		}
	}
	return nil
}

// FieldError is a validation error naming the field and the offending value.
type FieldError struct {
	Field, Value, Msg string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s (got %q)", e.Field, e.Msg, e.Value)
}

// GPUCount returns the number of GPUs per ModelKey ("" for unknown models).
func (inv Inventory) GPUCount() map[string]int {
	m := make(map[string]int)
	for _, g := range inv.GPUs {
		m[g.ModelKey]++
	}
	return m
}
