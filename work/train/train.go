// Package train is Kiln's training workload: a small MLP trained on 8×8 digits with
// checkpoints every k steps forming a hash chain (proof of learning), by a Go trainer in
// the binary or by PyTorch (Debian python3-torch) through the kiln_ckpt helper.
//
// Units: "ckpt-000000" is the initial checkpoint (from the seed); "ckpt-S" for S = k, 2k,
// ... is the checkpoint after step S, whose header carries the SHA-256 of the checkpoint
// before it. A verifier replays unit ckpt-S from unit ckpt-(S-k) (Inputs names it): it
// re-runs k SGD steps with the same minibatches (drawn from the seed and the step number
// alone) and compares.
//
// Tolerance policy (Compare): step and prev must be equal (the chain is exact), the
// tensors must have the same names and shapes, and
//   - Go engine: bit-exact (every product rounded explicitly, no FMA fusion; same GOARCH);
//   - PyTorch engine: torch.use_deterministic_algorithms(True) and one thread make a
//     replay on the same build bit-exact (measured here, torch 1.13 CPU: max difference
//     0); across CPUs or builds (other SIMD kernels) float32 sums may round differently,
//     so the policy allows a max absolute difference per value of PyTorchTolerance
//     (1e-5). One SGD step of this model moves weights by about 1e-3 and the cheats move
//     them by 1e-2 or more (measured in the tests), far outside it.
//
// The cheats it catches: a segment that skipped steps, trained on less data, or whose
// weights were perturbed (Forge makes each).
package train

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kiln-network/kiln/work/units"
)

// Kind is the job kind of training jobs.
const Kind = "train"

// Engines.
const (
	EngineGo      = "go"
	EnginePyTorch = "pytorch"
)

// PyTorchTolerance is the largest difference per weight Compare allows a PyTorch replay.
const PyTorchTolerance = 1e-5

// Asset names in the job directory.
const (
	DataAsset   = "digits.csv"
	ScriptAsset = "train_digits.py"
	HelperAsset = "kiln_ckpt.py"
)

//go:embed scripts/train_digits.py
var trainScript []byte

//go:embed scripts/kiln_ckpt.py
var helperScript []byte

// HelperScript is kiln_ckpt.py, the module a PyTorch training script calls.
func HelperScript() []byte { return append([]byte(nil), helperScript...) }

// Params are a training job's parameters (job.json "params").
type Params struct {
	Engine    string  `json:"engine"`
	Source    string  `json:"source"` // where the data came from: digits or generated
	Steps     int     `json:"steps"`
	Every     int     `json:"checkpoint_every"`
	Seed      int64   `json:"seed"`
	Hidden    int     `json:"hidden"`
	Batch     int     `json:"batch"`
	LR        float64 `json:"lr"`
	TrainRows int     `json:"train_rows"` // the first TrainRows rows train; the rest test
}

// DefaultParams is the reference run: 2,000 steps, a checkpoint every 20 (100 segments,
// each 1% of the job, so a sampled replay is cheap).
func DefaultParams() Params {
	return Params{Engine: EngineGo, Steps: 2000, Every: 20, Seed: 1, Hidden: 32, Batch: 32, LR: 0.1, TrainRows: 1500}
}

// Validate says what is wrong with p, naming the field.
func (p Params) Validate() error {
	switch {
	case p.Engine != EngineGo && p.Engine != EnginePyTorch:
		return fmt.Errorf("train engine: must be %q or %q (got %q)", EngineGo, EnginePyTorch, p.Engine)
	case p.Source != DataDigits && p.Source != DataGenerated:
		return fmt.Errorf("train source: must be %q or %q (got %q)", DataDigits, DataGenerated, p.Source)
	case p.Steps < 1 || p.Steps > 999999:
		return fmt.Errorf("train steps: %d, must be 1 to 999999", p.Steps)
	case p.Every < 1 || p.Steps%p.Every != 0:
		return fmt.Errorf("train checkpoint-every: %d, must be at least 1 and divide steps (%d)", p.Every, p.Steps)
	case p.Hidden < 1 || p.Hidden > 4096:
		return fmt.Errorf("train hidden: %d, must be 1 to 4096", p.Hidden)
	case p.Batch < 1 || p.Batch > 65536:
		return fmt.Errorf("train batch: %d, must be 1 to 65536", p.Batch)
	case !(p.LR > 0 && p.LR <= 10):
		return fmt.Errorf("train lr: %v, must be in (0, 10]", p.LR)
	case p.TrainRows < 1:
		return fmt.Errorf("train train_rows: %d, must be at least 1", p.TrainRows)
	}
	return nil
}

