package gpu

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// catalogJSON is the GPU catalogue. Its "sources" list says where every kind
// of value comes from; each variant names the datasheet of its TFLOPS.
//
//go:embed catalog.json
var catalogJSON []byte

// Model is one catalogue entry: a GPU model in Akash's naming.
type Model struct {
	// Key is the normalized model key ("h100", "rtx4090").
	Key string `json:"key"`
	// Vendor is "nvidia" or "amd".
	Vendor string `json:"vendor"`
	// Architecture, lower case ("hopper").
	Architecture string `json:"architecture"`
	// ComputeCapability is CUDA's "major.minor"; empty for non-NVIDIA parts.
	ComputeCapability string `json:"compute_capability"`
	// Names are marketing names as drivers report them, without the vendor prefix.
	Names []string `json:"names"`
	// Variants differ by memory size or interface, each with its PCI device ids.
	Variants []Variant `json:"variants"`
}

// Variant is one board of a Model.
type Variant struct {
	// PCIIDs are 4-hex-digit PCI device ids, lower case.
	PCIIDs []string `json:"pci_ids"`
	// Interface is InterfacePCIe or InterfaceSXM.
	Interface string `json:"interface"`
	// MemoryGiB is the marketed memory size.
	MemoryGiB int `json:"memory_gib"`
	// FP32TFLOPS, FP16TFLOPS and BF16TFLOPS are dense peak rates; 0 means not
	// catalogued (and, for BF16 on pre-Ampere parts, not supported).
	FP32TFLOPS float64 `json:"fp32_tflops,omitempty"`
	FP16TFLOPS float64 `json:"fp16_tflops,omitempty"`
	BF16TFLOPS float64 `json:"bf16_tflops,omitempty"`
	// Source is the datasheet the TFLOPS come from.
	Source string `json:"source,omitempty"`
}

type catalogue struct {
	models []Model
	byKey  map[string]int
	byPCI  map[string][2]int // device id -> model, variant
	byName map[string]int    // normalized name or key -> model
}

var loadCatalog = sync.OnceValue(func() *catalogue {
	c, err := parseCatalog(catalogJSON)
	if err != nil {
		// NB: the catalogue is compiled in; a broken one is a build defect that
		// TestCatalog catches, so failing loudly here is right.
		panic(err)
	}
	return c
})

