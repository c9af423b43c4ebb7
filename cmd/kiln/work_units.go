package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/units"
)

// workSummary is what `kiln work render|train|matmul --dir` print.
type workSummary struct {
	Kind    string  `json:"kind"`
	Dir     string  `json:"dir"`
	Units   int     `json:"units"`
	Root    string  `json:"root"` // the Merkle root a provider commits
	Seconds float64 `json:"seconds"`
	Extra   any     `json:"metrics,omitempty"`
}

// runUnits runs job with w into dir (relative to $KILN_OUT when set), showing progress on
// standard error, and prints the summary.
func runUnits(cmd *cobra.Command, w units.Workload, job units.Job, dir string, extra func(dir string) (any, string)) error {
	asJSON, err := outputJSON(cmd)
	if err != nil {
		return err
	}
	pr := newProgress(cmd.ErrOrStderr())
	start := time.Now()
	err = w.Run(cmd.Context(), job, dir, func(done, total int, what string) {
		pr.Waiting(fmt.Sprintf("%s: %d/%d units (%s)", w.Kind(), done, total, what))
	})
	pr.Done()
	if err != nil {
		return err
	}
	set, err := units.Read(dir)
	if err != nil {
		return err
	}
	root, err := units.Root(dir)
	if err != nil {
		return err
	}
	sum := workSummary{Kind: w.Kind(), Dir: dir, Units: len(set), Root: fmt.Sprintf("%x", root), Seconds: time.Since(start).Seconds()}
	line := ""
	if extra != nil {
		sum.Extra, line = extra(dir)
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), sum)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d units in %s (%.1f s), root %s%s\n", sum.Kind, sum.Units, dir, sum.Seconds, sum.Root, line)
	return nil
}

// outDir resolves a --out/--dir directory: relative to $KILN_OUT when set (a provider's
// job), created if absent.
func outDir(dir string) (string, error) {
	if dir == "" {
		return "", usagef("--out DIR is required")
	}
	if d := os.Getenv("KILN_OUT"); d != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(d, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

func runMatmulUnits(cmd *cobra.Command, n int, seed int64, dir string) error {
	br, _ := cmd.Flags().GetInt("block-rows")
	if br == 0 {
		br = matmul.DefaultBlockRows(n)
	}
	job, err := matmul.NewJob(matmul.UnitParams{N: n, Seed: seed, BlockRows: br})
	if err != nil {
		return usageErr(err)
	}
	if dir, err = outDir(dir); err != nil {
		return err
	}
	return runUnits(cmd, matmul.Workload{}, job, dir, nil)
}