// UnitID is the unit of the checkpoint after step.
func UnitID(step int) string { return fmt.Sprintf("ckpt-%06d", step) }

func unitFile(step int) string { return fmt.Sprintf("step-%06d.kckpt", step) }

var unitRE = regexp.MustCompile(`^ckpt-(\d{6})$`)

// StepOf returns the step of unit id in a job of p.
func (p Params) StepOf(id string) (int, error) {
	m := unitRE.FindStringSubmatch(id)
	if m == nil {
		return 0, fmt.Errorf("train unit %q: not a checkpoint id (ckpt-NNNNNN)", id)
	}
	s, _ := strconv.Atoi(m[1])
	if s > p.Steps || s%p.Every != 0 {
		return 0, fmt.Errorf("train unit %q: no checkpoint at step %d (every %d to %d)", id, s, p.Every, p.Steps)
	}
	return s, nil
}

// Workload is the training workload (units.Workload). Python is the python3 with torch
// for the PyTorch engine ("" tries python3, then /usr/bin/python3).
type Workload struct {
	Python string
}

var _ units.Workload = Workload{}

// Kind implements units.Workload.
func (Workload) Kind() string { return Kind }

// NewJob returns the job of p with its data (source: DataAuto, DataDigits or
// DataGenerated) and, for PyTorch, the training script and helper pinned in out.
func NewJob(p Params, source, out string) (units.Job, error) {
	data, got, err := LoadData(source, p.Seed)
	if err != nil {
		return units.Job{}, err
	}
	d, err := ParseData(data)
	if err != nil {
		return units.Job{}, err
	}
	p.Source = got
	if p.TrainRows > len(d.Y) {
		p.TrainRows = len(d.Y)
	}
	if err := p.Validate(); err != nil {
		return units.Job{}, err
	}
	job, err := units.NewJob(Kind, p)
	if err != nil {
		return units.Job{}, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return units.Job{}, fmt.Errorf("train: %w", err)
	}
	tmp, err := os.MkdirTemp("", "kiln-train-")
	if err != nil {
		return units.Job{}, fmt.Errorf("train: %w", err)
	}
	defer os.RemoveAll(tmp)
	assets := map[string][]byte{DataAsset: data}
	if p.Engine == EnginePyTorch {
		assets[ScriptAsset], assets[HelperAsset] = trainScript, helperScript
	}
	for _, name := range []string{DataAsset, ScriptAsset, HelperAsset} {
		b, ok := assets[name]
		if !ok {
			continue
		}
		src := filepath.Join(tmp, filepath.Base(name))
		if err := os.WriteFile(src, b, 0o644); err != nil {
			return units.Job{}, fmt.Errorf("train: %w", err)
		}
		if err := job.AddAsset(out, name, src); err != nil {
			return units.Job{}, err
		}
	}
	return job, nil
}

func params(job units.Job) (Params, error) {
	if job.Kind != Kind {
		return Params{}, fmt.Errorf("train: job kind %q", job.Kind)
	}
	var p Params
	if err := job.DecodeParams(&p); err != nil {
		return Params{}, err
	}
	return p, p.Validate()
}

// datasets caches parsed datasets by their pinned SHA-256: a verifier replays many
// segments of one job, and parsing the CSV each time would cost more than a short
// segment's training. Read-only once stored.
var datasets sync.Map