func parseCatalog(data []byte) (*catalogue, error) {
	var doc struct {
		Models []Model `json:"models"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode catalog.json: %w", err)
	}
	c := &catalogue{
		models: doc.Models,
		byKey:  make(map[string]int),
		byPCI:  make(map[string][2]int),
		byName: make(map[string]int),
	}
	for i, m := range c.models {
		if m.Key == "" || len(m.Variants) == 0 {
			return nil, fmt.Errorf("catalog.json: models[%d]: key and variants are required", i)
		}
		if _, dup := c.byKey[m.Key]; dup {
			return nil, fmt.Errorf("catalog.json: model %q listed twice", m.Key)
		}
		c.byKey[m.Key] = i
		for j, v := range m.Variants {
			if v.Interface != InterfacePCIe && v.Interface != InterfaceSXM {
				return nil, fmt.Errorf("catalog.json: %s variant %d: interface %q is not pcie or sxm", m.Key, j, v.Interface)
			}
			for _, id := range v.PCIIDs {
				if prev, dup := c.byPCI[id]; dup {
					return nil, fmt.Errorf("catalog.json: PCI id %s in both %s and %s", id, c.models[prev[0]].Key, m.Key)
				}
				c.byPCI[id] = [2]int{i, j}
			}
		}
	}
	// Keys first, names after: a name never shadows another model's key.
	for i, m := range c.models {
		for _, n := range m.Names {
			nk := strings.Join(nameTokens(n), "")
			if _, taken := c.byName[nk]; !taken {
				c.byName[nk] = i
			}
		}
	}
	for i, m := range c.models {
		c.byName[m.Key] = i
	}
	return c, nil
}

// Models returns a copy of the catalogue, in catalogue order.
func Models() []Model {
	return slices.Clone(loadCatalog().models)
}

// LookupModel returns the catalogue entry for a model key.
func LookupModel(key string) (Model, bool) {
	c := loadCatalog()
	i, ok := c.byKey[key]
	if !ok {
		return Model{}, false
	}
	return c.models[i], true
}

// LookupPCI returns the model and variant for a PCI device id ("2330",
// "0x233010DE" and "233010de" are all accepted).
func LookupPCI(deviceID string) (Model, Variant, bool) {
	c := loadCatalog()
	id := normPCIDeviceID(deviceID)
	mv, ok := c.byPCI[id]
	if !ok {
		return Model{}, Variant{}, false
	}
	m := c.models[mv[0]]
	return m, m.Variants[mv[1]], true
}

// ModelKeyForName returns the model key for a product name as a driver reports
// it ("NVIDIA GeForce RTX 4060 Ti", "Tesla P100-PCIE-16GB"), or "" when the
// name matches no catalogue entry. The longest run of leading name tokens that
// matches a key or marketing name wins, so "RTX 4060 Ti" is rtx4060ti, not rtx4060.
//
// A name the plain nvidia-smi table truncated ("NVIDIA GeForce RTX 2080 ...")
// matches only when the match is unambiguous: "RTX 2080 ..." could be the
// 2080, 2080 SUPER or 2080 Ti, so it yields "", never a guess.
func ModelKeyForName(name string) string {
	c := loadCatalog()
	toks := nameTokens(name)
	trimmed := strings.TrimSpace(name)
	truncated := strings.HasSuffix(trimmed, "...") || strings.HasSuffix(trimmed, "…")
	for k := len(toks); k > 0; k-- {
		prefix := strings.Join(toks[:k], "")
		i, ok := c.byName[prefix]
		if !ok {
			continue
		}
		if truncated {
			for n, j := range c.byName {
				if j != i && strings.HasPrefix(n, prefix) {
					return ""
				}
			}
		}
		return c.models[i].Key
	}
	return ""
}

// vendorWords are dropped from product names before matching: drivers add
// them inconsistently ("NVIDIA GeForce RTX 3090" vs "GeForce RTX 3090"), and
// NVIDIA's NVML mocks prefix "Mock".
var vendorWords = map[string]bool{
	"nvidia": true, "geforce": true, "tesla": true, "quadro": true, "grid": true, "mock": true,
	"amd": true, "radeon": true,
}

// nameTokens lower-cases name, splits it on anything not a letter or digit and
// drops vendor words.
func nameTokens(name string) []string {
	f := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	out := f[:0]
	for _, t := range f {
		if !vendorWords[t] {
			out = append(out, t)
		}
	}
	return out
}

// normPCIDeviceID turns the forms drivers print ("0x233010DE", "233010DE",
// "0x2330", "2330") into the 4-digit lower-case device id; "" when it is not one.
func normPCIDeviceID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "0x")
	if len(s) == 8 {
		// NVML packs device<<16 | vendor.
		s = s[:4]
	}
	if len(s) != 4 {
		return ""
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return ""
		}
	}
	if s == "0000" {
		// vGPU guests report 0x000000DE (telegraf a10g capture).
		return ""
	}
	return s
}

// classify fills the catalogue-derived fields of g that the source left empty:
// ModelKey, Vendor, Architecture, ComputeCapability and Interface. The PCI
// device id wins over the name, because names are truncated by some outputs
// and ids are what Akash keys on.
func (g *GPU) classify() {
	g.PCIDeviceID = normPCIDeviceID(g.PCIDeviceID)
	var (
		m       Model
		v       Variant
		found   bool
		byPCIID bool
	)
	if g.PCIDeviceID != "" {
		m, v, found = LookupPCI(g.PCIDeviceID)
		byPCIID = found
	}
	if !found {
		if key := ModelKeyForName(g.Name); key != "" {
			m, found = LookupModel(key)
		}
	}
	if g.Vendor == "" {
		g.Vendor = "nvidia"
	}
	if !found {
		if g.Interface == "" {
			g.Interface = interfaceFromName(g.Name)
		}
		return
	}
	g.ModelKey = m.Key
	g.Vendor = m.Vendor
	if g.Architecture == "" {
		g.Architecture = m.Architecture
	}
	if g.ComputeCapability == "" {
		g.ComputeCapability = m.ComputeCapability
	}
	if g.Interface == "" {
		switch {
		case byPCIID:
			g.Interface = v.Interface
		case interfaceFromName(g.Name) != "":
			g.Interface = interfaceFromName(g.Name)
		default:
			g.Interface = m.onlyInterface()
		}
	}
}

// onlyInterface returns the interface all variants share, or "".
func (m Model) onlyInterface() string {
	iface := m.Variants[0].Interface
	for _, v := range m.Variants[1:] {
		if v.Interface != iface {
			return ""
		}
	}
	return iface
}

// interfaceFromName reads the interface from the product name where NVIDIA
// puts it there: "A100-SXM4-80GB", "A100-PCIE-40GB", "H100 PCIe", "H100 NVL"
// (a PCIe card). "H100 80GB HBM3" and "H200" are the SXM5 boards; their PCIe
// and NVL siblings say so in their names.
func interfaceFromName(name string) string {
	toks := nameTokens(name)
	for _, t := range toks {
		switch {
		case strings.HasPrefix(t, "sxm"):
			return InterfaceSXM
		case t == "pcie" || t == "nvl":
			return InterfacePCIe
		}
	}
	if len(toks) > 0 {
		switch toks[0] {
		case "h100", "h200", "b200", "gb200", "h800":
			for _, t := range toks[1:] {
				if strings.HasPrefix(t, "hbm") || strings.HasSuffix(t, "gb") {
					return InterfaceSXM
				}
			}
			if toks[0] != "h100" {
				return InterfaceSXM
			}
		}
	}
	return ""
}
