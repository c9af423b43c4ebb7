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