func loadData(job units.Job) (*Dataset, error) {
	path, err := job.AssetPath(DataAsset)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	// NB: AssetPath checked the file against the pinned hash, so the hash names it.
	sum := job.Assets[DataAsset]
	if d, ok := datasets.Load(sum); ok {
		return d.(*Dataset), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if units.Sum(b) != sum {
		return nil, fmt.Errorf("train: data asset changed while read: %w", units.ErrHashMismatch)
	}
	d, err := ParseData(b)
	if err != nil {
		return nil, err
	}
	datasets.Store(sum, d)
	return d, nil
}

// Metrics is DIR/metrics.json: how the run went (not a unit; it follows from the last
// checkpoint).
type Metrics struct {
	Engine       string    `json:"engine"`
	Source       string    `json:"source"`
	Steps        int       `json:"steps"`
	Checkpoints  int       `json:"checkpoints"`
	TestRows     int       `json:"test_rows"`
	TestAccuracy float64   `json:"test_accuracy"`
	Losses       []float64 `json:"losses,omitempty"` // batch loss at each checkpoint after step 0
}

// Run trains, writing the checkpoints, units.json, job.json and metrics.json under out.
func (w Workload) Run(ctx context.Context, job units.Job, out string, progress units.Progress) error {
	p, err := params(job)
	if err != nil {
		return err
	}
	job = job.WithDir(out)
	d, err := loadData(job)
	if err != nil {
		return err
	}
	if p.TrainRows > len(d.Y) {
		return fmt.Errorf("train train_rows: %d, the data has %d rows", p.TrainRows, len(d.Y))
	}
	total := p.Steps/p.Every + 1
	set := units.Set{}
	var losses []float64
	var last []byte
	put := func(step int, b []byte) error {
		if err := set.Put(out, UnitID(step), unitFile(step), b); err != nil {
			return err
		}
		last = b
		if progress != nil {
			progress(len(set), total, fmt.Sprintf("step %d of %d", step, p.Steps))
		}
		return nil
	}
	switch p.Engine {
	case EngineGo:
		m := newMLP(p.Hidden, p.Seed)
		b, err := m.checkpoint(0, ZeroPrev, EngineGo).Encode()
		if err != nil {
			return err
		}
		if err := put(0, b); err != nil {
			return err
		}
		for s := 1; s <= p.Steps; s++ {
			if s%256 == 0 && ctx.Err() != nil {
				return fmt.Errorf("train: %w", ctx.Err())
			}
			loss := m.step(d, batch(p, s, p.TrainRows), float32(p.LR))
			if s%p.Every == 0 {
				b, err = m.checkpoint(s, Hash(last), EngineGo).Encode()
				if err != nil {
					return err
				}
				if err := put(s, b); err != nil {
					return err
				}
				losses = append(losses, float64(loss))
			}
		}
	case EnginePyTorch:
		tmp, err := os.MkdirTemp("", "kiln-torch-")
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		defer os.RemoveAll(tmp)
		err = w.python(ctx, job, p, tmp, p.TrainRows, []string{"--steps", strconv.Itoa(p.Steps), "--every", strconv.Itoa(p.Every)}, func(step int, file string, loss float64) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("train: %w", err)
			}
			c, err := DecodeCheckpoint(b)
			if err != nil {
				return fmt.Errorf("train: pytorch checkpoint at step %d: %w", step, err)
			}
			want := ZeroPrev
			if step > 0 {
				want = Hash(last)
			}
			if c.Step != step || c.Prev != want {
				return fmt.Errorf("train: pytorch checkpoint at step %d breaks the chain (step %d, prev %s)", step, c.Step, c.Prev)
			}
			if step > 0 {
				losses = append(losses, loss)
			}
			return put(step, b)
		})
		if err != nil {
			return err
		}
	}
	if len(set) != total {
		return fmt.Errorf("train: %d checkpoints written, want %d", len(set), total)
	}
	c, err := DecodeCheckpoint(last)
	if err != nil {
		return err
	}
	m, err := MLPFromCheckpoint(c)
	if err != nil {
		return err
	}
	met := Metrics{Engine: p.Engine, Source: p.Source, Steps: p.Steps, Checkpoints: total, TestRows: len(d.Y) - p.TrainRows,
		TestAccuracy: m.Accuracy(d, p.TrainRows, len(d.Y)), Losses: losses}
	mb, _ := json.MarshalIndent(met, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "metrics.json"), append(mb, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := job.Write(out); err != nil {
		return err
	}
	return set.Write(out)
}

