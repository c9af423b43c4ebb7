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
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
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
	// Shards splits each minibatch into this many contiguous parts whose gradients are
	// summed in part order: the arithmetic of a data-parallel run of that many ranks, so a
	// single process replays a distributed run's segments exactly. 0 or 1: one part.
	Shards int `json:"shards,omitempty"`
}

// shards is the number of parts of each minibatch (at least 1).
func (p Params) shards() int { return max(1, p.Shards) }

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
	case p.Shards < 0 || p.Shards > min(p.Batch, maxWorld):
		return fmt.Errorf("train shards: %d, must be 0 to %d (at most the batch, %d)", p.Shards, min(p.Batch, maxWorld), p.Batch)
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
	Dist   Dist // Run's place in a data-parallel run (zero: a single process); replays are always single-process
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
	Engine        string    `json:"engine"`
	Source        string    `json:"source"`
	Steps         int       `json:"steps"`
	Checkpoints   int       `json:"checkpoints"`
	TestRows      int       `json:"test_rows"`
	TestAccuracy  float64   `json:"test_accuracy"`
	Losses        []float64 `json:"losses,omitempty"`       // batch loss at each checkpoint after step 0 (after ResumedFrom when resumed)
	WeightsSHA256 string    `json:"weights_sha256"`         // SHA-256 of the final weights (the last checkpoint's values)
	WorldSize     int       `json:"world_size,omitempty"`   // ranks of a data-parallel run
	Backend       string    `json:"backend,omitempty"`      // a data-parallel run's exchange: gloo or nccl (PyTorch), tcp (Go)
	ResumedFrom   int       `json:"resumed_from,omitempty"` // the checkpoint step a resumed run started from
}

// RankReport is DIR/rank-N.json, written by every rank of a data-parallel run: equal
// WeightsSHA256 on every rank shows they ended with identical weights.
type RankReport struct {
	Rank          int     `json:"rank"`
	WorldSize     int     `json:"world_size"`
	Backend       string  `json:"backend"`
	Start         int     `json:"start"`          // the step it started from: 0, or the resumed checkpoint's
	Steps         int     `json:"steps"`          // the step it ended at
	Loss          float64 `json:"loss"`           // the batch loss of the last step trained (0 if none)
	WeightsSHA256 string  `json:"weights_sha256"` // SHA-256 of its final weights' float32 values
}

// RankFile is the name of rank's report in a data-parallel run's directory.
func RankFile(rank int) string { return fmt.Sprintf("rank-%d.json", rank) }

// Run trains, writing the checkpoints, units.json, job.json and metrics.json under out.
// With w.Dist a data-parallel run of several ranks, this is one rank: rank 0 writes those
// files, and every rank writes out/rank-N.json.
func (w Workload) Run(ctx context.Context, job units.Job, out string, progress units.Progress) error {
	return w.run(ctx, job, out, progress, false)
}

// Resume continues the job in out from the last checkpoint of the hash chain found there
// (from the start where there is none), the chain continuing unbroken, and finishes as
// Run does. In a data-parallel run the ranks start from the longest chain among their
// outs, which a rank with a shorter one (a re-placed rank's empty out) adopts.
func (w Workload) Resume(ctx context.Context, job units.Job, out string, progress units.Progress) error {
	return w.run(ctx, job, out, progress, true)
}

