package sdl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func wantTEE(tee string) func(*testing.T, *Result) {
	return func(t *testing.T, r *Result) {
		if got := r.Groups[0].TEE; got != tee {
			t.Errorf("Groups[0].TEE = %q, want %q", got, tee)
		}
		svc := r.Manifest.Groups[0].Services[0]
		if svc.Params == nil || svc.Params.TEE != tee {
			t.Errorf("manifest service params = %+v, want tee %q", svc.Params, tee)
		}
	}
}

const teeGPU = "        gpu:\n          units: 1\n          attributes:\n" + anyNvidia

func TestTEERules(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "cpu", over: map[string]string{"svc": "    params:\n      tee: cpu"}, check: wantTEE(TEECPU)},
		{name: "cpu-gpu with a GPU", over: map[string]string{"svc": "    params:\n      tee: cpu-gpu", "gpu": teeGPU}, check: wantTEE(TEECPUGPU)},
		{name: "cpu-gpu without a GPU", over: map[string]string{"svc": "    params:\n      tee: cpu-gpu"}, want: "services.web.params.tee: cpu-gpu needs GPU resources"},
		{name: "cpu-gpu with gpu units 0", over: map[string]string{"svc": "    params:\n      tee: cpu-gpu", "gpu": "        gpu:\n          units: 0"}, want: "cpu-gpu needs GPU resources"},
		{name: "unknown type", over: map[string]string{"svc": "    params:\n      tee: sev"}, want: `services.web.params.tee: unknown TEE type; allowed: cpu`},
		{name: "not a string", over: map[string]string{"svc": "    params:\n      tee: [cpu]"}, want: "services.web.params.tee"},
		{name: "works in 2.0 and 2.1", over: map[string]string{"version": "2.1", "svc": "    params:\n      tee: cpu"}, check: wantTEE(TEECPU)},
		{name: "none", check: func(t *testing.T, r *Result) {
			if r.Groups[0].TEE != "" {
				t.Errorf("TEE = %q, want none", r.Groups[0].TEE)
			}
		}},
	})
}

// teeTwoServices is two services placed in one group, each with its own
// params.tee line (empty: none).
func teeTwoServices(a, b string) string {
	svc := func(name, tee string) string {
		s := "  " + name + ":\n    image: nginx:1.27\n    expose:\n      - port: 80\n        to:\n          - global: true\n"
		if tee != "" {
			s += "    params:\n      tee: " + tee + "\n"
		}
		return s
	}
	return `version: "2.0"
services:
` + svc("api", a) + svc("web", b) + `profiles:
  compute:
    small:
      resources:
        cpu:
          units: 1
        memory:
          size: 1Gi
        storage:
          size: 1Gi
  placement:
    dc:
      pricing:
        small:
          denom: uact
          amount: 1000
deployment:
  api:
    dc:
      profile: small
      count: 1
  web:
    dc:
      profile: small
      count: 1
`
}

func TestTEEOneTypePerGroup(t *testing.T) {
	tests := []struct {
		a, b, want string // want: "" accepted, else a substring of the error
		tee        string
	}{
		{"cpu", "cpu", "", TEECPU},
		{"", "", "", ""},
		{"cpu", "", "placement dc mixes TEE types: api asks for cpu, web for none", ""},
		{"", "cpu", "placement dc mixes TEE types: api asks for none, web for cpu", ""},
	}
	for _, tc := range tests {
		res, err := Parse([]byte(teeTwoServices(tc.a, tc.b)))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Parse(api %q, web %q) = %v, want accepted", tc.a, tc.b, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Parse(api %q, web %q) = %v, want error containing %q", tc.a, tc.b, err, tc.want)
		case tc.want == "" && res.Groups[0].TEE != tc.tee:
			t.Errorf("Parse(api %q, web %q) group TEE = %q, want %q", tc.a, tc.b, res.Groups[0].TEE, tc.tee)
		}
	}
}

func TestReclamation(t *testing.T) {
	top := func(s string) map[string]string { return map[string]string{"version": "2.1", "top": s} }
	runRules(t, []ruleCase{
		{name: "24h", over: top("reclamation:\n  min_window: 24h"), check: func(t *testing.T, r *Result) {
			if r.Reclamation == nil || r.Reclamation.MinWindowSeconds != 86400 || r.Reclamation.MinWindow != "24h" {
				t.Errorf("Reclamation = %+v, want 24h = 86400 s", r.Reclamation)
			}
		}},
		{name: "bounds inclusive 1h", over: top("reclamation:\n  min_window: 1h"), check: func(t *testing.T, r *Result) {
			if r.Reclamation == nil || r.Reclamation.MinWindowSeconds != 3600 {
				t.Errorf("Reclamation = %+v, want 3600 s", r.Reclamation)
			}
		}},
		{name: "bounds inclusive 720h", over: top("reclamation:\n  min_window: 720h")},
		{name: "below 1h", over: top("reclamation:\n  min_window: 10m"), want: "reclamation.min_window: must be between 1h0m0s and 720h0m0s"},
		{name: "above 720h", over: top("reclamation:\n  min_window: 1000h"), want: "must be between"},
		{name: "zero", over: top("reclamation:\n  min_window: 0s"), want: "must be a positive duration"},
		{name: "not a duration", over: top("reclamation:\n  min_window: tomorrow"), want: `must be a duration such as "24h"`},
		{name: "missing window", over: top("reclamation:\n  max_window: 24h"), want: "unknown reclamation field; allowed: min_window"},
		{name: "empty block", over: top("reclamation: {}"), want: "reclamation needs min_window"},
		{name: "needs 2.1", over: map[string]string{"top": "reclamation:\n  min_window: 24h"}, want: `reclamation requires version "2.1"`},
		{name: "absent", check: func(t *testing.T, r *Result) {
			if r.Reclamation != nil {
				t.Errorf("Reclamation = %+v, want nil", r.Reclamation)
			}
		}},
	})
}

// TestGolden2026 parses the SDL files of testdata/sdl2026 (the 2026
// additions: params.tee, reclamation, Console size spellings) and compares
// groups, manifest summary, warnings, errors and reclamation with their
// golden .json (rewrite with -update).
func TestGolden2026(t *testing.T) {
	files, _ := filepath.Glob("testdata/sdl2026/*.yaml")
	if len(files) == 0 {
		t.Fatal("no files in testdata/sdl2026")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, perr := Parse(data)
			out := struct {
				golden
				Reclamation *Reclamation `json:"reclamation,omitempty"`
			}{makeGolden(res, perr), res.Reclamation}
			got, _ := json.MarshalIndent(out, "", "  ")
			got = append(got, '\n')
			path := strings.TrimSuffix(f, ".yaml") + ".json"
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test ./sdl -run TestGolden2026 -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Parse(%s) differs from %s (rerun with -update and review the diff):\n%s", f, path, firstDiff(string(got), string(want)))
			}
		})
	}
}
