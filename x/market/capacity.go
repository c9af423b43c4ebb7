package market

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-network/kiln/x/registry"
)

// Usage is an amount of provider resources: what a lease reserves, what a provider
// has in use, or what it has free. GPUs are sorted by spec with no duplicates.
type Usage struct {
	CPUMilli     uint64     `json:"cpu_milli,string"`
	MemoryBytes  uint64     `json:"memory_bytes,string"`
	StorageBytes uint64     `json:"storage_bytes,string"`
	GPUs         []GPUCount `json:"gpus"`
}

func specLess(a, b GPUSpec) bool {
	if a.Model != b.Model {
		return a.Model < b.Model
	}
	if a.MemoryBytes != b.MemoryBytes {
		return a.MemoryBytes < b.MemoryBytes
	}
	return a.Interface < b.Interface
}

// gpu returns the count of spec s.
func (u Usage) gpu(s GPUSpec) uint64 {
	for _, g := range u.GPUs {
		if g.GPUSpec == s {
			return g.Count
		}
	}
	return 0
}

// withGPU returns u with spec s's count changed by f, keeping GPUs sorted and dropping
// zero counts.
func (u Usage) withGPU(s GPUSpec, f func(uint64) uint64) Usage {
	out := Usage{CPUMilli: u.CPUMilli, MemoryBytes: u.MemoryBytes, StorageBytes: u.StorageBytes}
	found := false
	for _, g := range u.GPUs {
		if g.GPUSpec == s {
			found = true
			g.Count = f(g.Count)
		}
		if g.Count > 0 {
			out.GPUs = append(out.GPUs, g)
		}
	}
	if !found {
		if c := f(0); c > 0 {
			out.GPUs = append(out.GPUs, GPUCount{s, c})
		}
	}
	sort.Slice(out.GPUs, func(i, j int) bool { return specLess(out.GPUs[i].GPUSpec, out.GPUs[j].GPUSpec) })
	return out
}

// Add returns u+v. Amounts are bounded by inventory limits far below 2^64, so the sum
// of any two cannot overflow.
func (u Usage) Add(v Usage) Usage {
	out := u
	out.CPUMilli += v.CPUMilli
	out.MemoryBytes += v.MemoryBytes
	out.StorageBytes += v.StorageBytes
	for _, g := range v.GPUs {
		out = out.withGPU(g.GPUSpec, func(c uint64) uint64 { return c + g.Count })
	}
	return out
}

// Sub returns u-v and panics if v is not within u: usage going negative means the
// capacity accounting is broken.
func (u Usage) Sub(v Usage) Usage {
	if err := v.FitsIn(u); err != nil {
		panic(fmt.Sprintf("market: capacity accounting broken: releasing more than is in use: %v", err))
	}
	out := u
	out.CPUMilli -= v.CPUMilli
	out.MemoryBytes -= v.MemoryBytes
	out.StorageBytes -= v.StorageBytes
	for _, g := range v.GPUs {
		out = out.withGPU(g.GPUSpec, func(c uint64) uint64 { return c - g.Count })
	}
	return out
}

// FitsIn returns nil if u is within free in every dimension, or an error naming the
// first dimension that does not fit.
func (u Usage) FitsIn(free Usage) error {
	switch {
	case u.CPUMilli > free.CPUMilli:
		return fmt.Errorf("cpu: needs %dm, %dm free", u.CPUMilli, free.CPUMilli)
	case u.MemoryBytes > free.MemoryBytes:
		return fmt.Errorf("memory: needs %s, %s free", registry.FormatBytes(u.MemoryBytes), registry.FormatBytes(free.MemoryBytes))
	case u.StorageBytes > free.StorageBytes:
		return fmt.Errorf("storage: needs %s, %s free", registry.FormatBytes(u.StorageBytes), registry.FormatBytes(free.StorageBytes))
	}
	for _, g := range u.GPUs {
		if have := free.gpu(g.GPUSpec); g.Count > have {
			return fmt.Errorf("gpu %s: needs %d, %d free", g.Model, g.Count, have)
		}
	}
	return nil
}

// IsZero reports whether u holds nothing.
func (u Usage) IsZero() bool {
	return u.CPUMilli == 0 && u.MemoryBytes == 0 && u.StorageBytes == 0 && len(u.GPUs) == 0
}

