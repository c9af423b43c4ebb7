package registry

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/quantity"
)

// Inventory is the hardware a provider offers.
type Inventory struct {
	// Source says where the inventory came from: "declared" (typed by the operator,
	// e.g. for demos), "detected-nvml" / "detected-nvidia-smi" (GPUs measured) or
	// "detected-os" (a host without NVIDIA GPUs, measured). Never blank.
	Source       string      `json:"source"`
	Region       string      `json:"region"`
	CPUCores     uint64      `json:"cpu_cores"`
	MemoryBytes  uint64      `json:"memory_bytes,string"`
	StorageBytes uint64      `json:"storage_bytes,string"`
	GPUs         []GPU       `json:"gpus"`
	Attributes   []Attribute `json:"attributes"`
	// Runtime is what the provider's executor can run. The provider daemon measures
	// it from its executor; the market never leases a provider an order its runtime
	// cannot run.
	Runtime Runtime `json:"runtime"`
}

// Runtime is what a provider's executor can run.
type Runtime struct {
	// Executor names the executor kind: "process", "docker", ...
	Executor string `json:"executor"`
	// Containers is true when the executor runs container images (a group whose
	// services name an image needs it).
	Containers bool `json:"containers"`
	// GPUs is true when the executor can hand the inventory's GPUs to workloads
	// (docker needs the NVIDIA container runtime for that).
	GPUs bool `json:"gpus"`
}

// DefaultRuntime is assumed for an inventory file without a [runtime] table: a
// provider registered by hand claims to run container images on its GPUs, as Akash
// providers do.
func DefaultRuntime() Runtime { return Runtime{Executor: "docker", Containers: true, GPUs: true} }

var executorRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// GPU is a group of identical GPUs.
type GPU struct {
	Model       string `json:"model"` // Akash model key: h100, a100, rtx4090, ...
	MemoryBytes uint64 `json:"memory_bytes,string"`
	Interface   string `json:"interface"` // pcie or sxm
	Count       uint32 `json:"count"`
}

// Attribute is a free-form key/value the provider advertises (tier, network, ...).
type Attribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Bounds on an inventory: above these a value is a typo or an attack, not hardware.
const (
	Ki = quantity.Ki
	Mi = quantity.Mi
	Gi = quantity.Gi
	Ti = quantity.Ti
	Pi = quantity.Pi

	maxGPUGroups    = 16
	maxGPUsPerGroup = 64
	maxCPUCores     = 8192
	maxAttributes   = 64
)

