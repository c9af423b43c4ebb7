package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/work/units"
)

func smallParams(engine string) Params {
	return Params{Engine: engine, Steps: 60, Every: 20, Seed: 5, Hidden: 16, Batch: 16, LR: 0.1, TrainRows: 1500}
}

func mustRun(tb testing.TB, p Params, source string) (string, units.Job) {
	tb.Helper()
	dir := tb.TempDir()
	job, err := NewJob(p, source, dir)
	if err != nil {
		tb.Fatal(err)
	}
	if err := (Workload{}).Run(context.Background(), job, dir, nil); err != nil {
		tb.Fatal(err)
	}
	job, err = units.ReadJob(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return dir, job
}

// checkChainAndReplay checks the hash chain of a finished job, that replaying every
// segment (one by one, or all at once through RunUnits) gives its checkpoint, and that
// each cheat on cheatUnit is caught.
func checkChainAndReplay(t *testing.T, dir string, job units.Job, cheatUnit string, batch bool) {
	t.Helper()
	p, _ := params(job)
	set, err := units.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != p.Steps/p.Every+1 {
		t.Fatalf("%d units, want %d", len(set), p.Steps/p.Every+1)
	}
	w := Workload{}
	prev := ZeroPrev
	inputs := map[string][]byte{}
	for s := 0; s <= p.Steps; s += p.Every {
		id := UnitID(s)
		b, err := set.Load(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		c, err := DecodeCheckpoint(b)
		if err != nil {
			t.Fatal(err)
		}
		if c.Step != s || c.Prev != prev {
			t.Fatalf("%s: step %d prev %s, want step %d prev %s", id, c.Step, c.Prev, s, prev)
		}
		prev = Hash(b)
		inputs[id] = b
	}
	replayed := map[string][]byte{}
	if batch {
		if replayed, err = w.RunUnits(context.Background(), job, set.IDs(), inputs); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, id := range set.IDs() {
			if replayed[id], err = w.RunUnit(context.Background(), job, id, inputs); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range set.IDs() {
		c, _ := DecodeCheckpoint(inputs[id])
		ac, err := DecodeCheckpoint(replayed[id])
		if err != nil {
			t.Fatalf("replay of %s: %v", id, err)
		}
		for i := range c.Tensors {
			if d := MaxDiff(c.Tensors[i].Data, ac.Tensors[i].Data); d != 0 {
				t.Logf("%s: replay of %s differs by %g", id, c.Tensors[i].Name, d)
			}
		}
		if err := w.Compare(job, id, inputs[id], replayed[id]); err != nil {
			t.Fatalf("Compare(honest %s) = %v", id, err)
		}
	}
	recomputed := replayed[cheatUnit]
	hc, _ := DecodeCheckpoint(inputs[cheatUnit])
	for _, c := range Cheats {
		t.Run(string(c), func(t *testing.T) {
			forged, err := w.Forge(context.Background(), job, cheatUnit, inputs, c)
			if err != nil {
				t.Fatal(err)
			}
			fc, err := DecodeCheckpoint(forged)
			if err != nil || fc.Step != hc.Step || fc.Prev != hc.Prev {
				t.Fatalf("forged checkpoint is not a well-chained one: %+v %v", fc, err)
			}
			err = w.Compare(job, cheatUnit, forged, recomputed)
			if !units.IsMismatch(err) {
				t.Fatalf("Compare(%s) = %v, want a mismatch", c, err)
			}
			t.Logf("%s: %v", c, err)
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestGoTrainer(t *testing.T) {
	dir, job := mustRun(t, smallParams(EngineGo), DataGenerated)
	checkChainAndReplay(t, dir, job, UnitID(40), false)
	var m Metrics
	b, _ := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err := json.Unmarshal(b, &m); err != nil || m.Checkpoints != 4 {
		t.Fatalf("metrics: %s %v", b, err)
	}
	// Same job, same bits: the run is deterministic end to end.
	dir2, _ := mustRun(t, smallParams(EngineGo), DataGenerated)
	r1, _ := units.Root(dir)
	r2, _ := units.Root(dir2)
	if r1 != r2 {
		t.Fatalf("two runs of one job: roots %x and %x", r1, r2)
	}
}

func TestGoTrainerLearns(t *testing.T) {
	p := DefaultParams()
	p.Steps, p.Every = 600, 200
	dir, _ := mustRun(t, p, DataAuto)
	var m Metrics
	b, _ := os.ReadFile(filepath.Join(dir, "metrics.json"))
	json.Unmarshal(b, &m)
	// Chance is 10%; 600 steps of SGD get well past 80% on either dataset.
	if m.TestAccuracy < 0.8 {
		t.Fatalf("test accuracy %.3f after %d steps on %s data, want >= 0.8", m.TestAccuracy, p.Steps, m.Source)
	}
	t.Logf("%s data: test accuracy %.3f", m.Source, m.TestAccuracy)
}

func TestVerifyCatchesForgedSegment(t *testing.T) {
	dir, job := mustRun(t, smallParams(EngineGo), DataGenerated)
	reg := units.NewRegistry(Workload{})
	rep, err := reg.Verify(context.Background(), dir, 4, []byte("s"), nil)
	if err != nil || rep.Verdict != units.VerdictOK || rep.Checked != 4 {
		t.Fatalf("honest: %+v %v", rep, err)
	}
	set, _ := units.Read(dir)
	in := map[string][]byte{UnitID(20): must(set.Load(dir, UnitID(20)))}
	forged, err := Workload{}.Forge(context.Background(), job, UnitID(40), in, CheatSkippedSteps)
	if err != nil {
		t.Fatal(err)
	}
	delete(set, UnitID(40))
	set.Put(dir, UnitID(40), "ckpt/forged.kckpt", forged)
	set.Write(dir)
	rep, err = reg.Verify(context.Background(), dir, 4, []byte("s"), nil)
	// The forged checkpoint fails its own replay, and the next segment, whose input it
	// is, no longer chains to it.
	if err != nil || rep.Verdict != units.VerdictFraud || fmt.Sprint(rep.Failed) != "[ckpt-000040 ckpt-000060]" {
		t.Fatalf("forged segment: %+v %v", rep, err)
	}
}

// A committed checkpoint that does not parse, or is not the job's model at the step
// before a segment, makes the segment that starts from it fraud: its hash is what the
// provider committed, so no honest run leads to the next one. A verifier reports it
// rather than failing to re-execute (and being slashed for silence).
func TestMalformedCommittedInputIsFraud(t *testing.T) {
	for _, engine := range []string{EngineGo, EnginePyTorch} {
		t.Run(engine, func(t *testing.T) {
			if engine == EnginePyTorch {
				torchOrSkip(t)
			}
			p := smallParams(engine)
			dir, _ := mustRun(t, p, DataGenerated)
			set, _ := units.Read(dir)
			honest := must(set.Load(dir, UnitID(20)))
			q := p
			q.Hidden = 8
			otherDir, _ := mustRun(t, q, DataGenerated)
			otherSet, _ := units.Read(otherDir)
			reg := units.NewRegistry(Workload{})
			for _, tt := range []struct {
				name string
				data []byte
				why  string
			}{
				{"not a checkpoint", []byte("KILNCKPT1 garbage"), "is not a checkpoint"},
				{"truncated", honest[:len(honest)-4], "is not a checkpoint"},
				{"the step before", must(set.Load(dir, UnitID(0))), "is at step 0, want 20"},
				{"another model", must(otherSet.Load(otherDir, UnitID(20))), "hidden units"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					work := t.TempDir()
					s2 := units.Set{}
					for _, id := range set.IDs() {
						b := must(set.Load(dir, id))
						if id == UnitID(20) {
							b = tt.data
						}
						if err := s2.Put(work, id, set[id].File, b); err != nil {
							t.Fatal(err)
						}
					}
					s2.Write(work)
					jb, _ := os.ReadFile(filepath.Join(dir, units.JobFile))
					os.WriteFile(filepath.Join(work, units.JobFile), jb, 0o644)
					for name := range must(units.ReadJob(dir)).Assets {
						b, _ := os.ReadFile(filepath.Join(dir, name))
						os.WriteFile(filepath.Join(work, name), b, 0o644)
					}
					rep, err := reg.Verify(context.Background(), work, 4, []byte("s"), nil)
					if err != nil {
						t.Fatalf("Verify() error %v, want a fraud verdict", err)
					}
					if rep.Verdict != units.VerdictFraud || !slices.Contains(rep.Failed, UnitID(40)) || !strings.Contains(rep.Reasons[UnitID(40)], tt.why) {
						t.Fatalf("Verify() = %+v, want %s failed: %q", rep, UnitID(40), tt.why)
					}
					if slices.Contains(rep.Failed, UnitID(60)) {
						t.Fatalf("Verify() failed %s too, whose input is honest: %+v", UnitID(60), rep)
					}
				})
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	base := smallParams(EngineGo)
	base.Source = DataGenerated
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mod  func(*Params)
		want string
	}{
		{func(p *Params) { p.Engine = "jax" }, "engine"},
		{func(p *Params) { p.Source = "mnist" }, "source"},
		{func(p *Params) { p.Steps = 0 }, "steps"},
		{func(p *Params) { p.Every = 7 }, "divide"},
		{func(p *Params) { p.Hidden = 0 }, "hidden"},
		{func(p *Params) { p.Batch = 0 }, "batch"},
		{func(p *Params) { p.LR = -1 }, "lr"},
		{func(p *Params) { p.TrainRows = 0 }, "train_rows"},
	} {
		p := base
		tt.mod(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", p, err, tt.want)
		}
	}
	for _, id := range []string{"ckpt-000010", "ckpt-000080", "ckpt-20", "x"} {
		if _, err := base.StepOf(id); err == nil {
			t.Errorf("StepOf(%q) accepted", id)
		}
	}
}

func TestParseData(t *testing.T) {
	good := Generate(1)
	d, err := ParseData(good)
	if err != nil || len(d.Y) != 1797 {
		t.Fatalf("generated data: %v rows, %v", len(d.Y), err)
	}
	for name, bad := range map[string]string{
		"short line": "1,2,3\n",
		"pixel 17":   strings.Repeat("0,", 63) + "17,3\n",
		"label 10":   strings.Repeat("0,", 64) + "10\n",
		"not number": strings.Repeat("x,", 64) + "1\n",
		"too few":    strings.Repeat("0,", 64) + "1\n",
	} {
		if _, err := ParseData([]byte(bad)); err == nil {
			t.Errorf("ParseData(%s) accepted", name)
		}
	}
}

func TestCheckpointCodec(t *testing.T) {
	m := newMLP(4, 1)
	b, err := m.checkpoint(0, ZeroPrev, EngineGo).Encode()
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := c.Encode()
	if !bytes.Equal(b, again) {
		t.Fatal("decode/encode is not the identity")
	}
	for name, bad := range map[string][]byte{
		"no magic":   b[1:],
		"truncated":  b[:len(b)-1],
		"extra":      append(append([]byte(nil), b...), 0),
		"step0 prev": bytes.Replace(b, []byte(`"prev":"`+ZeroPrev), []byte(`"prev":"`+strings.Repeat("1", 64)), 1),
		"unknown":    bytes.Replace(b, []byte(`"step":0`), []byte(`"step":0,"x":1`), 1),
		"negative":   bytes.Replace(b, []byte(`"step":0`), []byte(`"step":-1`), 1),
	} {
		if _, err := DecodeCheckpoint(bad); err == nil {
			t.Errorf("DecodeCheckpoint(%s) accepted", name)
		}
	}
	nan := append([]byte(nil), b...)
	copy(nan[len(nan)-4:], []byte{0, 0, 0xc0, 0x7f})
	if _, err := DecodeCheckpoint(nan); err == nil {
		t.Error("DecodeCheckpoint accepted a NaN")
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	b, _ := newMLP(2, 1).checkpoint(0, ZeroPrev, EngineGo).Encode()
	f.Add(b)
	f.Add([]byte(Magic + `{"step":1,"prev":"` + ZeroPrev + `","engine":"go","tensors":[{"name":"a","shape":[1]}]}` + "\n\x00\x00\x80\x3f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCheckpoint(data)
		if err != nil {
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatalf("a decoded checkpoint does not encode: %v", err)
		}
		if _, err := DecodeCheckpoint(again); err != nil {
			t.Fatalf("re-encoded checkpoint does not decode: %v", err)
		}
	})
}

func FuzzParseData(f *testing.F) {
	f.Add(Generate(1)[:2000])
	f.Add([]byte(strings.Repeat("16,", 64) + "9\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseData(data)
		if err != nil {
			return
		}
		for i := range d.Y {
			if d.Y[i] < 0 || d.Y[i] > 9 {
				t.Fatalf("label %d", d.Y[i])
			}
			for _, v := range d.X[i] {
				if v < 0 || v > 1 {
					t.Fatalf("pixel %v", v)
				}
			}
		}
	})
}

// torchOrSkip skips where Debian's python3-torch is absent.
func torchOrSkip(t *testing.T) {
	t.Helper()
	if _, err := (Workload{}).TorchPython(context.Background()); err != nil {
		t.Skipf("PyTorch tests skipped: %v (.ci/run installs python3-torch)", err)
	}
	if testing.Short() {
		t.Skip("-short: PyTorch runs skipped")
	}
}

func TestPyTorch(t *testing.T) {
	torchOrSkip(t)
	p := smallParams(EnginePyTorch)
	dir, job := mustRun(t, p, DataAuto)
	// Every segment replayed in one python process (RunUnits), as a verifier does.
	checkChainAndReplay(t, dir, job, UnitID(40), true)
	// The helper is importable by a user's own script: it writes the same format.
	py, _ := (Workload{}).TorchPython(context.Background())
	script := `import torch, kiln_ckpt
m = torch.nn.Linear(3, 2)
kiln_ckpt.save(m, 0)
kiln_ckpt.save(m, 5)
`
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "kiln_ckpt.py"), HelperScript(), 0o644)
	cmd := exec.Command(py, "-B", "-c", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "KILN_CKPT_DIR="+filepath.Join(work, "ck"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user script: %v: %s", err, out)
	}
	b0, _ := os.ReadFile(filepath.Join(work, "ck", "step-000000.kckpt"))
	b5, _ := os.ReadFile(filepath.Join(work, "ck", "step-000005.kckpt"))
	c5, err := DecodeCheckpoint(b5)
	if err != nil || c5.Prev != Hash(b0) || c5.Tensor("weight") == nil || c5.Engine != EnginePyTorch {
		t.Fatalf("helper's checkpoint: %+v %v", c5, err)
	}
}