// Total returns a provider's whole inventory as a Usage.
func Total(inv registry.Inventory) Usage {
	u := Usage{CPUMilli: inv.CPUCores * 1000, MemoryBytes: inv.MemoryBytes, StorageBytes: inv.StorageBytes}
	for _, g := range inv.GPUs {
		s := GPUSpec{Model: g.Model, MemoryBytes: g.MemoryBytes, Interface: g.Interface}
		u = u.withGPU(s, func(c uint64) uint64 { return c + uint64(g.Count) })
	}
	return u
}

// Free returns total minus used, floored at zero per dimension (an inventory updated
// below what is leased has nothing free, not a negative amount).
func Free(total, used Usage) Usage {
	sat := func(a, b uint64) uint64 {
		if b > a {
			return 0
		}
		return a - b
	}
	out := Usage{CPUMilli: sat(total.CPUMilli, used.CPUMilli), MemoryBytes: sat(total.MemoryBytes, used.MemoryBytes),
		StorageBytes: sat(total.StorageBytes, used.StorageBytes)}
	for _, g := range total.GPUs {
		if c := sat(g.Count, used.gpu(g.GPUSpec)); c > 0 {
			out.GPUs = append(out.GPUs, GPUCount{g.GPUSpec, c})
		}
	}
	return out
}

// Failure is one constraint a provider does not meet for an order.
type Failure struct {
	// Constraint is one of region, attribute, gpu_model, gpu_count, cpu, memory,
	// storage, runtime, capacity_in_use, excluded, not_provider, or one a registered
	// ProviderCheck reports (hardware_proof, tee).
	Constraint string `json:"constraint"`
	Group      string `json:"group,omitempty"`
	Detail     string `json:"detail"`
}

func (f Failure) String() string {
	if f.Group != "" {
		return fmt.Sprintf("%s (group %s): %s", f.Constraint, f.Group, f.Detail)
	}
	return f.Constraint + ": " + f.Detail
}

func filterOK(f GPUFilter, s GPUSpec) bool {
	return (f.Model == "" || f.Model == "*" || f.Model == s.Model) &&
		(f.MemoryBytes == 0 || f.MemoryBytes == s.MemoryBytes) &&
		(f.Interface == "" || f.Interface == s.Interface)
}

// Accepts reports whether a GPU of spec s meets the request's models (any, with none).
func (req GPURequest) Accepts(s GPUSpec) bool { return gpuOK(req, s) }

func gpuOK(req GPURequest, s GPUSpec) bool {
	if len(req.Models) == 0 {
		return true
	}
	for _, f := range req.Models {
		if filterOK(f, s) {
			return true
		}
	}
	return false
}