// batch returns the minibatch of step s: Batch rows of the first rows, drawn from (seed,
// s) alone so any segment can be replayed on its own.
func batch(p Params, s, rows int) []int {
	r := splitmix{uint64(p.Seed)*0x9e3779b97f4a7c15 ^ uint64(s)}
	idx := make([]int, p.Batch)
	for i := range idx {
		idx[i] = int(r.next() % uint64(rows))
	}
	return idx
}

// Inputs implements units.Workload: checkpoint S replays from checkpoint S-k.
func (Workload) Inputs(job units.Job, id string) ([]string, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	s, err := p.StepOf(id)
	if err != nil {
		return nil, err
	}
	if s == 0 {
		return nil, nil
	}
	return []string{UnitID(s - p.Every)}, nil
}

// RunUnit replays the segment ending at unit id from its input checkpoint (or, for step
// 0, initialises the model from the seed) and returns the checkpoint it gives.
func (w Workload) RunUnit(ctx context.Context, job units.Job, id string, inputs map[string][]byte) ([]byte, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	s, err := p.StepOf(id)
	if err != nil {
		return nil, err
	}
	var in []byte
	if s > 0 {
		var ok bool
		if in, ok = inputs[UnitID(s-p.Every)]; !ok {
			return nil, fmt.Errorf("train unit %s: needs input %s", id, UnitID(s-p.Every))
		}
	}
	return w.segment(ctx, job, p, in, s, p.TrainRows, s)
}

