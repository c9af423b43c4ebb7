package gpu

import (
	"fmt"
	"slices"
)

// Spec returns the catalogue model and the variant that best describes g: the
// variant of its PCI device id when known, else the variant of its model with
// the same interface and the nearest memory size. ok is false when g's model
// is not in the catalogue.
func (g GPU) Spec() (m Model, v Variant, ok bool) {
	if g.PCIDeviceID != "" {
		if m, v, ok := LookupPCI(g.PCIDeviceID); ok {
			return m, v, true
		}
	}
	if m, ok = LookupModel(g.ModelKey); !ok {
		return Model{}, Variant{}, false
	}
	best := -1
	var bestDiff int64
	for i, cand := range m.Variants {
		if g.Interface != "" && cand.Interface != g.Interface {
			continue
		}
		diff := int64(cand.MemoryGiB)*1024 - int64(g.MemoryMiB)
		if diff < 0 {
			diff = -diff
		}
		if best < 0 || diff < bestDiff {
			best, bestDiff = i, diff
		}
	}
	if best < 0 {
		best = 0
	}
	return m, m.Variants[best], true
}

// MemoryGiB is the marketed memory size ("80" for an H100 whose driver reports
// 81559 MiB): the catalogue variant's when known, else MemoryMiB rounded.
func (g GPU) MemoryGiB() int {
	if _, v, ok := g.Spec(); ok {
		return v.MemoryGiB
	}
	return int((g.MemoryMiB + 512) / 1024)
}

// AkashAttributes returns the provider capability attributes Akash providers
// advertise for these GPUs, sorted, each meaning "true":
//
//	capabilities/gpu/vendor/nvidia/model/h100
//	capabilities/gpu/vendor/nvidia/model/h100/ram/80Gi
//	capabilities/gpu/vendor/nvidia/model/h100/interface/sxm
//	capabilities/gpu/vendor/nvidia/model/h100/ram/80Gi/interface/sxm
//
// GPUs without a model key are left out: an attribute must never promise a
// model that was not identified. A declared inventory yields none at all.
func (inv Inventory) AkashAttributes() []string {
	if !inv.Detected() {
		return nil
	}
	seen := map[string]bool{}
	for _, g := range inv.GPUs {
		if g.ModelKey == "" {
			continue
		}
		base := fmt.Sprintf("capabilities/gpu/vendor/%s/model/%s", g.Vendor, g.ModelKey)
		ram := fmt.Sprintf("/ram/%dGi", g.MemoryGiB())
		keys := []string{base, base + ram}
		if g.Interface != "" {
			keys = append(keys, base+"/interface/"+g.Interface, base+ram+"/interface/"+g.Interface)
		}
		for _, k := range keys {
			seen[k] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
