package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/work/train"
)

func newWorkTrainCmd() *cobra.Command {
	d := train.DefaultParams()
	c := &cobra.Command{
		Use:   "train --out DIR",
		Short: "Train an MLP on 8x8 digits (Go or PyTorch), checkpoints every K steps forming a hash chain",
		Long: `Train a small MLP on 8x8 digits: scikit-learn's digits set where python3-sklearn is
installed (else a generated set of the same shape; --data chooses), with the Go trainer in
this binary or PyTorch (--engine pytorch, Debian python3-torch, CPU). A checkpoint every K
steps carries the SHA-256 of the one before: DIR/step-NNNNNN.kckpt, DIR/units.json, DIR/job.json (with
the data and scripts pinned), DIR/metrics.json (losses, held-out accuracy). A verifier
replays any segment from its checkpoint (kiln work verify DIR).`,
		Example: `  kiln work train --out /tmp/t
  kiln work train --engine pytorch --steps 2000 --checkpoint-every 20 --out /tmp/pt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			p := d
			p.Engine, _ = f.GetString("engine")
			p.Steps, _ = f.GetInt("steps")
			p.Every, _ = f.GetInt("checkpoint-every")
			p.Seed, _ = f.GetInt64("seed")
			p.Hidden, _ = f.GetInt("hidden")
			p.Batch, _ = f.GetInt("batch")
			p.LR, _ = f.GetFloat64("lr")
			source, _ := f.GetString("data")
			if source != train.DataAuto && source != train.DataDigits && source != train.DataGenerated {
				return usagef("--data %q: want %s, %s or %s", source, train.DataAuto, train.DataDigits, train.DataGenerated)
			}
			q := p
			q.Source = train.DataGenerated // checked once the data is found
			if err := q.Validate(); err != nil {
				return usageErr(err)
			}
			out, _ := f.GetString("out")
			dir, err := outDir(out)
			if err != nil {
				return err
			}
			job, err := train.NewJob(p, source, dir) // NB: data not found is a failure (1)
			if err != nil {
				return err
			}
			return runUnits(cmd, train.Workload{}, job, dir, func(dir string) (any, string) {
				var m train.Metrics
				b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
				if err != nil || json.Unmarshal(b, &m) != nil {
					return nil, ""
				}
				m.Losses = nil
				return m, fmt.Sprintf("\n%s on %s data: held-out accuracy %.3f on %d images", m.Engine, m.Source, m.TestAccuracy, m.TestRows)
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
	f.String("data", train.DataAuto, "auto (sklearn's digits where installed, else generated), digits, or generated")
	f.String("out", "", "output directory (relative to $KILN_OUT when set)")
	return c
}
