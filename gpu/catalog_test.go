package gpu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCatalogLoads(t *testing.T) {
	ms := Models()
	if len(ms) < 50 {
		t.Fatalf("Models() = %d entries, want the full catalogue", len(ms))
	}
	for _, m := range ms {
		if m.Vendor != "nvidia" && m.Vendor != "amd" {
			t.Errorf("%s: vendor %q", m.Key, m.Vendor)
		}
		if m.Vendor == "nvidia" && m.ComputeCapability == "" {
			t.Errorf("%s: NVIDIA model without compute capability", m.Key)
		}
		if len(m.Names) == 0 {
			t.Errorf("%s: no marketing names", m.Key)
		}
		for _, v := range m.Variants {
			if v.MemoryGiB <= 0 {
				t.Errorf("%s: variant %v has no memory size", m.Key, v.PCIIDs)
			}
			if (v.FP32TFLOPS > 0 || v.FP16TFLOPS > 0) && v.Source == "" {
				t.Errorf("%s: variant %v has TFLOPS without a source", m.Key, v.PCIIDs)
			}
			for _, id := range v.PCIIDs {
				if normPCIDeviceID(id) != id {
					t.Errorf("%s: PCI id %q is not 4 lower-case hex digits", m.Key, id)
				}
			}
		}
	}
}

func TestParseCatalogErrors(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"garbage", `{`, "decode catalog.json"},
		{"no key", `{"models":[{"variants":[{"interface":"pcie"}]}]}`, "key and variants are required"},
		{"dup key", `{"models":[{"key":"a","variants":[{"interface":"pcie"}]},{"key":"a","variants":[{"interface":"pcie"}]}]}`, "listed twice"},
		{"bad iface", `{"models":[{"key":"a","variants":[{"interface":"SXM4"}]}]}`, "is not pcie or sxm"},
		{"dup pci", `{"models":[{"key":"a","variants":[{"interface":"pcie","pci_ids":["1234"]}]},{"key":"b","variants":[{"interface":"pcie","pci_ids":["1234"]}]}]}`, "in both a and b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCatalog([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseCatalog(%s) = %v, want %q", tt.json, err, tt.want)
			}
		})
	}
}

