package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/bench"
)

func newBenchVerifyCmd() *cobra.Command {
	d := bench.DefaultVerifyOptions()
	c := &cobra.Command{
		Use:   "verify",
		Short: "Detection rate, false positives and verifier overhead of spot-checking, per workload, cheat and faked fraction f, beside 1-(1-f)^s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			o := bench.DefaultVerifyOptions()
			o.Jobs, _ = cmd.Flags().GetInt("jobs")
			o.Samples, _ = cmd.Flags().GetUint32("samples")
			o.Fractions, _ = cmd.Flags().GetFloat64Slice("fractions")
			o.Seed, _ = cmd.Flags().GetUint64("seed")
			o.Progress = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := bench.Verify(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-8s %-14s %5s %6s %8s %9s %9s\n", "kind", "cheat", "f", "units", "caught", "analytic", "overhead")
			for _, r := range res.Rows {
				fmt.Fprintf(w, "%-8s %-14s %5.2f %6d %7.1f%% %8.1f%% %8.2f%%\n", r.Kind, r.Cheat, r.Fraction, r.Units, 100*r.Rate, 100*r.Analytic, 100*r.Overhead)
			}
			for _, k := range res.Kinds {
				fmt.Fprintf(w, "%-8s job %.2f CPU s, verify %.3f CPU s (overhead %.2f%%), honest jobs %d, false positives %d\n",
					k.Kind, k.JobCPUs, k.VerifyCPUs, 100*k.Overhead, k.HonestJobs, k.FalseReports)
			}
			fmt.Fprintf(w, "s=%d: detection %.2f%% (f >= 10%%), false positives %.2f%%, overhead %.2f%% (max over kinds), honest slashed %d\n",
				res.Samples, 100*res.DetectionRate, 100*res.FalsePositiveRate, 100*res.Overhead, res.HonestSlashed)
			return nil
		},
	}
	c.Flags().Int("jobs", d.Jobs, "jobs per kind, cheat and fraction (and honest jobs per kind)")
	c.Flags().Uint32("samples", d.Samples, "units sampled per job (the chain's sample_count)")
	c.Flags().Float64Slice("fractions", d.Fractions, "fractions of units a cheater fakes")
	c.Flags().Uint64("seed", d.Seed, "seed of the run")
	return c
}
