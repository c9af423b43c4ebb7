package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kiln-network/kiln/internal/cputime"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/verifier"
	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/verify"
)

// VerifyOptions configure `kiln bench verify`.
type VerifyOptions struct {
	// Jobs is how many jobs per kind, cheat and fraction (and honest ones per kind).
	Jobs int
	// Samples is s, the units the chain samples per commitment (verify's sample_count).
	Samples uint32
	// Fractions are the fractions f of units a cheater fakes.
	Fractions []float64
	// Seed makes a run repeatable.
	Seed     uint64
	Progress io.Writer
}

// DefaultVerifyOptions: 40 jobs per cell, the chain's default sample count, f of 5, 10,
// 25 and 50%.
func DefaultVerifyOptions() VerifyOptions {
	return VerifyOptions{Jobs: 40, Samples: verify.DefaultParams().SampleCount, Fractions: []float64{0.05, 0.10, 0.25, 0.50}, Seed: 1}
}

// VerifyRow is one cell: a kind, a cheat and a fraction f.
type VerifyRow struct {
	Kind     string  `json:"kind"`
	Cheat    string  `json:"cheat"`
	Fraction float64 `json:"fraction"`
	Units    int     `json:"units"`
	Jobs     int     `json:"jobs"`
	Caught   int     `json:"caught"`
	Rate     float64 `json:"detection_rate"`
	// Analytic is 1-(1-f)^s, sampling with replacement; sampling without replacement
	// (what the chain does) does a little better.
	Analytic float64 `json:"analytic"`
	Overhead float64 `json:"overhead"`
}

// KindCost is what a job of one kind costs to run and to verify, in CPU seconds.
type KindCost struct {
	Kind         string  `json:"kind"`
	Units        int     `json:"units"`
	JobCPUs      float64 `json:"job_cpu_s"`
	VerifyCPUs   float64 `json:"verify_cpu_s"`
	Overhead     float64 `json:"overhead"`
	HonestJobs   int     `json:"honest_jobs"`
	FalseReports int     `json:"false_positives"`
}

// VerifyResult is what `kiln bench verify` reports.
type VerifyResult struct {
	Samples uint32 `json:"samples"`
	// DetectionRate is over every cheating job with f >= 10%.
	DetectionRate    float64 `json:"detection_rate"`
	DetectionRateAll float64 `json:"detection_rate_all_f"`
	// FalsePositiveRate is over honest jobs: a fraud verdict on honest work.
	FalsePositiveRate float64 `json:"false_positive_rate"`
	// Overhead is the largest of the kinds' verifier CPU / job CPU.
	Overhead float64 `json:"overhead"`
	// HonestSlashed counts honest jobs that drew a fraud verdict (the chain would slash
	// their provider).
	HonestSlashed int         `json:"honest_slashed"`
	Kinds         []KindCost  `json:"kinds"`
	Rows          []VerifyRow `json:"rows"`
	DurationS     float64     `json:"duration_s"`
	Method        string      `json:"method"`
}

// kindSetup is one workload's honest job in the bench.
type kindSetup struct {
	kind   string
	job    units.Job
	w      units.Workload
	ids    []string          // sorted: index i is the chain's unit index i
	honest map[string][]byte // the honest bytes of every unit
	cheats []string
	forge  func(ctx context.Context, id string, inputs map[string][]byte, cheat string) ([]byte, error)
	cost   KindCost
}

