package tenant

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mkfile writes body to dir/name, creating parent directories.
func mkfile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const specHead = "max_price: 100ukiln\ngroups: [{name: g, cpu: \"1\", memory: 1Gi}]\n"

// A spec uploads only files in its own directory or below: an absolute path, ".."
// or a symbolic link out of it is refused, naming the entry; so are two inputs
// with one base name (the provider stores inputs by base name) and names the
// provider cannot store.
func TestLoadSpecFiles(t *testing.T) {
	top := t.TempDir()
	mkfile(t, top, "secret.txt", "outside the spec's directory")
	dir := filepath.Join(top, "spec")
	mkfile(t, dir, "a.csv", "a")
	mkfile(t, dir, "data/a.csv", "data a")
	mkfile(t, dir, "data/b.csv", "b")
	mkfile(t, dir, "other/a.csv", "other a")
	mkfile(t, dir, "my file.txt", "space")
	mkfile(t, dir, "job.tar", "archive")
	if err := os.Symlink(filepath.Join(top, "secret.txt"), filepath.Join(dir, "out-link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.txt", filepath.Join(dir, "rel-link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data/b.csv", filepath.Join(dir, "in-link.csv")); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(top, "secret.txt")
	for _, tc := range []struct {
		name, tail string
		want       string   // error substring; "" means accepted
		inputs     []string // accepted: the plan's inputs, relative to dir
	}{
		{"absolute", fmt.Sprintf("services: [{command: [true]}]\ninputs: [%q]\n", secret), `inputs[0]: "` + secret + `" is an absolute path`, nil},
		{"etc passwd", "services: [{command: [true]}]\ninputs: [a.csv, /etc/passwd]\n", `inputs[1]: "/etc/passwd" is an absolute path`, nil},
		{"dot dot", "services: [{command: [true]}]\ninputs: [../secret.txt]\n", `inputs[0]: "../secret.txt" leaves the spec's directory`, nil},
		{"dot dot inside", "services: [{command: [true]}]\ninputs: [data/../../secret.txt]\n", `inputs[0]: "data/../../secret.txt" leaves`, nil},
		{"link out absolute", "services: [{command: [true]}]\ninputs: [out-link.txt]\n", `inputs[0]: "out-link.txt" is a symbolic link that leads out`, nil},
		{"link out relative", "services: [{command: [true]}]\ninputs: [rel-link.txt]\n", `inputs[0]: "rel-link.txt" is a symbolic link that leads out`, nil},
		{"same base name", "services: [{command: [true]}]\ninputs: [data/a.csv, other/a.csv]\n", `inputs[1]: "other/a.csv" and inputs[0] "data/a.csv" are both uploaded as a.csv`, nil},
		{"same file twice", "services: [{command: [true]}]\ninputs: [a.csv, ./a.csv]\n", `inputs[1]: "./a.csv" and inputs[0] "a.csv" are both uploaded as a.csv`, nil},
		{"directory", "services: [{command: [true]}]\ninputs: [data]\n", `inputs[0]: "data" is a directory, not a regular file`, nil},
		{"bad name", "services: [{command: [true]}]\ninputs: [my file.txt]\n", `inputs[0]: "my file.txt": the file name "my file.txt" cannot be an input name`, nil},
		{"missing", "services: [{command: [true]}]\ninputs: [nope.csv]\n", `inputs[0]: "nope.csv"`, nil},
		{"empty", "services: [{command: [true]}]\ninputs: [\"\"]\n", `inputs[0]: empty file name`, nil},
		{"archive absolute", fmt.Sprintf("services: [{image_archive: %q}]\n", secret), `services[0].image_archive: "` + secret + `" is an absolute path`, nil},
		{"archive dot dot", "services: [{image_archive: ../secret.txt}]\n", `services[0].image_archive: "../secret.txt" leaves`, nil},
		{"same base name after cleaning", "services: [{command: [true]}]\ninputs: [data/b.csv, ./other/../other/a.csv, a.csv]\n", `inputs[2]: "a.csv" and inputs[1] "./other/../other/a.csv" are both uploaded as a.csv`, nil},
		{"accepted distinct", "services: [{command: [true]}]\ninputs: [a.csv, data/b.csv, in-link.csv]\n", "", []string{"a.csv", "data/b.csv", "in-link.csv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := mkfile(t, dir, "spec-"+strings.ReplaceAll(tc.name, " ", "-")+".yaml", specHead+tc.tail)
			plans, _, err := Load(spec)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load(%s) = %v, want an error containing %q", tc.tail, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(%s) = %v", tc.tail, err)
			}
			var got []string
			for _, in := range plans[0].Inputs {
				rel, _ := filepath.Rel(dir, in)
				got = append(got, rel)
			}
			if strings.Join(got, ",") != strings.Join(tc.inputs, ",") {
				t.Fatalf("inputs = %v, want %v under %s", got, tc.inputs, dir)
			}
		})
	}
}

