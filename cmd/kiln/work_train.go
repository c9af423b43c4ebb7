package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
)

func newWorkTrainCmd() *cobra.Command {
	d := train.DefaultParams()
	c := &cobra.Command{
		Use:   "train --out DIR | --resume DIR",
		Short: "Train an MLP on 8x8 digits (Go or PyTorch, data-parallel over ranks), checkpoints every K steps forming a hash chain",
		Long: `Train a small MLP on 8x8 digits: scikit-learn's digits set where python3-sklearn is
installed (else a generated set of the same shape; --data chooses), with the Go trainer in
this binary or PyTorch (--engine pytorch, Debian python3-torch, CPU). A checkpoint every K
steps carries the SHA-256 of the one before: DIR/step-NNNNNN.kckpt, DIR/units.json, DIR/job.json (with
the data and scripts pinned), DIR/metrics.json (losses, held-out accuracy). A verifier
replays any segment from its checkpoint (kiln work verify DIR).

Data-parallel: with torch.distributed's environment (WORLD_SIZE > 1, RANK, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT; GLOO_SOCKET_IFNAME; KILN_DIST_TIMEOUT seconds, default 60) this
process is one rank. Each batch is split into WORLD_SIZE parts, one per rank, and their
gradients are summed in rank order (PyTorch: gloo, or NCCL where every rank has a GPU;
Go: over TCP through rank 0), so every rank holds the same weights. Every rank writes
the checkpoints and DIR/rank-N.json; rank 0 also the other files above. A verifier replays a segment in one
process with the same parts, exactly. Every rank exits non-zero when one fails.

--resume DIR continues the run in DIR from the last checkpoint of its hash chain (the job
from DIR/job.json when there, else from the flags; from the start when there is no
checkpoint); in a data-parallel run the ranks start from the longest chain among their
DIRs, which a rank with a shorter one (a re-placed member's empty DIR) adopts.`,
		Example: `  kiln work train --out /tmp/t
  kiln work train --engine pytorch --steps 2000 --checkpoint-every 20 --out /tmp/pt
  WORLD_SIZE=2 RANK=1 MASTER_ADDR=10.128.0.1 MASTER_PORT=29500 kiln work train --engine pytorch --out /out/t
  kiln work train --resume /tmp/pt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			dist, err := train.DistFromEnv(os.Getenv)
			if err != nil {
				return usageErr(err)
			}
			p := d
			p.Engine, _ = f.GetString("engine")
			p.Steps, _ = f.GetInt("steps")
			p.Every, _ = f.GetInt("checkpoint-every")
			p.Seed, _ = f.GetInt64("seed")
			p.Hidden, _ = f.GetInt("hidden")
			p.Batch, _ = f.GetInt("batch")
			p.LR, _ = f.GetFloat64("lr")
			p.Shards, _ = f.GetInt("shards")
			if !f.Changed("shards") && dist.Distributed() {
				p.Shards = dist.WorldSize
			}
			source, _ := f.GetString("data")
			if source != train.DataAuto && source != train.DataDigits && source != train.DataGenerated {
				return usagef("--data %q: want %s, %s or %s", source, train.DataAuto, train.DataDigits, train.DataGenerated)
			}
			q := p
			q.Source = train.DataGenerated // checked once the data is found
			if err := q.Validate(); err != nil {
				return usageErr(err)
			}
			if dist.Distributed() && p.Shards != dist.WorldSize {
				return usagef("--shards %d: a data-parallel run needs --shards = WORLD_SIZE (%d)", p.Shards, dist.WorldSize)
			}
			out, _ := f.GetString("out")
			resume, _ := f.GetString("resume")
			if (out == "") == (resume == "") {
				return usagef("give one of --out DIR (a new run) or --resume DIR (continue one)")
			}
			var job units.Job
			dir, err := outDir(out + resume)
			if err != nil {
				return err
			}
			if _, statErr := os.Stat(filepath.Join(dir, units.JobFile)); resume != "" && statErr == nil {
				if job, err = resumedJob(cmd, dir, p); err != nil {
					return err
				}
			} else if job, err = train.NewJob(p, source, dir); err != nil { // NB: data not found is a failure (1)
				return err
			}
			w := train.Workload{Dist: dist}
			if dist.Rank != 0 {
				return runRank(cmd, w, job, dir, resume != "")
			}
			var uw units.Workload = w
			if resume != "" {
				uw = resumer{w}
			}
			return runUnits(cmd, uw, job, dir, func(dir string) (any, string) {
				var m train.Metrics
				b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
				if err != nil || json.Unmarshal(b, &m) != nil {
					return nil, ""
				}
				m.Losses = nil
				line := fmt.Sprintf("\n%s on %s data: held-out accuracy %.3f on %d images", m.Engine, m.Source, m.TestAccuracy, m.TestRows)
				if m.WorldSize > 1 {
					line += fmt.Sprintf(", %d ranks (%s)", m.WorldSize, m.Backend)
				}
				if m.ResumedFrom > 0 {
					line += fmt.Sprintf(", resumed from step %d", m.ResumedFrom)
				}
				return m, line
			})
		},
	}
	f := c.Flags()
	f.String("engine", d.Engine, "go (built in) or pytorch (python3 with torch)")
	f.Int("steps", d.Steps, "SGD steps")
	f.Int("checkpoint-every", d.Every, "checkpoint (unit) every K steps; must divide --steps")
	f.Int64("seed", d.Seed, "seed of the initial weights and the minibatches")
	f.Int("hidden", d.Hidden, "hidden units")
	f.Int("batch", d.Batch, "minibatch size")
	f.Float64("lr", d.LR, "learning rate")
	f.Int("shards", 0, "split each batch into N parts summed in order, as N ranks do (default: WORLD_SIZE)")
	f.String("data", train.DataAuto, "auto (sklearn's digits where installed, else generated), digits, or generated")
	f.String("out", "", "output directory (relative to $KILN_OUT when set)")
	f.String("resume", "", "continue the run in this directory from its last checkpoint (relative to $KILN_OUT when set)")
	return c
}

// resumer runs a training job by resuming it.
type resumer struct{ train.Workload }

func (r resumer) Run(ctx context.Context, job units.Job, out string, progress units.Progress) error {
	return r.Resume(ctx, job, out, progress)
}

// resumedJob is DIR/job.json, refusing spec flags given that say otherwise.
func resumedJob(cmd *cobra.Command, dir string, p train.Params) (units.Job, error) {
	job, err := units.ReadJob(dir)
	if err != nil {
		return units.Job{}, err
	}
	var have train.Params
	if job.Kind != train.Kind || job.DecodeParams(&have) != nil {
		return units.Job{}, fmt.Errorf("--resume %s: job.json is not a training job", dir)
	}
	f := cmd.Flags()
	for _, c := range []struct {
		flag      string
		got, want any
	}{
		{"engine", p.Engine, have.Engine}, {"steps", p.Steps, have.Steps}, {"checkpoint-every", p.Every, have.Every},
		{"seed", p.Seed, have.Seed}, {"hidden", p.Hidden, have.Hidden}, {"batch", p.Batch, have.Batch},
		{"lr", p.LR, have.LR}, {"shards", p.Shards, have.Shards},
	} {
		// NB: shards 0 here is a single process, which may resume any run (it loops over the parts).
		if (f.Changed(c.flag) || c.flag == "shards" && p.Shards != 0) && c.got != c.want {
			return units.Job{}, usagef("--%s %v: the run in %s has %v (drop the flag to resume it)", c.flag, c.got, dir, c.want)
		}
	}
	return job, nil
}

// runRank runs rank N > 0 of a data-parallel run and prints its report.
func runRank(cmd *cobra.Command, w train.Workload, job units.Job, dir string, resume bool) error {
	asJSON, err := outputJSON(cmd)
	if err != nil {
		return err
	}
	if resume {
		err = w.Resume(cmd.Context(), job, dir, nil)
	} else {
		err = w.Run(cmd.Context(), job, dir, nil)
	}
	if err != nil {
		return err
	}
	rep, err := train.ReadRankReport(dir, w.Dist.Rank)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), rep)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "train rank %d of %d (%s): steps %d to %d, loss %.4f, weights %s\n", rep.Rank, rep.WorldSize, rep.Backend, rep.Start, rep.Steps, rep.Loss, rep.WeightsSHA256)
	return nil
}
