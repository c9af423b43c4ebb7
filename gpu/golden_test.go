package gpu

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the corpus")

// corpusDir returns <repo root>/../shared/corpus/<name>, skipping the test
// when it is absent (the corpus is third-party data kept outside the repo).
func corpusDir(tb testing.TB, name string) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("no go.mod above the test directory: cannot locate ../shared/corpus")
		}
		dir = parent
	}
	c := filepath.Join(filepath.Dir(dir), "shared", "corpus", name)
	if _, err := os.Stat(c); err != nil {
		tb.Skipf("corpus %s not present (%v): golden tests need ../shared/corpus next to the repo", c, err)
	}
	return c
}

// corpusFiles lists every capture under the nvidia-smi corpus, recursively,
// except its SOURCE.md.
func corpusFiles(tb testing.TB) (string, []string) {
	tb.Helper()
	root := corpusDir(tb, "nvidia-smi")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() == "SOURCE.md" {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Skipf("corpus %s is empty", root)
	}
	return root, files
}

func goldenName(rel string) string {
	return strings.ReplaceAll(filepath.ToSlash(rel), "/", "__") + ".json"
}

// TestGoldenCorpus parses every file of ../shared/corpus/nvidia-smi with
// FromFile and compares the inventory with testdata/golden/<file>.json.
// Run with -update to rewrite the expectations after a deliberate change.
func TestGoldenCorpus(t *testing.T) {
	root, files := corpusFiles(t)
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			inv, err := FromFile(filepath.Join(root, rel))
			if err != nil {
				t.Fatalf("FromFile(%q) = %v", rel, err)
			}
			if err := inv.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
			if len(inv.GPUs) == 0 && inv.Topology == nil {
				t.Errorf("FromFile(%q): no GPUs and no topology", rel)
			}
			got, err := json.MarshalIndent(inv, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", goldenName(rel))
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run go test ./gpu -run TestGoldenCorpus -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("FromFile(%q) differs from %s (rerun with -update if intended)\ngot:\n%s", rel, golden, got)
			}
		})
	}
	if !*update {
		// Every golden file must still have its corpus file: stale ones hide renames.
		entries, err := os.ReadDir(filepath.Join("testdata", "golden"))
		if err != nil {
			t.Fatal(err)
		}
		have := make(map[string]bool, len(files))
		for _, f := range files {
			have[goldenName(f)] = true
		}
		for _, e := range entries {
			if !have[e.Name()] {
				t.Errorf("testdata/golden/%s has no corpus file", e.Name())
			}
		}
	}
}