// Verify runs one honest job of each kind (render: the Go path tracer; train: the Go
// trainer; matmul), then many jobs per kind, cheat and fraction f in which a cheater
// fakes f of the units with the workload's real cheats (fewer samples, upscaled,
// neighbour and other-frame tiles; skipped steps, less data, perturbed weights; wrong
// and skipped matmul blocks). Each job's sampled units are drawn as the chain draws
// them (verify.SampleUnits) and checked as a verifier checks them (Compare against the
// re-executed unit; Freivalds for matmul); a job is caught when one sampled unit fails.
// Honest jobs measure false positives. Overhead is measured once per kind: the CPU
// time of really re-executing s sampled units (verifier.Check) over the CPU time of
// running the whole job.
//
// NB: a unit's re-execution is deterministic, so the detection loop computes each
// distinct (unit, input) recomputation once and reuses it across the jobs that sample
// it; each job is still charged its full re-execution in the overhead.
func Verify(ctx context.Context, o VerifyOptions) (VerifyResult, error) {
	if o.Jobs < 1 || o.Jobs > 10_000 {
		return VerifyResult{}, fmt.Errorf("jobs: %d, must be 1 to 10000", o.Jobs)
	}
	if o.Samples < 1 || o.Samples > verify.MaxSamples {
		return VerifyResult{}, fmt.Errorf("samples: %d, must be 1 to %d", o.Samples, verify.MaxSamples)
	}
	for _, f := range o.Fractions {
		if !(f > 0 && f <= 1) {
			return VerifyResult{}, fmt.Errorf("fraction %v: must be in (0, 1]", f)
		}
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "kiln-bench-verify-")
	if err != nil {
		return VerifyResult{}, err
	}
	defer os.RemoveAll(dir)
	reg := catalog.Registry()
	res := VerifyResult{Samples: o.Samples, Method: "per kind: one honest job run (CPU time from getrusage), then per cheat and f, jobs faking round(f*units) random units with the workload's real cheats; units sampled as the chain samples them (verify.SampleUnits), checked as the verifier checks them (Compare against the re-executed unit, Freivalds for matmul); overhead = CPU time of really re-executing s sampled units / CPU time of the job"}

	setups, err := setupKinds(ctx, dir, progress)
	if err != nil {
		return res, err
	}
	var caught10, jobs10, caughtAll, jobsAll, honestJobs, falsePos int
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	for _, k := range setups {
		n := len(k.ids)
		// Overhead: re-execute s sampled units of the honest job for real.
		sample := sampleIDs(k.ids, o.Samples, rng.Uint64())
		claimed, inputs := map[string][]byte{}, map[string][]byte{}
		for _, id := range sample {
			claimed[id] = k.honest[id]
			need, err := k.w.Inputs(k.job, id)
			if err != nil {
				return res, err
			}
			for _, in := range need {
				inputs[in] = k.honest[in]
			}
		}
		var failed []string
		vcpu, err := cputime.Measure(func() error {
			var err error
			failed, _, err = verifier.Check(ctx, reg, k.job, claimed, inputs, int64(rng.Uint64()>>1))
			return err
		})
		if err != nil {
			return res, fmt.Errorf("%s: verify honest job: %w", k.kind, err)
		}
		if len(failed) > 0 {
			return res, fmt.Errorf("%s: the honest job failed verification on %v", k.kind, failed)
		}
		k.cost.VerifyCPUs = vcpu.Seconds()
		k.cost.Overhead = vcpu.Seconds() / k.cost.JobCPUs
		res.Overhead = math.Max(res.Overhead, k.cost.Overhead)
		fmt.Fprintf(progress, "%s: %d units, job %.2f CPU s, verifying %d units %.3f CPU s: overhead %.2f%%\n",
			k.kind, n, k.cost.JobCPUs, len(sample), vcpu.Seconds(), 100*k.cost.Overhead)

		check := newChecker(k)
		// Honest jobs: every sampled unit must pass.
		for j := 0; j < o.Jobs; j++ {
			bad, err := check.job(ctx, sampleIDs(k.ids, o.Samples, rng.Uint64()), nil, "")
			if err != nil {
				return res, err
			}
			k.cost.HonestJobs++
			if bad {
				k.cost.FalseReports++
			}
		}
		honestJobs += k.cost.HonestJobs
		falsePos += k.cost.FalseReports
		for _, cheat := range k.cheats {
			for _, f := range o.Fractions {
				row := VerifyRow{Kind: k.kind, Cheat: cheat, Fraction: f, Units: n, Jobs: o.Jobs,
					Analytic: 1 - math.Pow(1-f, float64(min(int(o.Samples), n))), Overhead: k.cost.Overhead}
				nfake := max(1, int(math.Round(f*float64(n))))
				for j := 0; j < o.Jobs; j++ {
					fake := map[string]bool{}
					for _, i := range rng.Perm(n)[:nfake] {
						fake[k.ids[i]] = true
					}
					bad, err := check.job(ctx, sampleIDs(k.ids, o.Samples, rng.Uint64()), fake, cheat)
					if err != nil {
						return res, err
					}
					if bad {
						row.Caught++
					}
				}
				row.Rate = float64(row.Caught) / float64(row.Jobs)
				res.Rows = append(res.Rows, row)
				caughtAll += row.Caught
				jobsAll += row.Jobs
				if f >= 0.10 {
					caught10 += row.Caught
					jobs10 += row.Jobs
				}
				fmt.Fprintf(progress, "%s %-14s f=%.2f: caught %d/%d (%.1f%%, analytic %.1f%%)\n", k.kind, cheat, f, row.Caught, row.Jobs, 100*row.Rate, 100*row.Analytic)
			}
		}
		res.Kinds = append(res.Kinds, k.cost)
	}
	res.HonestSlashed = falsePos
	if honestJobs > 0 {
		res.FalsePositiveRate = float64(falsePos) / float64(honestJobs)
	}
	if jobs10 > 0 {
		res.DetectionRate = float64(caught10) / float64(jobs10)
	}
	if jobsAll > 0 {
		res.DetectionRateAll = float64(caughtAll) / float64(jobsAll)
	}
	res.DurationS = time.Since(start).Seconds()
	return res, nil
}