// The default deposit is max_price times DefaultDepositBlocks; a max_price for which
// that overflows 64 bits is refused, naming the limit, instead of wrapping around to a
// small deposit.
func TestLoadDefaultDepositOverflow(t *testing.T) {
	const limit = uint64(30744573456182586) // (2^64-1) / 600
	for _, tc := range []struct {
		price   uint64
		deposit string
		want    string
	}{
		{limit, "", ""},
		{limit + 1, "", "the most it allows is 30744573456182586ukiln per block"},
		{1<<64 - 1, "", "the most it allows is 30744573456182586ukiln per block"},
		{1<<64 - 1, "deposit: 1000ukiln\n", ""},
	} {
		body := fmt.Sprintf("max_price: %dukiln\n%sgroups: [{name: g, cpu: \"1\", memory: 1Gi}]\nservices: [{command: [true]}]\n", tc.price, tc.deposit)
		plans, _, err := Load(write(t, "s.yaml", body))
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "max_price") {
				t.Errorf("Load(max_price %d) = %v, want an error on max_price naming %q", tc.price, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("Load(max_price %d, %q) = %v", tc.price, tc.deposit, err)
			continue
		}
		if d := plans[0].Deposit.Amount; tc.deposit == "" && d != tc.price*DefaultDepositBlocks {
			t.Errorf("Load(max_price %d) deposit = %d, want %d", tc.price, d, tc.price*DefaultDepositBlocks)
		}
	}
}

// A Kiln spec's cost is bounded by its size: a mapping with more entries than
// MaxSpecMapEntries (yaml.v3 checks a mapping's keys pairwise), more nodes than
// MaxSpecNodes (an alias bomb) or more bytes than MaxSpecBytes is refused at once,
// with the limit and where it is exceeded.
func TestLoadSpecLimits(t *testing.T) {
	env := func(n int) string {
		var b strings.Builder
		b.WriteString(specHead + "services:\n  - command: [true]\n    env:\n")
		for i := range n {
			fmt.Fprintf(&b, "      K%d: v\n", i)
		}
		return b.String()
	}
	bomb := specHead + "services: [{command: [true]}]\nx0: &a0 [v, v, v, v, v, v, v, v, v, v]\n"
	for i := 1; i <= 6; i++ {
		bomb += fmt.Sprintf("x%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	for _, tc := range []struct {
		name, body string
		want       string // "" means accepted
	}{
		{"env at the limit", env(MaxSpecMapEntries), ""},
		{"45k env entries", env(45_000), "services[0].env: spec too large: 45000 entries, over the limit of 1000 per mapping"},
		{"alias bomb", bomb, "more than 100000 YAML nodes"},
		{"over 1 MiB", specHead + "services: [{command: [true]}]\n# " + strings.Repeat("x", MaxSpecBytes) + "\n", "over the limit of 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			_, _, err := Load(write(t, "s.yaml", tc.body))
			took := time.Since(t0)
			t.Logf("Load took %v", took)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Load = %v, want accepted", err)
				}
			} else if !errors.Is(err, ErrSpecTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want ErrSpecTooLarge containing %q", err, tc.want)
			}
			// 5 s: far above the milliseconds these take, far below the 19.5 s that 45,000
			// env entries took unbounded, and safe on a loaded machine.
			if took > 5*time.Second && !raceEnabled {
				t.Errorf("Load took %v, want well under 5 s", took)
			}
		})
	}
}

// FuzzParseSpec: no input makes the Kiln spec parser panic, and whatever it accepts
// is a plan whose order and manifest are valid.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(specHead + "services: [{command: [true], env: {A: b}}]\n"))
	f.Add([]byte("kind: service\nmax_price: 5000ukiln\ndeposit: 1000ukiln\ngroups:\n  - name: main\n    cpu: 500m\n    memory: 1Gi\n    gpu: {units: 1, models: [{model: h100}]}\nservices:\n  - name: web\n    command: [sh]\n    expose: [{port: 8080}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("{\"max_price\": \"1\", \"groups\": [{\"name\": \"g\", \"cpu\": \"1\", \"memory\": \"1Mi\"}], \"services\": [{\"command\": [\"x\"]}]}"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseSpec(b, dir)
		if err != nil {
			return
		}
		if err := p.Manifest.Validate(); err != nil {
			t.Fatalf("parseSpec(%q) accepted a plan with an invalid manifest: %v", b, err)
		}
		if len(p.Groups) == 0 || p.MaxPrice == 0 || p.Deposit.Amount == 0 {
			t.Fatalf("parseSpec(%q) accepted a plan without groups, price or deposit: %+v", b, p)
		}
	})
}