// TestCatalogMatchesAkash checks every PCI id in Akash's provider-configs GPU
// table (../shared/corpus/gpu-db) against the catalogue: same model key, same
// interface, same memory size. Keys are what tenants write in SDL files, so a
// mismatch would make a Kiln provider invisible to Akash-style orders.
func TestCatalogMatchesAkash(t *testing.T) {
	path := filepath.Join(corpusDir(t, "gpu-db"), "akash__gpus.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("Akash table not readable: %v", err)
	}
	var vendors map[string]struct {
		Name    string `json:"name"`
		Devices map[string]struct {
			Name       string `json:"name"`
			Interface  string `json:"interface"`
			MemorySize string `json:"memory_size"`
		} `json:"devices"`
	}
	if err := json.Unmarshal(data, &vendors); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	n := 0
	for vendorID, v := range vendors {
		for id, d := range v.Devices {
			n++
			t.Run(vendorID+":"+id, func(t *testing.T) {
				m, variant, ok := LookupPCI(id)
				if !ok {
					t.Fatalf("LookupPCI(%s) not found; Akash calls it %s", id, d.Name)
				}
				if m.Key != d.Name {
					t.Errorf("LookupPCI(%s).Key = %q, Akash says %q", id, m.Key, d.Name)
				}
				if m.Vendor != v.Name {
					t.Errorf("LookupPCI(%s).Vendor = %q, Akash says %q", id, m.Vendor, v.Name)
				}
				wantIface := InterfacePCIe
				if strings.HasPrefix(strings.ToLower(d.Interface), "sxm") {
					wantIface = InterfaceSXM
				}
				if variant.Interface != wantIface {
					t.Errorf("LookupPCI(%s).Interface = %q, Akash says %q", id, variant.Interface, d.Interface)
				}
				gi, err := strconv.Atoi(strings.TrimSuffix(d.MemorySize, "Gi"))
				if err != nil {
					t.Fatalf("Akash memory_size %q: %v", d.MemorySize, err)
				}
				if variant.MemoryGiB != gi {
					t.Errorf("LookupPCI(%s).MemoryGiB = %d, Akash says %s", id, variant.MemoryGiB, d.MemorySize)
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("Akash table has no devices")
	}
}

func TestModelKeyForName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"NVIDIA H100 80GB HBM3", "h100"},
		{"NVIDIA H100 PCIe", "h100"},
		{"NVIDIA H100 NVL", "h100"},
		{"NVIDIA H200", "h200"},
		{"NVIDIA H200 NVL", "h200nvl"},
		{"NVIDIA H200 141GB HBM3e", "h200"},
		{"NVIDIA A100-SXM4-80GB", "a100"},
		{"NVIDIA A100-PCIE-40GB", "a100"},
		{"Mock NVIDIA A100-SXM4-40GB", "a100"},
		{"NVIDIA A10G", "a10g"},
		{"NVIDIA A10", "a10"},
		{"NVIDIA A40", "a40"},
		{"NVIDIA L40S", "l40s"},
		{"NVIDIA L40", "l40"},
		{"NVIDIA L4", "l4"},
		{"Tesla T4", "t4"},
		{"Tesla V100-SXM2-16GB", "v100"},
		{"Tesla P100-PCIE-16GB", "p100"},
		{"GRID P4-1Q", "p4"},
		{"Tesla P40", "p40"},
		{"Quadro P2000", "p2000"},
		{"Quadro RTX 6000", "rtx6000"},
		{"NVIDIA RTX 6000 Ada Generation", "rtx6000ada"},
		{"NVIDIA RTX 4000 Ada Generation", "rtx4000ada"},
		{"NVIDIA RTX 4000 SFF Ada Generation", "rtx4000sada"},
		{"NVIDIA RTX A6000", "rtxa6000"},
		{"NVIDIA GeForce RTX 4090", "rtx4090"},
		{"NVIDIA GeForce RTX 4060 Ti", "rtx4060ti"},
		{"NVIDIA GeForce RTX 4060", "rtx4060"},
		{"NVIDIA GeForce RTX 4080 SUPER", "rtx4080s"},
		{"NVIDIA GeForce RTX 2080 SUPER", "rtx2080s"},
		{"NVIDIA GeForce RTX 2080 Ti", "rtx2080ti"},
		// The plain table truncates names: ambiguous prefixes give no key.
		{"NVIDIA GeForce RTX 2080 ...", ""},
		{"NVIDIA RTX 4000 Ada Gene...", "rtx4000ada"},
		{"NVIDIA RTX 6000 Ada Gene...", "rtx6000ada"},
		{"NVIDIA GeForce RTX 4090 ...", "rtx4090"},
		{"NVIDIA GeForce GT 1030", "gt1030"},
		{"NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "pro6000mq"},
		{"NVIDIA RTX PRO 6000 Blackwell Server Edition", "pro6000se"},
		{"NVIDIA B200 180GB HBM3e", "b200"},
		{"AMD Instinct MI100", "mi100"},
		{"NVIDIA Graphics Device", ""},
		{"", ""},
		{"Intel Arc A770", ""},
	}
	for _, tt := range tests {
		if got := ModelKeyForName(tt.name); got != tt.want {
			t.Errorf("ModelKeyForName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in                  GPU
		key, iface, cc, arc string
	}{
		{GPU{Name: "NVIDIA H100 80GB HBM3", PCIDeviceID: "0x233010DE"}, "h100", "sxm", "9.0", "hopper"},
		{GPU{Name: "NVIDIA H100 PCIe", PCIDeviceID: "233110de"}, "h100", "pcie", "9.0", "hopper"},
		{GPU{Name: "NVIDIA H100 NVL"}, "h100", "pcie", "9.0", "hopper"},
		{GPU{Name: "NVIDIA H100 80GB HBM3"}, "h100", "sxm", "9.0", "hopper"},
		{GPU{Name: "NVIDIA A100-PCIE-40GB"}, "a100", "pcie", "8.0", "ampere"},
		{GPU{Name: "NVIDIA A100 80GB PCIe"}, "a100", "pcie", "8.0", "ampere"},
		// The id wins over a wrong or truncated name.
		{GPU{Name: "NVIDIA GeForce RTX 2080 ...", PCIDeviceID: "0x1E8110DE"}, "rtx2080s", "pcie", "7.5", "turing"},
		// vGPU guests report a zero device id: fall back to the name.
		{GPU{Name: "NVIDIA A10G", PCIDeviceID: "0x000000DE"}, "a10g", "pcie", "8.6", "ampere"},
		// Unknown: the source's own values are kept.
		{GPU{Name: "NVIDIA Future X1 SXM6", Architecture: "rubin", ComputeCapability: "11.0"}, "", "sxm", "11.0", "rubin"},
		// The driver's compute capability is not overwritten.
		{GPU{Name: "NVIDIA L4", ComputeCapability: "8.9"}, "l4", "pcie", "8.9", "ada"},
	}
	for _, tt := range tests {
		g := tt.in
		g.classify()
		if g.ModelKey != tt.key || g.Interface != tt.iface || g.ComputeCapability != tt.cc || g.Architecture != tt.arc || g.Vendor != "nvidia" {
			t.Errorf("classify(%q, %q) = %q/%q/%q/%q/%q, want %q/%q/%q/%q/nvidia", tt.in.Name, tt.in.PCIDeviceID,
				g.ModelKey, g.Interface, g.ComputeCapability, g.Architecture, g.Vendor, tt.key, tt.iface, tt.cc, tt.arc)
		}
	}
}

func TestLookupPCIForms(t *testing.T) {
	for _, id := range []string{"2330", "0x2330", "0x233010DE", "233010de", " 2330 "} {
		if m, v, ok := LookupPCI(id); !ok || m.Key != "h100" || v.Interface != InterfaceSXM || v.MemoryGiB != 80 {
			t.Errorf("LookupPCI(%q) = %s %+v %v, want h100 sxm 80", id, m.Key, v, ok)
		}
	}
	for _, id := range []string{"", "zzzz", "0x000000DE", "12345", "ffff"} {
		if _, _, ok := LookupPCI(id); ok {
			t.Errorf("LookupPCI(%q) found a model, want none", id)
		}
	}
}
