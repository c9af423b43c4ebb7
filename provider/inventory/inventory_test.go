package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/x/registry"
)

func TestParse(t *testing.T) {
	toml := `region = "us-east"
cpu_cores = 32
memory = "256Gi"
storage = "2Ti"
[[gpus]]
model = "a100"
memory = "80Gi"
interface = "pcie"
count = 4
[attributes]
tier = "community"
`
	inv, err := Parse([]byte(toml), ".toml")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != "declared" || inv.TotalGPUs() != 4 || inv.MemoryBytes != 256*registry.Gi || inv.Runtime != registry.DefaultRuntime() {
		t.Fatalf("ParseInventory = %+v", inv)
	}
	inv, err = Parse([]byte(toml+"[runtime]\nexecutor = \"process\"\ngpus = true\n"), ".toml")
	if err != nil || inv.Runtime != (registry.Runtime{Executor: "process", GPUs: true}) {
		t.Fatalf("ParseInventory with [runtime] = %+v, %v; want process without containers", inv.Runtime, err)
	}
	if _, err := Parse([]byte(toml+"\ngpu_count = 3\n"), ".toml"); err == nil {
		t.Fatal("unknown field accepted")
	}
	for _, tc := range []struct{ file, ext, want string }{
		{`{"region":"x1","cpu_cores":2,"memory":"8 bananas","storage":"1Ti"}`, ".json", `inventory.memory: must be a size`},
		{`{"region":"x1","cpu_cores":2,"memory":"8GB","storage":"1Ti"}`, ".json", `did you mean 8G (powers of 1000) or 8Gi`},
		{"region = \"x1\"\ncpu_cores = 2\nmemory = \"8Gi\"\nstorage = \"-1Ti\"\n", ".toml", `inventory.storage: must not be negative (got "-1Ti")`},
	} {
		if _, err := Parse([]byte(tc.file), tc.ext); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", tc.file, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "inv.json")
	if err := os.WriteFile(path, []byte(`{"region":"x1","cpu_cores":2,"memory":"8Gi","storage":"1Ti"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if inv, err := Load(path); err != nil || inv.MemoryBytes != 8*registry.Gi {
		t.Errorf("Load(%s) = %+v, %v", path, inv, err)
	}
	if _, err := Load(path + ".missing"); err == nil || !strings.Contains(err.Error(), "read inventory") {
		t.Errorf("Load(missing) = %v, want a read error", err)
	}
}

// FuzzParseInventory: no inventory file makes ParseInventory panic, and what it
// accepts is valid and survives the canonical encoding unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte("region = \"us-east\"\ncpu_cores = 32\nmemory = \"256Gi\"\nstorage = \"2Ti\"\n[[gpus]]\nmodel = \"a100\"\nmemory = \"80Gi\"\ninterface = \"pcie\"\ncount = 4\n[attributes]\ntier = \"community\"\n"), ".toml")
	f.Add([]byte(`{"region":"eu-west","cpu_cores":2,"memory":"8Gi","storage":"1Ti","runtime":{"executor":"process","gpus":true}}`), ".json")
	f.Add([]byte("memory = \"1.5Ti\"\n"), ".toml")
	f.Fuzz(func(t *testing.T, b []byte, ext string) {
		inv, err := Parse(b, ext)
		if err != nil {
			return
		}
		if err := inv.Validate(); err != nil {
			t.Fatalf("ParseInventory accepted an invalid inventory: %v", err)
		}
		w := codec.NewWriter(256)
		inv.MarshalTo(w)
		r := codec.NewReader(w.Bytes())
		back := registry.UnmarshalInventory(r)
		w2 := codec.NewWriter(256)
		back.MarshalTo(w2)
		if r.Err() != nil || string(w2.Bytes()) != string(w.Bytes()) || back.Validate() != nil {
			t.Fatalf("round trip: %+v (%v), want %+v", back, r.Err(), inv)
		}
	})
}