func (w Workload) run(ctx context.Context, job units.Job, out string, progress units.Progress, resume bool) error {
	p, err := params(job)
	if err != nil {
		return err
	}
	dist := w.Dist
	if err := dist.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if dist.Distributed() && p.shards() != dist.WorldSize {
		return fmt.Errorf("train: the job splits each batch into %d shards and WORLD_SIZE is %d: they must be equal", p.shards(), dist.WorldSize)
	}
	lead := dist.Rank == 0
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
	var last []byte
	var chain [][]byte // this rank's checkpoints from step 0, in order
	from := 0
	if resume {
		if chain, err = resumeChain(out, p, set); err != nil {
			return err
		}
		if len(chain) > 0 {
			from, last = (len(chain)-1)*p.Every, chain[len(chain)-1]
		}
	}
	if lead {
		// NB: written first, so a run killed midway can be resumed from out alone.
		if err := job.Write(out); err != nil {
			return err
		}
	}
	// keep writes checkpoint b of step into out: every rank does (ranks sharing one out
	// write the same bytes), so that the chain outlives any one rank.
	keep := func(step int, b []byte) error {
		delete(set, UnitID(step)) // NB: an adopted chain replaces this rank's own
		return set.Put(out, UnitID(step), unitFile(step), b)
	}
	// adopt takes another rank's longer chain as this rank's own (a replaced rank 0
	// whose out was lost resumes from a surviving rank's copy).
	adopt := func(got [][]byte) error {
		prev := ZeroPrev
		for i, b := range got {
			c, err := DecodeCheckpoint(b)
			if err != nil || c.Step != i*p.Every || c.Prev != prev {
				return fmt.Errorf("train rank %d: a surviving rank's checkpoint %d is not the chain's (step %d, %v)", dist.Rank, i, c.Step, err)
			}
			if m, err := MLPFromCheckpoint(c); err != nil || c.Engine != p.Engine || m.Hidden != p.Hidden {
				return fmt.Errorf("train rank %d: a surviving rank's %s is not this job's checkpoint (engine %s, want %s; %v)", dist.Rank, unitFile(c.Step), c.Engine, p.Engine, err)
			}
			if err := keep(c.Step, b); err != nil {
				return err
			}
			prev = Hash(b)
		}
		from, last = (len(got)-1)*p.Every, got[len(got)-1]
		return nil
	}
	var losses []float64
	emit := func(step int, b []byte, loss float64) error {
		c, err := DecodeCheckpoint(b)
		if err != nil {
			return fmt.Errorf("train: %s checkpoint at step %d: %w", p.Engine, step, err)
		}
		// NB: the next checkpoint of the chain: step 0, or one period after the last.
		want, wantStep := ZeroPrev, 0
		if last != nil {
			lc, err := DecodeCheckpoint(last)
			if err != nil {
				return fmt.Errorf("train: %w", err)
			}
			want, wantStep = Hash(last), lc.Step+p.Every
		}
		if c.Step != step || step != wantStep || c.Prev != want || c.Engine != p.Engine {
			return fmt.Errorf("train: %s checkpoint at step %d breaks the chain (step %d, prev %s; want step %d after %s)", p.Engine, step, c.Step, c.Prev, wantStep, want)
		}
		if err := keep(step, b); err != nil {
			return err
		}
		last = b
		if step > 0 {
			losses = append(losses, loss)
		}
		if progress != nil {
			progress(len(set), total, fmt.Sprintf("step %d of %d", step, p.Steps))
		}
		return nil
	}
	var fin RankReport
	switch p.Engine {
	case EngineGo:
		fin, err = w.runGo(ctx, job, p, d, chain, adopt, emit)
	case EnginePyTorch:
		fin, err = w.runTorch(ctx, job, p, chain, adopt, emit)
	}
	if err != nil {
		return err
	}
	if dist.Distributed() {
		b, _ := json.MarshalIndent(fin, "", "  ")
		if err := os.WriteFile(filepath.Join(out, RankFile(dist.Rank)), append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if !lead {
		return nil
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
		TestAccuracy: m.Accuracy(d, p.TrainRows, len(d.Y)), Losses: losses, WeightsSHA256: weightsSHA256(last), ResumedFrom: from}
	if dist.Distributed() {
		met.WorldSize, met.Backend = dist.WorldSize, fin.Backend
	}
	mb, _ := json.MarshalIndent(met, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "metrics.json"), append(mb, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := job.Write(out); err != nil {
		return err
	}
	return set.Write(out)
}

// resumeChain records in set the checkpoints of out that form an unbroken hash chain from
// step 0, and returns them in order (none where there is none).
// The chain ends at the first checkpoint missing or not linked to the one before; later
// files are overwritten as training goes on. A checkpoint of another model is an error.
func resumeChain(out string, p Params, set units.Set) ([][]byte, error) {
	prev := ZeroPrev
	var chain [][]byte
	for s := 0; s <= p.Steps; s += p.Every {
		b, err := os.ReadFile(filepath.Join(out, unitFile(s)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("train: resume: %w", err)
		}
		c, err := DecodeCheckpoint(b)
		if err != nil || c.Step != s || c.Prev != prev {
			break
		}
		m, err := MLPFromCheckpoint(c)
		if err != nil || c.Engine != p.Engine || m.Hidden != p.Hidden {
			return nil, fmt.Errorf("train: resume: %s is not this job's checkpoint (engine %s, want %s; %v)", unitFile(s), c.Engine, p.Engine, err)
		}
		set[UnitID(s)] = units.Unit{File: unitFile(s), SHA256: units.Sum(b)}
		chain, prev = append(chain, b), Hash(b)
	}
	return chain, nil
}

// weightsSHA256 is the SHA-256 of a checkpoint's values (what follows its header line).
func weightsSHA256(ckpt []byte) string {
	body := ckpt[len(Magic):]
	return units.Sum(body[bytes.IndexByte(body, '\n')+1:])
}

// digest names a job for the ranks of a run: its parameters (re-encoded: job.json read
// back is indented) and its data.
func digest(job units.Job, p Params) [32]byte {
	b, _ := json.Marshal(p)
	return sha256.Sum256(append(b, job.Assets[DataAsset]...))
}

// runGo trains with the Go engine from the last checkpoint of chain (none: the seed's
// initial weights), calling emit with each checkpoint it writes. In a data-parallel run
// every rank writes every checkpoint (the weights are the same bits on every rank), so
// that the chain survives the loss of any rank: the ranks first find the longest chain
// among them, and those with a shorter one adopt it.
func (w Workload) runGo(ctx context.Context, job units.Job, p Params, d *Dataset, chain [][]byte, adopt func([][]byte) error,
	emit func(int, []byte, float64) error) (RankReport, error) {
	dist := w.Dist
	var g *group
	if dist.Distributed() {
		var err error
		if g, err = joinGroup(ctx, dist, digest(job, p)); err != nil {
			return RankReport{}, err
		}
		defer g.Close()
		longest, err := g.longestChain(chain, p.Steps/p.Every+1)
		if err != nil {
			return RankReport{}, err
		}
		if len(longest) > len(chain) {
			if err := adopt(longest); err != nil {
				return RankReport{}, err
			}
			chain = longest
		}
	}
	m := newMLP(p.Hidden, p.Seed)
	from, prev := 0, ZeroPrev
	var last []byte
	if len(chain) > 0 {
		last = chain[len(chain)-1]
		c, err := DecodeCheckpoint(last)
		if err != nil {
			return RankReport{}, err
		}
		if m, err = MLPFromCheckpoint(c); err != nil {
			return RankReport{}, err
		}
		m = &MLP{Hidden: m.Hidden, W1: clone(m.W1), B1: clone(m.B1), W2: clone(m.W2), B2: clone(m.B2)}
		from, prev = c.Step, Hash(last)
	}
	if dist.Distributed() {
		// Every rank starts from rank 0's step and weights.
		msg := binary.LittleEndian.AppendUint64(nil, uint64(from))
		msg = append(msg, floatBytes(m.flat())...)
		got, err := g.broadcast(msg, len(msg))
		if err != nil {
			return RankReport{}, err
		}
		if len(got) != len(msg) {
			return RankReport{}, fmt.Errorf("train rank %d: rank 0's start state is %d bytes, want %d", dist.Rank, len(got), len(msg))
		}
		from = int(binary.LittleEndian.Uint64(got))
		v, err := bytesFloats(got[8:], m.size())
		if err != nil {
			return RankReport{}, fmt.Errorf("train rank %d: rank 0's start weights: %w", dist.Rank, err)
		}
		if err := m.setFlat(v); err != nil {
			return RankReport{}, err
		}
		if from < 0 || from > p.Steps {
			return RankReport{}, fmt.Errorf("train rank %d: rank 0 starts at step %d, outside 0 to %d", dist.Rank, from, p.Steps)
		}
	}
	if last == nil {
		b, err := m.checkpoint(0, ZeroPrev, EngineGo).Encode()
		if err != nil {
			return RankReport{}, err
		}
		if err := emit(0, b, 0); err != nil {
			return RankReport{}, err
		}
		prev = Hash(b)
	}
	var loss float32
	for s := from + 1; s <= p.Steps; s++ {
		if ctx.Err() != nil {
			return RankReport{}, fmt.Errorf("train: %w", ctx.Err())
		}
		var err error
		if loss, err = m.stepParts(d, p, batch(p, s, p.TrainRows), g); err != nil {
			if ctx.Err() != nil { // this rank was stopped: that is the cause, not the closed socket
				return RankReport{}, fmt.Errorf("train rank %d: %w", dist.Rank, ctx.Err())
			}
			return RankReport{}, err
		}
		if s%p.Every == 0 {
			b, err := m.checkpoint(s, prev, EngineGo).Encode()
			if err != nil {
				return RankReport{}, err
			}
			if err := emit(s, b, float64(loss)); err != nil {
				return RankReport{}, err
			}
			prev = Hash(b)
		}
	}
	return RankReport{Rank: dist.Rank, WorldSize: max(1, dist.WorldSize), Backend: "tcp", Start: from, Steps: max(from, p.Steps),
		Loss: float64(loss), WeightsSHA256: units.Sum(floatBytes(m.flat()))}, nil
}

// runTorch trains with the PyTorch engine from the end of chain (none: the seed's initial
// weights), calling emit with each checkpoint it writes. Every rank of a data-parallel run
// passes its chain (--chain): the ranks start from the longest one among them, which those
// with a shorter one adopt.
func (w Workload) runTorch(ctx context.Context, job units.Job, p Params, chain [][]byte, adopt func([][]byte) error,
	emit func(int, []byte, float64) error) (RankReport, error) {
	tmp, err := os.MkdirTemp("", "kiln-torch-")
	if err != nil {
		return RankReport{}, fmt.Errorf("train: %w", err)
	}
	defer os.RemoveAll(tmp)
	extra := []string{"--steps", strconv.Itoa(p.Steps), "--every", strconv.Itoa(p.Every)}
	switch {
	case w.Dist.Distributed():
		dir := filepath.Join(tmp, "chain")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return RankReport{}, fmt.Errorf("train: %w", err)
		}
		for i, b := range chain {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%06d.kckpt", i)), b, 0o644); err != nil {
				return RankReport{}, fmt.Errorf("train: %w", err)
			}
		}
		extra = append(extra, "--chain", dir)
	case len(chain) > 0:
		resume := filepath.Join(tmp, "resume.kckpt")
		if err := os.WriteFile(resume, chain[len(chain)-1], 0o644); err != nil {
			return RankReport{}, fmt.Errorf("train: %w", err)
		}
		extra = append(extra, "--resume", resume)
	}
	var fin *RankReport
	err = w.python(ctx, job, p, w.Dist, filepath.Join(tmp, "ckpt"), p.TrainRows, extra, func(ev torchEvent) error {
		if ev.Final != nil {
			fin = ev.Final
			return nil
		}
		if ev.Adopt != nil {
			got := make([][]byte, len(ev.Adopt.Files))
			for i, f := range ev.Adopt.Files {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("train: %w", err)
				}
				got[i] = b
			}
			return adopt(got)
		}
		b, err := os.ReadFile(ev.File)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		return emit(ev.Step, b, ev.Loss)
	})
	if err != nil {
		return RankReport{}, err
	}
	if fin == nil {
		return RankReport{}, errors.New("train: pytorch exited without its final report")
	}
	return *fin, nil
}

// stepParts does one SGD step on the minibatch idx split into p's shards: one part
// (stepped as before shards existed), or each part's gradient summed in part order,
// computed here one by one (g nil) or one per rank and summed through g.
func (m *MLP) stepParts(d *Dataset, p Params, idx []int, g *group) (float32, error) {
	n := p.shards()
	if n == 1 {
		return m.step(d, idx, float32(p.LR)), nil
	}
	inv := 1 / float32(len(idx))
	part := func(r int) []float32 {
		v := make([]float32, m.size()+1)
		m.partGrad(d, idx[r*len(idx)/n:(r+1)*len(idx)/n], inv, v)
		return v
	}
	var total []float32
	if g != nil {
		var err error
		if total, err = g.sum(part(g.d.Rank)); err != nil {
			return 0, err
		}
	} else {
		total = part(0)
		for r := 1; r < n; r++ {
			v := part(r)
			for i := range total {
				total[i] = total[i] + v[i]
			}
		}
	}
	m.apply(total, float32(p.LR))
	return total[len(total)-1], nil
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

// CheckInputs implements units.InputChecker: the committed checkpoint a segment
// starts from must parse, sit at the step before the segment, come from the job's
// engine and hold the job's model. One that does not makes the segment that depends
// on it fraud (its hash is what the provider committed: nobody else wrote it).
func (Workload) CheckInputs(job units.Job, id string, inputs map[string][]byte) error {
	p, err := params(job)
	if err != nil {
		return err
	}
	s, err := p.StepOf(id)
	if err != nil || s == 0 {
		return err
	}
	from := UnitID(s - p.Every)
	in, ok := inputs[from]
	if !ok {
		return fmt.Errorf("train unit %s: needs input %s", id, from)
	}
	c, err := DecodeCheckpoint(in)
	if err != nil {
		return units.Mismatch(id, "its committed input %s is not a checkpoint: %v", from, err)
	}
	if c.Step != s-p.Every {
		return units.Mismatch(id, "its committed input %s is at step %d, want %d", from, c.Step, s-p.Every)
	}
	if c.Engine != p.Engine {
		return units.Mismatch(id, "its committed input %s is from engine %s, the job's is %s", from, c.Engine, p.Engine)
	}
	m, err := MLPFromCheckpoint(c)
	if err != nil {
		return units.Mismatch(id, "its committed input %s: %v", from, err)
	}
	if m.Hidden != p.Hidden {
		return units.Mismatch(id, "its committed input %s has %d hidden units, the job's model %d", from, m.Hidden, p.Hidden)
	}
	return nil
}

var _ units.InputChecker = Workload{}

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
			if _, err := m.stepParts(d, p, batch(p, s, rows), nil); err != nil {
				return nil, err
			}
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
		err = w.python(ctx, job, p, Dist{}, filepath.Join(tmp, "out"), rows, extra, func(ev torchEvent) error {
			if ev.Final == nil && ev.Step == to {
				outFile = ev.File
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
	err = w.python(ctx, job, p, Dist{}, filepath.Join(tmp, "out"), p.TrainRows, []string{"--replay", string(pj)}, func(ev torchEvent) error {
		id, ok := steps[ev.Step]
		if ev.Final != nil || !ok {
			return nil
		}
		b, err := os.ReadFile(ev.File)
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

// TorchPython returns a python3 that has torch (and numpy): w.Python, else python3, else
// /usr/bin/python3; an error naming what each lacked where none has.
func (w Workload) TorchPython(ctx context.Context) (string, error) {
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

// torchEvent is a line the training script prints: a checkpoint written (KILN_CKPT: step,
// file, loss) or, at the end, the rank's report (KILN_FINAL).
type torchEvent struct {
	Step  int     `json:"step"`
	File  string  `json:"file"`
	Loss  float64 `json:"loss"`
	Final *RankReport
	Adopt *torchAdopt
}

// torchAdopt is a KILN_ADOPT event: the longest chain among the ranks, from rank
// FromRank, which this rank takes as its own.
type torchAdopt struct {
	Files    []string `json:"files"`
	FromRank int      `json:"from_rank"`
}

// python runs the job's training script as rank dist (the zero Dist: a single process)
// with extra arguments (--steps/--every/--resume or --replay) on the first rows rows,
// checkpointing into dir, calling on for each event it prints.
func (w Workload) python(ctx context.Context, job units.Job, p Params, dist Dist, dir string, rows int, extra []string, on func(torchEvent) error) error {
	bin, err := w.TorchPython(ctx)
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
		"--lr", strconv.FormatFloat(p.LR, 'g', -1, 64), "--train-rows", strconv.Itoa(rows), "--shards", strconv.Itoa(p.shards())}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KILN_CKPT_DIR="+dir, "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1")
	cmd.Env = append(cmd.Env, dist.env()...)
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
		if cbErr != nil {
			continue
		}
		var ev torchEvent
		var into any = &ev
		line, ok := strings.CutPrefix(sc.Text(), "KILN_CKPT ")
		if !ok {
			if line, ok = strings.CutPrefix(sc.Text(), "KILN_FINAL "); ok {
				ev.Final = &RankReport{}
				into = ev.Final
			} else if line, ok = strings.CutPrefix(sc.Text(), "KILN_ADOPT "); ok {
				ev.Adopt = &torchAdopt{}
				into = ev.Adopt
			} else {
				continue
			}
		}
		if err := json.Unmarshal([]byte(line), into); err != nil {
			cbErr = fmt.Errorf("train: python said %q: %w", line, err)
			continue
		}
		cbErr = on(ev)
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
