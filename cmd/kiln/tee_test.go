package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	sevdata "github.com/google/go-sev-guest/verify/testdata"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
)

// runKiln runs the CLI in-process and returns stdout and the exit status.
func runKiln(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return out.String(), 0
	}
	return out.String(), exitStatus(err)
}

// `kiln tee verify` exits 0 for the libraries' samples, 1 with a reason for a
// refused report, 2 for a file that holds no evidence.
func TestTEEVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	sev := filepath.Join(dir, "sev.bin")
	tdx := filepath.Join(dir, "tdx.dat")
	junk := filepath.Join(dir, "junk")
	col := filepath.Join(dir, "collateral")
	must(t, os.WriteFile(sev, sevdata.AttestationBytes[:1184], 0o644))
	must(t, os.WriteFile(tdx, tdxdata.RawQuote, 0o644))
	must(t, os.WriteFile(junk, []byte("not a report"), 0o644))
	must(t, os.MkdirAll(col, 0o755))
	must(t, os.WriteFile(filepath.Join(col, "vcek.der"), sevdata.VcekBytes, 0o644))

	tests := []struct {
		args   []string
		code   int
		reason string
	}{
		{[]string{"--report", sev, "--collateral", col, "--at", "2022-09-24T01:00:00Z", "--allow-debug"}, 0, ""},
		{[]string{"--report", sev, "--collateral", col, "--at", "2022-09-24T01:00:00Z"}, 1, "debug_policy"},
		{[]string{"--report", sev, "--collateral", col, "--at", "2099-01-01T00:00:00Z", "--allow-debug"}, 1, "stale"},
		{[]string{"--report", tdx, "--at", "2023-07-01T00:00:00Z"}, 0, ""},
		{[]string{"--report", tdx, "--at", "2023-07-01T00:00:00Z", "--report-data", "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}, 1, "report_data_mismatch"},
		{[]string{"--report", junk}, 2, ""},
		{[]string{"--report", filepath.Join(dir, "missing")}, 2, ""},
		{[]string{"--report", sev, "--collateral", filepath.Join(dir, "empty")}, 2, ""},
	}
	for _, tc := range tests {
		out, code := runKiln(t, append([]string{"tee", "verify", "-o", "json"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("kiln tee verify %v: exit %d, want %d\n%s", tc.args, code, tc.code, out)
			continue
		}
		if code == 2 {
			continue
		}
		var r struct {
			Valid  bool   `json:"valid"`
			Type   string `json:"type"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("kiln tee verify %v: output is not JSON: %v\n%s", tc.args, err, out)
		}
		if r.Valid != (tc.code == 0) || r.Reason != tc.reason || r.Type == "" {
			t.Errorf("kiln tee verify %v = %+v, want valid %v reason %q", tc.args, r, tc.code == 0, tc.reason)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