// sampleIDs draws s unit ids the way the chain draws unit indexes for a commitment.
func sampleIDs(ids []string, s uint32, seed uint64) []string {
	var br types.BlockRand
	binary.BigEndian.PutUint64(br[:], seed)
	br[31] = 1
	ctx := &types.Context{BlockRand: br}
	var out []string
	for _, i := range verify.SampleUnits(ctx.Rand("verify/sample"), uint32(len(ids)), s) {
		out = append(out, ids[i])
	}
	return out
}

// checker decides jobs: a job is caught when one of its sampled units is not an
// honest result. Recomputations and forgeries are cached per (unit, input).
type checker struct {
	mm     *matmul.BlockChecker
	seq    int64
	k      *kindSetup
	recomp map[string][]byte
	forged map[string][]byte
}

func newChecker(k *kindSetup) *checker {
	return &checker{k: k, recomp: map[string][]byte{}, forged: map[string][]byte{}}
}

// claimedOf returns what a provider faking the units in fake with cheat claims for id.
func (c *checker) claimedOf(ctx context.Context, id string, fake map[string]bool, cheat string) ([]byte, error) {
	if !fake[id] {
		return c.k.honest[id], nil
	}
	inputs, key, err := c.inputsOf(ctx, id, fake, cheat)
	if err != nil {
		return nil, err
	}
	key = cheat + "|" + key
	if b, ok := c.forged[key]; ok {
		return b, nil
	}
	b, err := c.k.forge(ctx, id, inputs, cheat)
	if err != nil {
		return nil, fmt.Errorf("%s: forge %s (%s): %w", c.k.kind, id, cheat, err)
	}
	c.forged[key] = b
	return b, nil
}

// inputsOf returns the committed inputs unit id is recomputed from (a faked previous
// checkpoint is what the cheater committed), and a cache key naming them.
func (c *checker) inputsOf(ctx context.Context, id string, fake map[string]bool, cheat string) (map[string][]byte, string, error) {
	need, err := c.k.w.Inputs(c.k.job, id)
	if err != nil {
		return nil, "", err
	}
	in := map[string][]byte{}
	key := id
	for _, n := range need {
		// NB: one level: the input's own claimed bytes (forged from the honest chain).
		b := c.k.honest[n]
		if fake[n] {
			var err error
			if b, err = c.claimedOf(ctx, n, map[string]bool{n: true}, cheat); err != nil {
				return nil, "", err
			}
		}
		in[n] = b
		h := sha256.Sum256(b)
		key += fmt.Sprintf("|%s:%x", n, h[:8])
	}
	return in, key, nil
}

func (c *checker) job(ctx context.Context, sample []string, fake map[string]bool, cheat string) (bool, error) {
	if c.k.kind == matmul.Kind {
		// NB: A and B are generated once per job spec (their cost is in the overhead).
		if c.mm == nil {
			var err error
			if c.mm, err = matmul.NewBlockChecker(c.k.job); err != nil {
				return false, err
			}
		}
		c.seq++
		claimed := map[string][]byte{}
		for _, id := range sample {
			b, err := c.claimedOf(ctx, id, fake, cheat)
			if err != nil {
				return false, err
			}
			claimed[id] = b
		}
		res, err := c.mm.Check(claimed, c.seq)
		for _, e := range res {
			if e != nil {
				return true, err
			}
		}
		return false, err
	}
	for _, id := range sample {
		claimed, err := c.claimedOf(ctx, id, fake, cheat)
		if err != nil {
			return false, err
		}
		inputs, key, err := c.inputsOf(ctx, id, fake, cheat)
		if err != nil {
			return false, err
		}
		want, ok := c.recomp[key]
		if !ok {
			if want, err = c.k.w.RunUnit(ctx, c.k.job, id, inputs); err != nil {
				return false, fmt.Errorf("%s: re-execute %s: %w", c.k.kind, id, err)
			}
			c.recomp[key] = want
		}
		err = c.k.w.Compare(c.k.job, id, claimed, want)
		if units.IsMismatch(err) {
			return true, nil
		} else if err != nil {
			return false, err
		}
	}
	return false, nil
}

