package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/bench"
)

func newBenchCmd() *cobra.Command {
	b := &cobra.Command{Use: "bench", Short: "Benchmarks measured against a baseline in the same run"}
	ledger := &cobra.Command{
		Use:   "ledger",
		Short: "Committed tx/s of Kiln bank transfers vs CometBFT's kvstore app, same consensus settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			o := bench.DefaultLedgerOptions()
			o.Duration, _ = cmd.Flags().GetDuration("duration")
			o.Warmup, _ = cmd.Flags().GetDuration("warmup")
			o.Clients, _ = cmd.Flags().GetInt("clients")
			o.BlockTime, _ = cmd.Flags().GetDuration("block-time")
			o.Progress = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := bench.Ledger(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kvstore  %8.1f tx/s  p50 %6.1f ms  p99 %6.1f ms\n", res.KvstoreTPS, res.Kvstore.P50ms, res.Kvstore.P99ms)
			fmt.Fprintf(cmd.OutOrStdout(), "kiln     %8.1f tx/s  p50 %6.1f ms  p99 %6.1f ms\n", res.KilnTPS, res.P50ms, res.P99ms)
			fmt.Fprintf(cmd.OutOrStdout(), "ratio    %.3f (target >= %.1f)\n", res.Ratio, res.Target)
			return nil
		},
	}
	d := bench.DefaultLedgerOptions()
	ledger.Flags().Duration("duration", d.Duration, "measured window per chain")
	ledger.Flags().Duration("warmup", d.Warmup, "load before the window opens")
	ledger.Flags().Int("clients", d.Clients, "concurrent submitting clients")
	ledger.Flags().Duration("block-time", d.BlockTime, "block time (timeout_commit) of both chains")
	network := &cobra.Command{
		Use:   "network",
		Short: "Order→lease (blocks) and order→running (ms) over --runs demo networks, and data-plane throughput vs raw TCP",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			runs, _ := cmd.Flags().GetInt("runs")
			size, _ := cmd.Flags().GetInt64("dataplane-mib")
			rounds, _ := cmd.Flags().GetInt("dataplane-rounds")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := bench.Network(ctx, runs, rounds, size<<20, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "order→lease   p50 %.0f blocks, max %.0f (target <= 2)\n", res.OrderToLeaseBlocksP50, res.OrderToLeaseBlocksMax)
			fmt.Fprintf(cmd.OutOrStdout(), "order→running p50 %.0f ms, max %.0f ms (target <= 5000)\n", res.OrderToRunningMSP50, res.OrderToRunningMSMax)
			fmt.Fprintf(cmd.OutOrStdout(), "data plane    median ratio %.2f of %d rounds %v (target >= 0.5) on %d cores\n", res.DataPlaneRatio, res.DataPlaneRounds, res.DataPlaneRatios, res.MachineCores)
			fmt.Fprintf(cmd.OutOrStdout(), "              median round: %s\n", res.DataPlane)
			return nil
		},
	}
	network.Flags().Int("runs", 3, "demo networks to run")
	network.Flags().Int64("dataplane-mib", 64, "MiB moved each way through the data plane")
	network.Flags().Int("dataplane-rounds", 5, "data plane rounds; the median ratio is reported")
	b.AddCommand(ledger, network, newBenchVerifyCmd())
	return b
}