var (
	modelRe  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	regionRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)
	attrKey  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9._/-]{0,63}$`)
)

// Validate checks every field, naming the field, the value and the rule on failure.
func (inv *Inventory) Validate() error {
	if err := inv.ValidateHardware(); err != nil {
		return err
	}
	if !executorRe.MatchString(inv.Runtime.Executor) {
		return fmt.Errorf("inventory.runtime.executor: must be 1-32 of [a-z0-9-], starting with a letter, like docker or process (got %q)", inv.Runtime.Executor)
	}
	return nil
}

// ValidateHardware checks every field but Runtime, which a provider daemon measures
// from its executor after reading its config.
func (inv *Inventory) ValidateHardware() error {
	switch inv.Source {
	case "declared", "detected-nvml", "detected-nvidia-smi":
	case "detected-os":
		if len(inv.GPUs) > 0 {
			return fmt.Errorf("inventory.gpus: must be empty for source detected-os (GPUs are detected through NVML or nvidia-smi)")
		}
	default:
		return fmt.Errorf("inventory.source: must be declared, detected-nvml, detected-nvidia-smi or detected-os (got %q)", inv.Source)
	}
	if !regionRe.MatchString(inv.Region) {
		return fmt.Errorf("inventory.region: must be 2-63 of [a-z0-9-] (got %q)", inv.Region)
	}
	if inv.CPUCores < 1 || inv.CPUCores > maxCPUCores {
		return fmt.Errorf("inventory.cpu_cores: must be 1 to %d (got %d)", maxCPUCores, inv.CPUCores)
	}
	if inv.MemoryBytes < Gi || inv.MemoryBytes > 64*Ti {
		return fmt.Errorf("inventory.memory: must be 1Gi to 64Ti (got %s)", FormatBytes(inv.MemoryBytes))
	}
	if inv.StorageBytes < Gi || inv.StorageBytes > 10*Pi {
		return fmt.Errorf("inventory.storage: must be 1Gi to 10Pi (got %s)", FormatBytes(inv.StorageBytes))
	}
	if len(inv.GPUs) > maxGPUGroups {
		return fmt.Errorf("inventory.gpus: at most %d groups (got %d)", maxGPUGroups, len(inv.GPUs))
	}
	for i, g := range inv.GPUs {
		f := fmt.Sprintf("inventory.gpus[%d]", i)
		if len(g.Model) > 32 || !modelRe.MatchString(g.Model) {
			return fmt.Errorf("%s.model: must be a lowercase model key like h100, a100, rtx4090 (got %q)", f, g.Model)
		}
		if g.MemoryBytes < Gi || g.MemoryBytes > Ti {
			return fmt.Errorf("%s.memory: must be 1Gi to 1Ti (got %s)", f, FormatBytes(g.MemoryBytes))
		}
		if g.Interface != "pcie" && g.Interface != "sxm" {
			return fmt.Errorf("%s.interface: must be pcie or sxm (got %q)", f, g.Interface)
		}
		if g.Count < 1 || g.Count > maxGPUsPerGroup {
			return fmt.Errorf("%s.count: must be 1 to %d (got %d)", f, maxGPUsPerGroup, g.Count)
		}
	}
	if len(inv.Attributes) > maxAttributes {
		return fmt.Errorf("inventory.attributes: at most %d (got %d)", maxAttributes, len(inv.Attributes))
	}
	for i, a := range inv.Attributes {
		if !attrKey.MatchString(a.Key) {
			return fmt.Errorf("inventory.attributes[%d].key: must match %s (got %q)", i, attrKey, a.Key)
		}
		if len(a.Value) > 128 || strings.ContainsFunc(a.Value, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("inventory.attributes.%s: value must be at most 128 printable bytes", a.Key)
		}
		if i > 0 && inv.Attributes[i-1].Key >= a.Key {
			return fmt.Errorf("inventory.attributes: keys must be sorted and unique (%q after %q)", a.Key, inv.Attributes[i-1].Key)
		}
	}
	return nil
}

// TotalGPUs returns the number of GPUs.
func (inv *Inventory) TotalGPUs() uint64 {
	var n uint64
	for _, g := range inv.GPUs {
		n += uint64(g.Count)
	}
	return n
}

// MarshalTo writes the canonical encoding.
func (inv *Inventory) MarshalTo(w *codec.Writer) {
	w.String(inv.Source)
	w.String(inv.Region)
	w.Uvarint(inv.CPUCores)
	w.Uvarint(inv.MemoryBytes)
	w.Uvarint(inv.StorageBytes)
	w.Uvarint(uint64(len(inv.GPUs)))
	for _, g := range inv.GPUs {
		w.String(g.Model)
		w.Uvarint(g.MemoryBytes)
		w.String(g.Interface)
		w.Uvarint(uint64(g.Count))
	}
	w.Uvarint(uint64(len(inv.Attributes)))
	for _, a := range inv.Attributes {
		w.String(a.Key)
		w.String(a.Value)
	}
	w.String(inv.Runtime.Executor)
	w.Bool(inv.Runtime.Containers)
	w.Bool(inv.Runtime.GPUs)
}

// UnmarshalInventory reads what MarshalTo wrote.
func UnmarshalInventory(r *codec.Reader) Inventory {
	inv := Inventory{Source: r.String(32), Region: r.String(64), CPUCores: r.Uvarint(), MemoryBytes: r.Uvarint(), StorageBytes: r.Uvarint()}
	n := r.Uvarint()
	if n > maxGPUGroups {
		r.Fail("%d GPU groups, limit %d", n, maxGPUGroups)
		return inv
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		g := GPU{Model: r.String(64), MemoryBytes: r.Uvarint(), Interface: r.String(8)}
		c := r.Uvarint()
		if c > 1<<32-1 {
			r.Fail("GPU count %d out of range", c)
		}
		g.Count = uint32(c)
		inv.GPUs = append(inv.GPUs, g)
	}
	n = r.Uvarint()
	if n > maxAttributes {
		r.Fail("%d attributes, limit %d", n, maxAttributes)
		return inv
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		inv.Attributes = append(inv.Attributes, Attribute{Key: r.String(64), Value: r.String(128)})
	}
	inv.Runtime = Runtime{Executor: r.String(32), Containers: r.Bool(), GPUs: r.Bool()}
	return inv
}

// FormatBytes prints n with the largest binary unit that divides it
// (quantity.FormatBytes).
func FormatBytes(n uint64) string { return quantity.FormatBytes(n) }