// setupKinds runs one honest job of each kind and loads its units.
func setupKinds(ctx context.Context, dir string, progress io.Writer) ([]*kindSetup, error) {
	rw := render.Workload{}
	// NB: about 1,500 units per job: s = 44 re-executed units are 3% of the work.
	rp := render.Params{Renderer: render.RendererGo, Width: 128, Height: 128, FrameStart: 1, FrameEnd: 6, Tiles: 16, Samples: 8, Seed: 7}
	rjob, err := render.NewJob(rp, "", filepath.Join(dir, "render"))
	if err != nil {
		return nil, err
	}
	tw := train.Workload{}
	tp := train.DefaultParams()
	// NB: 1,500 segments of 25 steps: a replay also re-reads and re-hashes the pinned
	// data (~1.5 ms), so shorter segments cost relatively more to check.
	tp.Steps, tp.Every = 37500, 25
	tjob, err := train.NewJob(tp, train.DataGenerated, filepath.Join(dir, "train"))
	if err != nil {
		return nil, err
	}
	// NB: checking costs generating A and B (2n² draws of math/rand, ~20 ns each) and
	// O(n²) flops; the job costs 2n³ flops: at n = 1536 the check was 6.7% of the job
	// here, at 2560 2.8-4.8% across runs on this loaded machine, so 3072 for margin.
	mjob, err := matmul.NewJob(matmul.UnitParams{N: 3072, Seed: 3, BlockRows: 3})
	if err != nil {
		return nil, err
	}
	type spec struct {
		w      units.Workload
		job    units.Job
		cheats []string
		forge  func(ctx context.Context, job units.Job, id string, inputs map[string][]byte, cheat string) ([]byte, error)
	}
	specs := []spec{
		{rw, rjob, strs(render.Cheats), func(ctx context.Context, job units.Job, id string, _ map[string][]byte, c string) ([]byte, error) {
			return rw.Forge(ctx, job, id, render.Cheat(c))
		}},
		{tw, tjob, strs(train.Cheats), func(ctx context.Context, job units.Job, id string, in map[string][]byte, c string) ([]byte, error) {
			return tw.Forge(ctx, job, id, in, train.Cheat(c))
		}},
		{matmul.Workload{}, mjob, []string{"zero-block", "copied-block"}, nil},
	}
	var out []*kindSetup
	for _, s := range specs {
		kdir := filepath.Join(dir, s.w.Kind())
		if err := os.MkdirAll(kdir, 0o755); err != nil {
			return nil, err
		}
		job := s.job
		fmt.Fprintf(progress, "%s: running the honest job\n", s.w.Kind())
		cpu, err := cputime.Measure(func() error { return s.w.Run(ctx, job, kdir, nil) })
		if err != nil {
			return nil, fmt.Errorf("%s: run: %w", s.w.Kind(), err)
		}
		set, err := units.Read(kdir)
		if err != nil {
			return nil, err
		}
		if job, err = units.ReadJob(kdir); err != nil {
			return nil, err
		}
		k := &kindSetup{kind: s.w.Kind(), job: job, w: s.w, ids: set.IDs(), honest: map[string][]byte{}, cheats: s.cheats,
			cost: KindCost{Kind: s.w.Kind(), Units: len(set), JobCPUs: cpu.Seconds()}}
		for _, id := range k.ids {
			if k.honest[id], err = set.Load(kdir, id); err != nil {
				return nil, err
			}
		}
		// NB: train's first unit is step 0, the seed's weights: nothing to fake or check
		// by replay; it stays in the root but is never sampled as a segment.
		if k.kind == train.Kind {
			k.ids = slices.DeleteFunc(k.ids, func(id string) bool { return id == train.UnitID(0) })
		}
		forge := s.forge
		k.forge = func(ctx context.Context, id string, in map[string][]byte, c string) ([]byte, error) {
			if forge == nil {
				return forgeMatmul(ctx, job, id, in, c, k.honest)
			}
			return forge(ctx, job, id, in, c)
		}
		out = append(out, k)
	}
	return out, nil
}

func strs[T ~string](v []T) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = string(x)
	}
	return out
}

// forgeMatmul fakes one row block: zeros (the work skipped) or the next block's rows
// (one result passed off as two).
func forgeMatmul(_ context.Context, job units.Job, id string, _ map[string][]byte, cheat string, honest map[string][]byte) ([]byte, error) {
	var i int
	if _, err := fmt.Sscanf(id, "rows-%05d", &i); err != nil {
		return nil, err
	}
	switch cheat {
	case "zero-block":
		return make([]byte, len(honest[id])), nil
	case "copied-block":
		next := matmul.BlockID(i + 1)
		if _, ok := honest[next]; !ok {
			next = matmul.BlockID(0)
		}
		if len(honest[next]) != len(honest[id]) {
			return make([]byte, len(honest[id])), nil
		}
		return honest[next], nil
	}
	return nil, errors.New("matmul: unknown cheat " + cheat)
}