// TestCorpusFacts checks what the corpus's SOURCE.md says about each capture
// (GPU count, model, interface, driver, MIG) independently of the golden
// files, so that an -update cannot quietly accept a wrong inventory.
func TestCorpusFacts(t *testing.T) {
	root, files := corpusFiles(t)
	type fact struct {
		gpus         int
		key, iface   string
		driver       string
		migDevices   int // on GPU 0; -1: do not check
		topologyOnly bool
	}
	byName := map[string]fact{
		"telegraf__a100-sxm4-v12.xml":               {1, "a100", "sxm", "535.54.03", 4, false},
		"telegraf__a10g.xml":                        {1, "a10g", "pcie", "515.105.01", 0, false},
		"telegraf__rtx-3090-v12.xml":                {1, "rtx3090", "pcie", "525.147.05", 0, false},
		"telegraf__3090-v13.xml":                    {1, "rtx3090", "pcie", "590.44.01", 0, false},
		"telegraf__dual_2080-v13.xml":               {2, "rtx2080", "pcie", "590.44.01", 0, false},
		"telegraf__pro-6000-maxq-blackwell-v13.xml": {1, "pro6000mq", "pcie", "590.44.01", 0, false},
		"telegraf__rtx-3080-v13.xml":                {1, "rtx3080", "pcie", "595.58.03", 0, false},
		"telegraf__quadro-p2000-v12.xml":            {1, "p2000", "pcie", "525.125.06", 0, false},
		"telegraf__tesla_p4.xml":                    {1, "p4", "pcie", "513.46", 0, false},
		"telegraf__gt-1030.xml":                     {1, "gt1030", "pcie", "470.74", 0, false},
		"netdata__tesla-p100.csv":                   {1, "p100", "pcie", "", 0, false},
		"thamada__H100SXMx8_smi__q.txt":             {8, "h100", "sxm", "565.57.01", 0, false},
		"thamada__H100SXMx8_smi__table.txt":         {8, "h100", "sxm", "565.57.01", 0, false},
		"thamada__A100SXMx4_smi__q.txt":             {4, "a100", "sxm", "555.42.02", 0, false},
		"thamada__A100SXMx4_smi__table.txt":         {4, "a100", "sxm", "555.42.02", 0, false},
		"thamada__H100NVLx2_smi__q.txt":             {2, "h100", "pcie", "550.54.14", 0, false},
		"thamada__H100NVLx2_smi__table.txt":         {2, "h100", "pcie", "550.54.14", 0, false},
		"thamada__L4_smi__q.txt":                    {1, "l4", "pcie", "550.90.07", 0, false},
		"thamada__L4_smi__table.txt":                {1, "l4", "pcie", "550.90.07", 0, false},
		"thamada__RTX6000Ada_x8_smi__q.txt":         {8, "rtx6000ada", "pcie", "550.127.05", 0, false},
		"thamada__RTX6000Ada_x8_smi__table.txt":     {8, "rtx6000ada", "pcie", "550.127.05", 0, false},
		"thamada__L40S_smi__q.txt":                  {1, "l40s", "pcie", "550.127.05", 0, false},
		"thamada__L40S_smi__table.txt":              {1, "l40s", "pcie", "550.127.05", 0, false},
		"thamada__RTX4060Ti_smi__q.txt":             {2, "rtx4060ti", "pcie", "550.54.14", 0, false},
		"thamada__RTX4060Ti_smi__table.txt":         {2, "rtx4060ti", "pcie", "550.54.14", 0, false},
		"thamada__RTX4000Ada_smi__q.txt":            {1, "rtx4000ada", "pcie", "550.90.07", 0, false},
		"thamada__RTX4000Ada_smi__table.txt":        {1, "rtx4000ada", "pcie", "550.90.07", 0, false},
	}
	// utkuozdemir captures: the model and driver are in the file name.
	utku := []struct {
		infix, key, iface, driver string
		mig                       int
	}{
		{"nvidia-h100-80gb-hbm3__590.48.01", "h100", "sxm", "590.48.01", 0},
		{"nvidia-h100-mig__590.48.01", "h100", "sxm", "590.48.01", 4},
		{"nvidia-h200-mig__590.48.01", "h200", "sxm", "590.48.01", 5},
		{"nvidia-l40s__595.80", "l40s", "pcie", "595.80", 0},
		{"linux-x86_64__nvidia-geforce-rtx-2080-super__610.57.04", "rtx2080s", "pcie", "610.57.04", 0},
		{"windows-x86_64__nvidia-geforce-rtx-2080-super__610.62", "rtx2080s", "pcie", "610.62", 0},
	}
	for _, rel := range files {
		base := filepath.Base(rel)
		f, ok := byName[base]
		if !ok {
			for _, u := range utku {
				if !strings.Contains(base, u.infix) {
					continue
				}
				f = fact{gpus: 1, key: u.key, iface: u.iface, driver: u.driver, migDevices: u.mig}
				switch {
				case strings.HasSuffix(base, "__topo-m.txt"):
					f = fact{topologyOnly: true}
				case strings.HasSuffix(base, "__L.txt"):
					f.driver, f.migDevices = "", u.mig // -L has no driver; MIG devices it does list
				case strings.HasSuffix(base, ".csv"):
					f.migDevices = 0 // --query-gpu has no MIG devices
				case strings.Contains(base, "__table-") && u.key == "rtx2080s":
					// The table truncates "RTX 2080 SUPER" to "RTX 2080 ..." and has no
					// PCI id: ambiguous, so no key and no interface.
					f.key, f.iface = "", ""
				}
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: no expected facts; add it to TestCorpusFacts", rel)
			continue
		}
		t.Run(rel, func(t *testing.T) {
			inv, err := FromFile(filepath.Join(root, rel))
			if err != nil {
				t.Fatal(err)
			}
			if f.topologyOnly {
				if inv.Topology == nil || len(inv.Topology.Devices) == 0 || len(inv.GPUs) != 0 {
					t.Errorf("FromFile(%s) = %d GPUs, topology %+v; want topology only", rel, len(inv.GPUs), inv.Topology)
				}
				return
			}
			if len(inv.GPUs) != f.gpus {
				t.Fatalf("FromFile(%s) = %d GPUs, want %d", rel, len(inv.GPUs), f.gpus)
			}
			if inv.Driver != f.driver {
				t.Errorf("FromFile(%s).Driver = %q, want %q", rel, inv.Driver, f.driver)
			}
			for _, g := range inv.GPUs {
				if g.ModelKey != f.key || g.Interface != f.iface {
					t.Errorf("FromFile(%s) GPU %d = %s/%s, want %s/%s", rel, g.Index, g.ModelKey, g.Interface, f.key, f.iface)
				}
				if g.Name == "" || (f.key != "" && g.MemoryMiB == 0 && !strings.HasSuffix(base, "__L.txt")) {
					t.Errorf("FromFile(%s) GPU %d lacks name or memory: %+v", rel, g.Index, g)
				}
			}
			if got := len(inv.GPUs[0].MIGDevices); f.migDevices >= 0 && got != f.migDevices {
				t.Errorf("FromFile(%s) GPU 0 has %d MIG devices, want %d", rel, got, f.migDevices)
			}
		})
	}
}

// BenchmarkParseCorpus parses every corpus file once per iteration; the
// baseline to compare against is the per-file XML decode it is dominated by.
func BenchmarkParseCorpus(b *testing.B) {
	root, files := corpusFiles(b)
	data := make([][]byte, len(files))
	for i, rel := range files {
		d, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			b.Fatal(err)
		}
		data[i] = d
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, d := range data {
			if _, err := Parse(bytes.NewReader(d)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
