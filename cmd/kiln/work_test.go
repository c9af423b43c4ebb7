package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/work/units"
)

// run runs the CLI with args and returns its standard output and exit status.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		return out.String() + errb.String() + err.Error(), exitStatus(err)
	}
	return out.String(), 0
}

func TestWorkVerifyExitStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "r")
	if out, code := run(t, "work", "render", "--width", "32", "--height", "24", "--frames", "1", "--tiles", "2", "--samples", "2", "--out", dir, "-o", "json"); code != 0 {
		t.Fatalf("render: %d %s", code, out)
	}
	out, code := run(t, "work", "verify", dir, "--samples", "4", "-o", "json")
	var rep units.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Verdict != "ok" || rep.Checked != 4 || rep.Failed == nil {
		t.Fatalf("verify honest: %d %s", code, out)
	}
	// A provider that forged a tile and rewrote units.json to match: fraud, exit 1.
	set, _ := units.Read(dir)
	delete(set, "f0001-r01-c01")
	set.Put(dir, "f0001-r01-c01", "tiles/x.png", []byte("not a tile"))
	set.Write(dir)
	out, code = run(t, "work", "verify", dir, "--samples", "4", "-o", "json")
	if code != 1 || !strings.Contains(out, `"verdict": "fraud"`) || !strings.Contains(out, `"f0001-r01-c01"`) {
		t.Fatalf("verify forged: %d %s", code, out)
	}
	// No job there: the check cannot be done, exit 2.
	if out, code := run(t, "work", "verify", t.TempDir()); code != 2 {
		t.Fatalf("verify empty dir: %d %s", code, out)
	}
	if out, code := run(t, "work", "render", "--frames", "5-2", "--out", t.TempDir()); code != 2 || !strings.Contains(out, "--frames") {
		t.Fatalf("render --frames 5-2: %d %s", code, out)
	}
	if out, code := run(t, "work", "train", "--steps", "10", "--checkpoint-every", "3", "--out", t.TempDir()); code != 2 || !strings.Contains(out, "divide") {
		t.Fatalf("train 10/3: %d %s", code, out)
	}
	if out, code := run(t, "work", "train", "--data", "mnist", "--out", t.TempDir()); code != 2 || !strings.Contains(out, "--data") {
		t.Fatalf("train --data mnist: %d %s", code, out)
	}
	if out, code := run(t, "work", "render", "--samples", "0", "--out", t.TempDir()); code != 2 || !strings.Contains(out, "samples") {
		t.Fatalf("render --samples 0: %d %s", code, out)
	}
	// A scene file that is not there: the command line is right, the operation fails (1).
	if out, code := run(t, "work", "render", "--scene", filepath.Join(t.TempDir(), "nope.blend"), "--out", t.TempDir()); code != 1 || !strings.Contains(out, "nope.blend") {
		t.Fatalf("render --scene missing: %d %s", code, out)
	}
}

func TestWorkTrainAndMatmulUnits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "t")
	out, code := run(t, "work", "train", "--steps", "40", "--checkpoint-every", "20", "--data", "generated", "--out", dir, "-o", "json")
	if code != 0 || !strings.Contains(out, `"units": 3`) || !strings.Contains(out, `"test_accuracy"`) {
		t.Fatalf("train: %d %s", code, out)
	}
	if out, code := run(t, "work", "verify", dir, "--samples", "3"); code != 0 || !strings.HasPrefix(out, "ok: train job") {
		t.Fatalf("verify train: %d %s", code, out)
	}
	mdir := filepath.Join(t.TempDir(), "m")
	if out, code := run(t, "work", "matmul", "--n", "40", "--dir", mdir); code != 0 || !strings.Contains(out, "matmul: 40 units") {
		t.Fatalf("matmul --dir: %d %s", code, out)
	}
	// The result-file form the demo uses still works.
	res := filepath.Join(t.TempDir(), "result.json")
	if out, code := run(t, "work", "matmul", "--n", "16", "--out", res); code != 0 {
		t.Fatalf("matmul --out: %d %s", code, out)
	}
	if b, _ := os.ReadFile(res); !strings.Contains(string(b), `"freivalds_verified": true`) {
		t.Fatalf("result.json: %s", b)
	}
}