// segment trains from checkpoint in (nil: the initial weights) to step to with the first
// rows rows, and returns the checkpoint labelled step label.
func (w Workload) segment(ctx context.Context, job units.Job, p Params, in []byte, to, rows, label int) ([]byte, error) {
	from := 0
	prev := ZeroPrev
	var start *Checkpoint
	if in != nil {
		c, err := DecodeCheckpoint(in)
		if err != nil {
			return nil, fmt.Errorf("train: input checkpoint: %w", err)
		}
		if c.Step >= to {
			return nil, fmt.Errorf("train: input checkpoint is at step %d, not before %d", c.Step, to)
		}
		from, prev, start = c.Step, Hash(in), c
	}
	switch p.Engine {
	case EngineGo:
		d, err := loadData(job)
		if err != nil {
			return nil, err
		}
		m := newMLP(p.Hidden, p.Seed)
		if start != nil {
			if m, err = MLPFromCheckpoint(start); err != nil {
				return nil, err
			}
			m = &MLP{Hidden: m.Hidden, W1: clone(m.W1), B1: clone(m.B1), W2: clone(m.W2), B2: clone(m.B2)}
		}
		if rows > len(d.Y) {
			return nil, fmt.Errorf("train: %d rows, the data has %d", rows, len(d.Y))
		}
		for s := from + 1; s <= to; s++ {
			m.step(d, batch(p, s, rows), float32(p.LR))
		}
		return m.checkpoint(label, prev, EngineGo).Encode()
	default:
		tmp, err := os.MkdirTemp("", "kiln-torch-")
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		defer os.RemoveAll(tmp)
		extra := []string{"--steps", strconv.Itoa(to), "--every", strconv.Itoa(max(1, to-from))}
		if in != nil {
			resume := filepath.Join(tmp, "in.kckpt")
			if err := os.WriteFile(resume, in, 0o644); err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
			extra = append(extra, "--resume", resume)
		}
		var outFile string
		err = w.python(ctx, job, p, filepath.Join(tmp, "out"), rows, extra, func(step int, file string, _ float64) error {
			if step == to {
				outFile = file
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if outFile == "" {
			return nil, fmt.Errorf("train: pytorch wrote no checkpoint at step %d", to)
		}
		b, err := os.ReadFile(outFile)
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		if label == to {
			return b, nil
		}
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return nil, err
		}
		c.Step = label
		return c.Encode()
	}
}

// RunUnits replays several segments: for PyTorch in one python process (units.Batcher),
// so a verifier pays torch's import once per check, not once per unit.
func (w Workload) RunUnits(ctx context.Context, job units.Job, ids []string, inputs map[string][]byte) (map[string][]byte, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	if p.Engine == EngineGo {
		for _, id := range ids {
			if out[id], err = w.RunUnit(ctx, job, id, inputs); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	tmp, err := os.MkdirTemp("", "kiln-torch-")
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer os.RemoveAll(tmp)
	type replay struct {
		Resume string `json:"resume"`
		To     int    `json:"to"`
	}
	var plan []replay
	steps := map[int]string{}
	for _, id := range ids {
		s, err := p.StepOf(id)
		if err != nil {
			return nil, err
		}
		r := replay{To: s}
		if s > 0 {
			in, ok := inputs[UnitID(s-p.Every)]
			if !ok {
				return nil, fmt.Errorf("train unit %s: needs input %s", id, UnitID(s-p.Every))
			}
			c, err := DecodeCheckpoint(in)
			if err != nil {
				return nil, fmt.Errorf("train: input checkpoint of %s: %w", id, err)
			}
			if c.Step != s-p.Every {
				return nil, fmt.Errorf("train: input checkpoint of %s is at step %d, want %d", id, c.Step, s-p.Every)
			}
			r.Resume = filepath.Join(tmp, "in-"+UnitID(s-p.Every)+".kckpt")
			if err := os.WriteFile(r.Resume, in, 0o644); err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
		}
		plan = append(plan, r)
		steps[s] = id
	}
	pj, _ := json.Marshal(plan)
	err = w.python(ctx, job, p, filepath.Join(tmp, "out"), p.TrainRows, []string{"--replay", string(pj)}, func(step int, file string, _ float64) error {
		id, ok := steps[step]
		if !ok {
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		out[id] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("train: pytorch replay wrote no checkpoint for %s", id)
		}
	}
	return out, nil
}

var _ units.Batcher = Workload{}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }

// pythons caches which interpreter has torch, per candidate list.
var pythons sync.Map

// probeTorch finds torch and numpy without importing them (importing torch costs seconds).
const probeTorch = `import importlib.util, sys
missing = [m for m in ("torch", "numpy") if importlib.util.find_spec(m) is None]
sys.exit("no module " + ", ".join(missing) if missing else 0)`

// pythonPath returns a python3 that has torch.
func (w Workload) pythonPath(ctx context.Context) (string, error) {
	cands := []string{"python3", "/usr/bin/python3"}
	if w.Python != "" {
		cands = []string{w.Python}
	}
	key := strings.Join(cands, "\x00")
	if p, ok := pythons.Load(key); ok {
		return p.(string), nil
	}
	var tried []string
	for _, c := range cands {
		bin, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, c+": not found")
			continue
		}
		if out, err := exec.CommandContext(ctx, bin, "-c", probeTorch).CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %s", bin, lastLine(out)))
			continue
		}
		pythons.Store(key, bin)
		return bin, nil
	}
	return "", fmt.Errorf("train: no python3 with torch (install Debian's python3-torch): %s", strings.Join(tried, "; "))
}

// python runs the job's training script with extra arguments (--steps/--every/--resume or
// --replay) on the first rows rows, checkpointing into dir, calling onCkpt for each
// checkpoint written.
func (w Workload) python(ctx context.Context, job units.Job, p Params, dir string, rows int, extra []string, onCkpt func(step int, file string, loss float64) error) error {
	bin, err := w.pythonPath(ctx)
	if err != nil {
		return err
	}
	script, err := job.AssetPath(ScriptAsset)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if _, err := job.AssetPath(HelperAsset); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	data, err := job.AssetPath(DataAsset)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	args := []string{"-B", script, "--data", data,
		"--seed", strconv.FormatInt(p.Seed, 10), "--hidden", strconv.Itoa(p.Hidden), "--batch", strconv.Itoa(p.Batch),
		"--lr", strconv.FormatFloat(p.LR, 'g', -1, 64), "--train-rows", strconv.Itoa(rows)}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KILN_CKPT_DIR="+dir, "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("train: start python: %w", err)
	}
	sc := bufio.NewScanner(stdout)
	var cbErr error
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "KILN_CKPT ")
		if !ok || cbErr != nil {
			continue
		}
		var ev struct {
			Step int     `json:"step"`
			File string  `json:"file"`
			Loss float64 `json:"loss"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			cbErr = fmt.Errorf("train: python said %q: %w", line, err)
			continue
		}
		cbErr = onCkpt(ev.Step, ev.File, ev.Loss)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("train: python %s: %w: %s", filepath.Base(script), err, lastLines(stderr.Bytes(), 12))
	}
	return cbErr
}

func lastLine(b []byte) string { return lastLines(b, 1) }

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// Compare implements units.Workload with the package's tolerance policy.
func (Workload) Compare(job units.Job, id string, claimed, recomputed []byte) error {
	p, err := params(job)
	if err != nil {
		return err
	}
	want, err := DecodeCheckpoint(recomputed)
	if err != nil {
		return fmt.Errorf("train: recomputed %s: %w", id, err)
	}
	got, err := DecodeCheckpoint(claimed)
	if err != nil {
		return units.Mismatch(id, "claimed checkpoint: %v", err)
	}
	if got.Step != want.Step {
		return units.Mismatch(id, "claimed checkpoint is at step %d, the segment ends at %d", got.Step, want.Step)
	}
	if got.Prev != want.Prev {
		return units.Mismatch(id, "claimed checkpoint chains to %s, the segment starts from %s", got.Prev, want.Prev)
	}
	if got.Engine != p.Engine {
		return units.Mismatch(id, "claimed checkpoint is from engine %s, the job's is %s", got.Engine, p.Engine)
	}
	if len(got.Tensors) != len(want.Tensors) {
		return units.Mismatch(id, "claimed checkpoint has %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	tol := 0.0
	if p.Engine == EnginePyTorch {
		tol = PyTorchTolerance
	}
	for i, wt := range want.Tensors {
		gt := got.Tensors[i]
		if gt.Name != wt.Name || fmt.Sprint(gt.Shape) != fmt.Sprint(wt.Shape) {
			return units.Mismatch(id, "tensor %d is %s%v, want %s%v", i, gt.Name, gt.Shape, wt.Name, wt.Shape)
		}
		d := MaxDiff(gt.Data, wt.Data)
		if d > tol {
			return units.Mismatch(id, "tensor %s differs from the replay by up to %.3g (allowed %.0g)", wt.Name, d, tol)
		}
	}
	return nil
}

// MaxDiff is the largest |a[i]-b[i]| (a and b of equal length).
func MaxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// Cheat is a way a dishonest provider fakes a training segment more cheaply.
type Cheat string

// The cheats Compare must reject.
const (
	CheatSkippedSteps Cheat = "skipped-steps" // half the segment's steps
	CheatLessData     Cheat = "less-data"     // batches from half the training rows
	CheatPerturbed    Cheat = "perturbed"     // the honest weights plus noise of 1e-2
)

// Cheats lists every Cheat.
var Cheats = []Cheat{CheatSkippedSteps, CheatLessData, CheatPerturbed}

// Forge returns what a provider cheating with c would claim for unit id (after step 0),
// given its input checkpoint: a well-formed, correctly chained checkpoint made the cheap
// way.
func (w Workload) Forge(ctx context.Context, job units.Job, id string, inputs map[string][]byte, c Cheat) ([]byte, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	s, err := p.StepOf(id)
	if err != nil {
		return nil, err
	}
	if s == 0 {
		return nil, errors.New("train: forge: step 0 is the seed's initial weights, not a segment")
	}
	in, ok := inputs[UnitID(s-p.Every)]
	if !ok {
		return nil, fmt.Errorf("train: forge %s: needs input %s", id, UnitID(s-p.Every))
	}
	switch c {
	case CheatSkippedSteps:
		return w.segment(ctx, job, p, in, s-max(1, p.Every/2), p.TrainRows, s)
	case CheatLessData:
		return w.segment(ctx, job, p, in, s, max(1, p.TrainRows/2), s)
	case CheatPerturbed:
		b, err := w.segment(ctx, job, p, in, s, p.TrainRows, s)
		if err != nil {
			return nil, err
		}
		ck, err := DecodeCheckpoint(b)
		if err != nil {
			return nil, err
		}
		r := splitmix{uint64(s)}
		for i := range ck.Tensors {
			for j := range ck.Tensors[i].Data {
				ck.Tensors[i].Data[j] += float32((r.float()*2 - 1) * 1e-2)
			}
		}
		return ck.Encode()
	}
	return nil, fmt.Errorf("train: unknown cheat %q", c)
}
