package sdl

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the corpus")

// corpusDir finds ../shared/corpus/akash-sdl beside the repository root.
func corpusDir(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Skip("cannot locate the test file")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("go.mod not found above the sdl package")
		}
		dir = parent
	}
	c := filepath.Join(filepath.Dir(dir), "shared", "corpus", "akash-sdl")
	if _, err := os.Stat(c); err != nil {
		tb.Skipf("Akash SDL corpus not found at %s (it lives in the shared folder beside the repository): %v", c, err)
	}
	return c
}

func corpusFiles(tb testing.TB) []string {
	dir := corpusDir(tb)
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		tb.Skipf("no SDL files in %s", dir)
	}
	return files
}

// knownDefects are corpus files that Akash's parser refuses, and why. The
// corpus test checks that exactly these are refused. (Files whose only fault
// is a size spelling Akash Console accepts and Akash's Go CLI refuses, such
// as 16GB or 2gi, are read as Console reads them, with a warning: see
// lenientSizeFiles.)
var knownDefects = map[string]string{
	"Venice-ElizaOS__deploy.yml":      "cpu.units is a list; memory 32gb (suffixes are case-sensitive, no B)",
	"minio__deploy.yml":               "expose.to is a mapping, not a list; persistent volume never mounted (2.0)",
	"postgres-s3-backup__deploy.yaml": "no service exposed globally (Akash manifest validation)",
}

// lenientSizeFiles are corpus files written with Console-only size
// spellings: accepted, each with a warning.
var lenientSizeFiles = []string{
	"automatic-deployment-CICD-template__deploy.yaml", // memory 6GB
	"bancor__deploy.yaml",                             // 2gi
	"bark-small__deploy.yaml",                         // storage 4GB/40GB
	"centrifuge__deploy.yaml",                         // memory 16GB
	"elasticsearch__deploy_with_kibana.yaml",          // 8gb/32gb/2gb
	"gitea__deploy_postgres.yaml",                     // memory 1gi
	"handshake__deploy.yaml",                          // memory 2GB
	"onetimepad__deploy.yaml",                         // storage 512mi
	"ray__ray-nightly-py310-gpu.yml",                  // storage 10Gb
	"satisfactory-server__deploy.yaml",                // 16GB/10GB/15GB
	"tensorflow-jupyter-ezkl__deploy.yaml",            // memory 256GB
}

// golden is what testdata/golden/<file>.json records for a corpus file:
// for an accepted file the order groups (GPU models, units, CPU, memory,
// storage, count, price) and a summary of the manifest; for a refused one
// the errors.
type golden struct {
	Accepted bool         `json:"accepted"`
	Version  string       `json:"version,omitempty"`
	Groups   []OrderGroup `json:"groups,omitempty"`
	Services []goldenSvc  `json:"services,omitempty"`
	Errors   []string     `json:"errors,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

type goldenSvc struct {
	Group  string   `json:"group"`
	Name   string   `json:"name"`
	Image  string   `json:"image"`
	Count  uint32   `json:"count"`
	Expose []string `json:"expose,omitempty"`
	Mounts []string `json:"mounts,omitempty"`
}

func makeGolden(res *Result, err error) golden {
	g := golden{Accepted: err == nil, Version: res.Version}
	for _, w := range res.Warnings {
		w.File = ""
		g.Warnings = append(g.Warnings, w.String())
	}
	var list ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			c := *e
			c.File = ""
			g.Errors = append(g.Errors, c.Error())
		}
		return g
	}
	g.Groups = res.Groups
	for _, mg := range res.Manifest.Groups {
		for _, s := range mg.Services {
			gs := goldenSvc{Group: mg.Name, Name: s.Name, Image: s.Image, Count: s.Count}
			for _, x := range s.Expose {
				d := "internal"
				switch {
				case x.Global && x.IP != "":
					d = "global ip " + x.IP
				case x.Global:
					d = "global"
				case x.Service != "":
					d = "service " + x.Service
				}
				ext := x.ExternalPort
				if ext == 0 {
					ext = x.Port
				}
				gs.Expose = append(gs.Expose, strings.ToLower(x.Proto)+" "+itoa(x.Port)+"->"+itoa(ext)+" "+d)
			}
			if s.Params != nil {
				for _, sp := range s.Params.Storage {
					gs.Mounts = append(gs.Mounts, sp.Name+":"+sp.Mount)
				}
			}
			g.Services = append(g.Services, gs)
		}
	}
	return g
}

func itoa(v uint32) string { return big.NewInt(int64(v)).String() }

func TestCorpus(t *testing.T) {
	files := corpusFiles(t)
	goldenDir := filepath.Join("testdata", "golden")
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	accepted, refused := 0, 0
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := DefaultConfig().Parse(name, data)
			if reason, defect := knownDefects[name]; defect {
				refused++
				if err == nil {
					t.Errorf("Parse(%q) accepted it, want refused: %s", name, reason)
				}
			} else {
				accepted++
				if err != nil {
					t.Errorf("Parse(%q) = %v, want accepted", name, err)
				} else {
					checkSensible(t, res)
				}
			}
			if slices.Contains(lenientSizeFiles, name) && !slices.ContainsFunc(res.Warnings, func(w Warning) bool {
				return strings.Contains(w.Msg, "Akash's Go CLI refuses it")
			}) {
				t.Errorf("Parse(%q) warnings = %v, want one about a Console-only size spelling", name, res.Warnings)
			}
			got, _ := json.MarshalIndent(makeGolden(res, err), "", "  ")
			got = append(got, '\n')
			path := filepath.Join(goldenDir, name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test ./sdl -run TestCorpus -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Parse(%q) differs from %s (rerun with -update and review the diff):\n%s", name, path, firstDiff(string(got), string(want)))
			}
		})
	}
	for name := range knownDefects {
		if !seen[name] {
			t.Errorf("knownDefects lists %q, which is not in the corpus", name)
		}
	}
	t.Logf("corpus: %d files, %d accepted, %d refused as Akash refuses them", len(files), accepted, refused)
}

// checkSensible checks that an accepted file makes orders a provider can
// bid on.
func checkSensible(t *testing.T, res *Result) {
	t.Helper()
	if len(res.Groups) == 0 || len(res.Groups) != len(res.Manifest.Groups) {
		t.Fatalf("groups %d, manifest groups %d", len(res.Groups), len(res.Manifest.Groups))
	}
	for _, g := range res.Groups {
		if len(g.Resources) == 0 {
			t.Errorf("group %s has no resources", g.Name)
		}
		for _, u := range g.Resources {
			if u.CPUMilli < minUnitCPU || u.MemoryBytes < minUnitMemory || len(u.Storage) == 0 || u.Count < 1 {
				t.Errorf("group %s unit %d: cpu %d, memory %d, storage %d, count %d", g.Name, u.ID, u.CPUMilli, u.MemoryBytes, len(u.Storage), u.Count)
			}
			if u.GPU.Units > 0 && len(u.GPU.Models) == 0 {
				t.Errorf("group %s unit %d: %d GPUs without models", g.Name, u.ID, u.GPU.Units)
			}
			r, ok := new(big.Rat).SetString(u.Price.Amount)
			if u.Price.Denom != KilnDenom || !ok || r.Sign() <= 0 {
				t.Errorf("group %s unit %d: price %+v", g.Name, u.ID, u.Price)
			}
		}
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + itoa(uint32(i+1)) + ":\n got:  " + x + "\n want: " + y
		}
	}
	return ""
}
