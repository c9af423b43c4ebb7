package main

import (
	"fmt"
	"log/slog"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/demo"
	"github.com/kiln-network/kiln/x/market"
)

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded default: a chain, three providers and a tenant running jobs and a service, then a summary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			keep, _ := cmd.Flags().GetBool("keep")
			o := demo.Options{Progress: cmd.ErrOrStderr(), Keep: keep}
			o.BlockTime, _ = cmd.Flags().GetDuration("block-time")
			o.Pricing, _ = cmd.Flags().GetString("pricing")
			o.Cheaters, _ = cmd.Flags().GetInt("cheaters")
			o.Cluster, _ = cmd.Flags().GetBool("cluster")
			if v, _ := cmd.Flags().GetBool("verbose"); v {
				o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if keep {
				o.Home, _ = cmd.Flags().GetString("home")
			}
			o.ExplorerListen, _ = cmd.Flags().GetString("explorer-listen")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			printed := false
			// NB: with --keep the summary is printed as soon as the jobs are done; the
			// network then serves until SIGINT or SIGTERM.
			o.Kept = func(s demo.Summary) {
				printed = true
				if asJSON {
					printJSON(cmd.OutOrStdout(), s)
					return
				}
				printSummary(cmd, s)
			}
			s, err := demo.Run(ctx, o)
			if err != nil {
				return err
			}
			if printed {
				return nil
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			printSummary(cmd, s)
			return nil
		},
	}
	cmd.Flags().Bool("verbose", false, "log what the node and the provider daemons do")
	cmd.Flags().Bool("keep", false, "leave the network running (in --home) until Ctrl-C, with the explorer serving it; the summary (explorer_url, metrics_url) is printed once the jobs are done")
	cmd.Flags().String("explorer-listen", "", "with --keep, where the explorer listens (HOST:PORT; default a free loopback port)")
	cmd.Flags().Duration("block-time", 200*time.Millisecond, "block time of the demo chain")
	cmd.Flags().String("pricing", "auction", "pricing mode of every order: "+strings.Join(market.ModeNames(), ", "))
	cmd.Flags().Bool("cluster", false, "instead of the jobs and service: three 1-GPU providers and one 3-member cluster training data-parallel (kiln work train) over a WireGuard overlay; needs root, iproute2 and /dev/net/tun")
	cmd.Flags().Int("cheaters", 0, "providers that fake part of their work (caught by the demo's verifier, slashed, their tenant refunded)")
	return cmd
}

// printSummary writes the demo's summary as tables.
func printSummary(cmd *cobra.Command, s demo.Summary) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "\nKiln demo: chain %s, %d providers (declared inventories: this machine has no GPU), 1 tenant, pricing %s\n\n", s.ChainID, s.Providers, s.Pricing)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tLEASE\tGPU\tPRICE/BLK\tBLOCKS→LEASE\tMS→LEASE\tMS→RUNNING\tSTATE\tCLOSED\tPAID\tFEES\tREFUND")
	for _, j := range s.Jobs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\n", j.Name, j.Lease, j.GPU, j.PricePerBlock,
			j.OrderToLeaseBlks, j.OrderToLeaseMS, j.OrderToRunningMS, j.State, j.CloseReason, j.Paid, j.Fees, j.Refunded)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, j := range s.Jobs {
		if j.Result != "" {
			fmt.Fprintf(w, "%s: %s\n", j.Name, j.Result)
		}
	}
	if cj := s.Cluster; cj != nil {
		fmt.Fprintf(w, "cluster %d: %d members on %d providers, %s, epoch %d, %d ranks ran to completion (%s engine), order -> every rank running %d ms; rank 0's model: %s (%d checkpoints re-executed)\n",
			cj.Order, cj.Members, s.ClusterProviders, cj.State, cj.Epoch, s.ClusterMembersRan, cj.Engine, cj.OrderToAllRunningMS, cj.Verdict, cj.UnitsChecked)
	}
	fmt.Fprintf(w, "\norders %d, leases %d, batch jobs completed %d, services reached %d\n", s.Orders, s.Leases, s.JobsCompleted, s.ServicesReached)
	fmt.Fprintf(w, "order→lease p50 %.0f blocks (%.0f ms), order→running p50 %.0f ms\n", s.OrderToLeaseBlocksP50, s.OrderToLeaseMSP50, s.OrderToRunningMSP50)
	fmt.Fprintf(w, "paid to providers %d ukiln, protocol fees %d ukiln, refunded %d ukiln\n", s.PaidToProviders, s.ProtocolFees, s.Refunded)
	fmt.Fprintf(w, "supply before %s, after %s; every balance summed (module accounts included) before %s, after %s: conserved %v\n",
		s.SupplyBefore, s.SupplyAfter, s.BalancesBefore, s.BalancesAfter, s.SupplyConserved)
	for _, p := range s.AccountingProblems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	fmt.Fprintf(w, "%d blocks in %s\n", s.Blocks, time.Duration(s.DurationMS)*time.Millisecond)
	fmt.Fprintf(w, "metrics: node %s, providers %s\n", s.MetricsURL, strings.Join(s.ProviderMetricsURLs, " "))
	if s.ExplorerURL != "" {
		fmt.Fprintf(w, "explorer: %s (the network keeps running; Ctrl-C to stop)\n", s.ExplorerURL)
	}
}