func describeFilters(req GPURequest) string {
	if len(req.Models) == 0 {
		return "any"
	}
	var parts []string
	for _, f := range req.Models {
		p := f.Model
		if p == "" {
			p = "*"
		}
		if f.MemoryBytes > 0 {
			p += "/" + registry.FormatBytes(f.MemoryBytes)
		}
		if f.Interface != "" {
			p += "/" + f.Interface
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

func describeGPUs(u Usage) string {
	if len(u.GPUs) == 0 {
		return "none"
	}
	var parts []string
	for _, g := range u.GPUs {
		parts = append(parts, fmt.Sprintf("%dx%s/%s/%s", g.Count, g.Model, registry.FormatBytes(g.MemoryBytes), g.Interface))
	}
	return strings.Join(parts, ",")
}

// resolve places groups on a provider with region, attributes and avail resources:
// it picks a concrete GPU spec per group (the first matching spec, in spec order, with
// enough left, restricted to prefs[i] when given) and sums what the order needs. It
// returns every constraint not met; need and choices are meaningful only when none.
func resolve(groups []Group, prefs []string, region string, attrs []registry.Attribute, avail Usage) (need Usage, choices []GPUSpec, fails []Failure) {
	choices = make([]GPUSpec, len(groups))
	for i, g := range groups {
		if g.Region != "" && g.Region != region {
			fails = append(fails, Failure{"region", g.Name, fmt.Sprintf("wants region %s, provider is in %s", g.Region, region)})
		}
		for _, want := range g.Attributes {
			ok := false
			for _, have := range attrs {
				if have.Key == want.Key && (want.Value == "*" || have.Value == want.Value) {
					ok = true
				}
			}
			if !ok {
				fails = append(fails, Failure{"attribute", g.Name, fmt.Sprintf("wants %s=%s, provider does not advertise it", want.Key, want.Value)})
			}
		}
		n := uint64(g.Count)
		need.CPUMilli += n * g.CPUMilli
		need.MemoryBytes += n * g.MemoryBytes
		need.StorageBytes += n * g.StorageBytes
		if g.GPU.Units == 0 {
			continue
		}
		want := n * uint64(g.GPU.Units)
		matched, most := false, uint64(0)
		for _, c := range avail.GPUs {
			if !gpuOK(g.GPU, c.GPUSpec) || (i < len(prefs) && prefs[i] != "" && prefs[i] != c.Model) {
				continue
			}
			matched = true
			left := c.Count - need.gpu(c.GPUSpec)
			if left >= want {
				choices[i] = c.GPUSpec
				need = need.withGPU(c.GPUSpec, func(x uint64) uint64 { return x + want })
				break
			}
			most = max(most, left)
		}
		switch {
		case !matched && i < len(prefs) && prefs[i] != "":
			fails = append(fails, Failure{"gpu_model", g.Name, fmt.Sprintf("bid names model %q, which is not among the provider's GPUs (%s) matching %s", prefs[i], describeGPUs(avail), describeFilters(g.GPU))})
		case !matched:
			fails = append(fails, Failure{"gpu_model", g.Name, fmt.Sprintf("wants GPU %s, provider has %s", describeFilters(g.GPU), describeGPUs(avail))})
		case choices[i] == GPUSpec{}:
			fails = append(fails, Failure{"gpu_count", g.Name, fmt.Sprintf("needs %d GPUs of one matching model (%d instances x %d), at most %d available", want, g.Count, g.GPU.Units, most)})
		}
	}
	if need.CPUMilli > avail.CPUMilli {
		fails = append(fails, Failure{"cpu", "", fmt.Sprintf("needs %dm CPU, provider has %dm", need.CPUMilli, avail.CPUMilli)})
	}
	if need.MemoryBytes > avail.MemoryBytes {
		fails = append(fails, Failure{"memory", "", fmt.Sprintf("needs %s memory, provider has %s", registry.FormatBytes(need.MemoryBytes), registry.FormatBytes(avail.MemoryBytes))})
	}
	if need.StorageBytes > avail.StorageBytes {
		fails = append(fails, Failure{"storage", "", fmt.Sprintf("needs %s storage, provider has %s", registry.FormatBytes(need.StorageBytes), registry.FormatBytes(avail.StorageBytes))})
	}
	return need, choices, fails
}

// runs lists what a provider's runtime cannot run of the groups: container images
// on an executor that runs host commands, GPUs on one that cannot attach them.
func runs(groups []Group, rt registry.Runtime) (fails []Failure) {
	for _, g := range groups {
		if g.Containers && !rt.Containers {
			fails = append(fails, Failure{"runtime", g.Name, fmt.Sprintf("runs container images; the provider's %s executor runs host commands only", rt.Executor)})
		}
		if g.GPU.Units > 0 && !rt.GPUs {
			fails = append(fails, Failure{"runtime", g.Name, fmt.Sprintf("wants GPUs; the provider's %s executor cannot attach GPUs to workloads (docker needs the NVIDIA container runtime)", rt.Executor)})
		}
	}
	return fails
}

// Fit checks whether a provider with inventory inv and used resources in use can take
// the order's groups. static lists the requirements the inventory (hardware and
// runtime) can never meet; inUse, when static is empty, the ones it could meet but
// for its active leases.
func Fit(groups []Group, prefs []string, inv registry.Inventory, used Usage) (need Usage, choices []GPUSpec, static, inUse []Failure) {
	_, _, static = resolve(groups, prefs, inv.Region, inv.Attributes, Total(inv))
	static = append(static, runs(groups, inv.Runtime)...)
	if len(static) > 0 {
		return Usage{}, nil, static, nil
	}
	need, choices, fails := resolve(groups, prefs, inv.Region, inv.Attributes, Free(Total(inv), used))
	for _, f := range fails {
		inUse = append(inUse, Failure{"capacity_in_use", f.Group, f.Constraint + ": " + f.Detail + " (counting free capacity only; the rest is leased)"})
	}
	return need, choices, nil, inUse
}
