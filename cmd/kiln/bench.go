package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/bench"
	"github.com/kiln-network/kiln/sim"
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
	mdef := sim.DefaultBenchOptions()
	mkt := &cobra.Command{
		Use:   "market",
		Short: "Orders matched per second and the per-order matching cost at 1,000,000 GPUs vs 40,000, on the chain's own market code",
		Long: `Build two synthetic networks (--small and --large GPUs) on the chain's own market code, run the
same order load on each (--blocks of --orders-per-block orders: placed, bid on from the
free-capacity index, leased, run and finished), then have the market match a batch of
fresh orders on each, timed alone in the matching thread's CPU time. Reports orders matched per second, the
large/small ratio of the per-order matching cost (1 when matching does not grow with the
network), the whole path's CPU time per order, and peak memory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			o := mdef
			o.Small, _ = cmd.Flags().GetInt("small")
			o.Large, _ = cmd.Flags().GetInt("large")
			o.Blocks, _ = cmd.Flags().GetInt("blocks")
			o.OrdersPerBlock, _ = cmd.Flags().GetFloat64("orders-per-block")
			o.BatchOrders, _ = cmd.Flags().GetInt("batch")
			o.Progress = cmd.ErrOrStderr()
			res, err := sim.Bench(o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "matching      %8.1f orders/s at %d GPUs, %.1f at %d (target >= 10000)\n", res.OrdersPerSecond, res.Large.GPUs, res.OrdersPerSecondSmall, res.Small.GPUs)
			fmt.Fprintf(out, "cost ratio    %8.3f (%.1f us vs %.1f us per order; target <= 2)\n", res.CostRatio, res.MatchMicrosLarge, res.MatchMicrosSmall)
			fmt.Fprintf(out, "full path     %8.1f us per leased order at %d GPUs, %.1f at %d (ratio %.3f)\n", res.FullPathMicrosLarge, res.Large.GPUs, res.FullPathMicrosSmall, res.Small.GPUs, res.FullPathRatio)
			fmt.Fprintf(out, "peak memory   %8.0f MiB\n", res.PeakRSSMiB)
			return nil
		},
	}
	mkt.Flags().Int("small", mdef.Small, "GPUs of the small network")
	mkt.Flags().Int("large", mdef.Large, "GPUs of the large network")
	mkt.Flags().Int("blocks", mdef.Blocks, "blocks of load each network runs before the timed batch")
	mkt.Flags().Float64("orders-per-block", mdef.OrdersPerBlock, "orders per block of that load")
	mkt.Flags().Int("batch", mdef.BatchOrders, "fresh orders matched, timed, on each network")
	b.AddCommand(ledger, network, mkt, newBenchInferCmd(), newBenchVerifyCmd(), newBenchClusterCmd())
	return b
}
