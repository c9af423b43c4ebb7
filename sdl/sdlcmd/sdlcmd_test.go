package sdlcmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/sdl"
)

const goodSDL = `version: "2.0"
services:
  web:
    image: nginx
    depends_on: [db]
    expose:
      - port: 80
        to: [{global: true}]
    credentials: {host: ghcr.io, username: me, password: hunter2}
profiles:
  compute:
    web:
      resources:
        cpu: {units: 0.5}
        memory: {size: 512Mi}
        storage: {size: 1Gi}
        gpu:
          units: 1
          attributes: {vendor: {nvidia: [{model: a100, ram: 80Gi}]}}
  placement:
    dc:
      pricing: {web: {denom: uact, amount: 6098}}
deployment:
  web: {dc: {profile: web, count: 2}}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := NewCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

func TestValidate(t *testing.T) {
	good := writeFile(t, "good.yaml", goodSDL)
	bad := writeFile(t, "bad.yaml", strings.Replace(strings.Replace(goodSDL, "512Mi", "512 MiB", 1), "count: 2", "count: 0", 1))
	// Akash Console's spelling: read as Console reads it, with a warning naming Akash's.
	console := writeFile(t, "console.yaml", strings.Replace(goodSDL, "512Mi", "512MB", 1))
	missing := filepath.Join(t.TempDir(), "missing.yaml")

	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    []string
		wantErrOut []string
	}{
		{"one valid", []string{"validate", good}, 0, []string{good + ": OK"}, []string{`unknown key "depends_on" ignored`}},
		{"valid and invalid", []string{"validate", good, bad}, 1, []string{good + ": OK", bad + ": invalid (2 problems)", "memory.size", "count must be 1-50"}, nil},
		{"console spelling", []string{"validate", console}, 0, []string{console + ": OK"}, []string{`size "512MB" is read as 512M`}},
		{"unreadable file", []string{"validate", missing}, 1, []string{"invalid", "read SDL"}, nil},
		{"no files", []string{"validate"}, 2, nil, []string{"at least one FILE"}},
		{"bad output flag", []string{"validate", "-o", "yaml", good}, 2, nil, []string{"--output must be text or json"}},
		{"unknown flag", []string{"validate", "--nope", good}, -1, nil, []string{"unknown flag"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(t, tc.args...)
			if got := exitCode(err); got != tc.code {
				t.Fatalf("kiln sdl %v: exit %d (%v), want %d\nstdout:\n%s\nstderr:\n%s", tc.args, got, err, tc.code, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout = %q, want it to contain %q", out, w)
				}
			}
			for _, w := range tc.wantErrOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr = %q, want it to contain %q", errOut, w)
				}
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	good := writeFile(t, "good.yaml", goodSDL)
	bad := writeFile(t, "bad.yaml", "version: '9'\n")
	out, _, err := run(t, "validate", "--output", "json", good, bad)
	if exitCode(err) != 1 {
		t.Fatalf("exit = %v, want 1", err)
	}
	var reports []fileReport
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(reports) != 2 || !reports[0].Valid || reports[1].Valid || len(reports[1].Errors) == 0 || len(reports[0].Warnings) == 0 {
		t.Errorf("reports = %+v", reports)
	}
}

func TestShowJSON(t *testing.T) {
	good := writeFile(t, "good.yaml", goodSDL)
	out, _, err := run(t, "show", good, "--output", "json")
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	var res sdl.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	u := res.Groups[0].Resources[0]
	if u.CPUMilli != 500 || u.Count != 2 || u.GPU.Units != 1 || u.GPU.Models[0].Model != "a100" || u.Price != (sdl.Coin{Denom: "ukiln", Amount: "1000"}) {
		t.Errorf("unit = %+v", u)
	}
	if c := res.Manifest.Groups[0].Services[0].Credentials; c == nil || c.Password != "<redacted>" {
		t.Errorf("credentials = %+v, want password redacted", c)
	}
	if !strings.Contains(out, `"cpu_milli": 500`) {
		t.Errorf("JSON is not snake_case: %s", out)
	}
}

func TestShowText(t *testing.T) {
	good := writeFile(t, "good.yaml", goodSDL)
	out, _, err := run(t, "show", good)
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	for _, w := range []string{"group dc: any provider", "unit 1 × 2: cpu 500m, memory 512Mi, storage default 1Gi, gpu 1 × (nvidia a100 80Gi)", "price 1000 ukiln per Kiln block (SDL: 6098 uact per Akash block)", "expose tcp 80 as 80 global"} {
		if !strings.Contains(out, w) {
			t.Errorf("show output = %q, want it to contain %q", out, w)
		}
	}
}

// Prices are shown as whole ukiln per Kiln block, exact, with the SDL's price as the
// SDL wrote it; never a long decimal.
func TestShowPrices(t *testing.T) {
	tests := []struct {
		pricing string
		want    string
	}{
		{"{denom: uact, amount: 6098}", "price 1000 ukiln per Kiln block (SDL: 6098 uact per Akash block)"},
		// 100000 × 1 s / 6.098 s = 16398.819…
		{"{denom: uact, amount: 100000}", "price 16399 ukiln per Kiln block, rounded up (SDL: 100000 uact per Akash block)"},
		{"{denom: uakt, amount: 10000}", "price 1640 ukiln per Kiln block, rounded up (SDL: 10000 uakt per Akash block)"},
		{"{denom: ukiln, amount: 2}", "price 2 ukiln per Kiln block (SDL: 2 ukiln per Akash block)"},
		{"{denom: ukiln, amount: 0.25}", "price 1 ukiln per Kiln block, rounded up (SDL: 0.25 ukiln per Akash block)"},
	}
	for _, tt := range tests {
		src := strings.Replace(goodSDL, "{denom: uact, amount: 6098}", tt.pricing, 1)
		out, _, err := run(t, "show", writeFile(t, "p.yaml", src))
		if err != nil {
			t.Fatalf("show with pricing %s: %v", tt.pricing, err)
		}
		if !strings.Contains(out, tt.want) {
			t.Errorf("show with pricing %s = %q, want %q", tt.pricing, out, tt.want)
		}
		if regexp.MustCompile(`\.\d{3,}`).MatchString(out) {
			t.Errorf("show with pricing %s prints a long decimal:\n%s", tt.pricing, out)
		}
	}
}

func TestCoinCeil(t *testing.T) {
	tests := []struct {
		amount string
		units  uint64
		whole  bool
		err    bool
	}{
		{"0", 0, true, false},
		{"1000", 1000, true, false},
		{"1000.000", 1000, true, false},
		{"16398.819285011479173500", 16399, false, false},
		{"0.000000000000000001", 1, false, false},
		{"18446744073709551615", 1<<64 - 1, true, false},
		{"18446744073709551615.5", 0, false, true},
		{"-1", 0, false, true},
		{"1e3", 0, false, true},
		{"1/3", 0, false, true},
		{"abc", 0, false, true},
		{"0x10", 0, false, true},
		{"1_000", 0, false, true},
		{"+5", 0, false, true},
		{".5", 0, false, true},
	}
	for _, tt := range tests {
		units, whole, err := sdl.Coin{Denom: "ukiln", Amount: tt.amount}.Ceil()
		if units != tt.units || whole != tt.whole || (err != nil) != tt.err {
			t.Errorf("Coin{%q}.Ceil() = %d, %v, %v; want %d, %v, error %v", tt.amount, units, whole, err, tt.units, tt.whole, tt.err)
		}
	}
}

func TestShowInvalidAndUsage(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "version: '2.0'\nnope: 1\n")
	_, errOut, err := run(t, "show", bad)
	if exitCode(err) != 1 || !strings.Contains(errOut, "nope: unknown top-level key") {
		t.Errorf("show bad: exit %d, stderr %q", exitCode(err), errOut)
	}
	if _, _, err := run(t, "show"); exitCode(err) != 2 {
		t.Errorf("show without FILE: exit %d, want 2", exitCode(err))
	}
}
