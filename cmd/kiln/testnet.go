package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/testnet"
)

func newTestnetCmd() *cobra.Command {
	tn := &cobra.Command{Use: "testnet", Short: "Fault scenarios against a real multi-process network"}
	run := &cobra.Command{
		Use:   "run --scenario S",
		Short: "Start N validators as separate processes, send load, perturb the network (kill -9, SIGSTOP, a 1-vs-3 or 2-vs-2 partition and 10% packet loss in network namespaces, 100 ms peer latency, a validator's clock an hour off, a double-signing twin of a validator, a late state-sync joiner) and check that nothing was lost, applied twice or forked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := testnetOptions(cmd)
			if err != nil {
				return err
			}
			o.Scenario, _ = cmd.Flags().GetString("scenario")
			o.WatcherGrace, _ = cmd.Flags().GetDuration("watcher-grace")
			o.JoinHeight, _ = cmd.Flags().GetInt64("join-height")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The run, plus the time to build the chain to --join-height at 100 blocks/s.
			ctx, cancel := context.WithTimeout(ctx, 9*time.Minute+time.Duration(o.JoinHeight)*10*time.Millisecond)
			defer cancel()
			res, err := testnet.Run(ctx, o)
			if err != nil {
				return err
			}
			return report(cmd, res)
		},
	}
	run.Flags().String("scenario", "", fmt.Sprintf("fault to inject: one of %v", testnet.Scenarios))
	run.Flags().Duration("duration", 30*time.Second, "load run: a third before, during and after the fault")
	run.Flags().Duration("watcher-grace", 30*time.Second, "byzantine: how long the validators have to report the double-sign themselves before the harness's watcher does")
	run.Flags().Int64("join-height", 0, "statesync: build the chain to this height before the load and the joiner start (with a short --block-time)")
	testnetFlags(run)

	soak := &cobra.Command{
		Use:   "soak --duration D",
		Short: "Run one network under load for D, cycling through kill -9, SIGSTOP, a 1-vs-3 partition, packet loss, clock skew and a 2-vs-2 partition (the faulted validator rotating), then check the whole history",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := testnetOptions(cmd)
			if err != nil {
				return err
			}
			o.Period, _ = cmd.Flags().GetDuration("period")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The soak itself, then up to 10 minutes to set up, settle and check.
			ctx, cancel := context.WithTimeout(ctx, o.Duration+10*time.Minute)
			defer cancel()
			res, err := testnet.Soak(ctx, o)
			if err != nil {
				return err
			}
			return report(cmd, res)
		},
	}
	soak.Flags().Duration("duration", 30*time.Minute, "how long the load and the perturbations run")
	soak.Flags().Duration("period", 15*time.Second, "how long each perturbation lasts (a quiet half period follows)")
	testnetFlags(soak)
	tn.AddCommand(run, soak)
	return tn
}

// testnetFlags adds the flags run and soak share.
func testnetFlags(c *cobra.Command) {
	c.Flags().String("dir", "", "where the nodes' homes go (default: a temporary directory, removed after)")
	c.Flags().Int("validators", 4, "number of validators")
	c.Flags().Duration("block-time", 300*time.Millisecond, "target block time")
	c.Flags().Int("accounts", 4, "load generator accounts")
}

// testnetOptions reads the shared flags.
func testnetOptions(cmd *cobra.Command) (testnet.Options, error) {
	bin, err := os.Executable()
	if err != nil {
		return testnet.Options{}, err
	}
	o := testnet.Options{Bin: bin, Log: cmd.ErrOrStderr()}
	o.Dir, _ = cmd.Flags().GetString("dir")
	o.Validators, _ = cmd.Flags().GetInt("validators")
	o.Duration, _ = cmd.Flags().GetDuration("duration")
	o.BlockTime, _ = cmd.Flags().GetDuration("block-time")
	o.Accounts, _ = cmd.Flags().GetInt("accounts")
	return o, nil
}

// report prints res (JSON with --output json) and fails unless it is OK.
func report(cmd *cobra.Command, res testnet.Result) error {
	asJSON, err := outputJSON(cmd)
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else {
		printResult(cmd.OutOrStdout(), res)
	}
	if !res.OK() {
		return fmt.Errorf("scenario %s: the history check failed", res.Scenario)
	}
	return nil
}

func printResult(w io.Writer, res testnet.Result) {
	fmt.Fprintf(w, "%s (%s, %d validators): sent %d (%d re-broadcasts), acked %d, applied %d, lost %d, applied twice %d, forks %d, balances match %v, supply conserved %v; recovered in %.1fs; tps %.1f / %.1f / %.1f (before/during/after)\n",
		res.Scenario, res.Network, res.Validators, res.TxsSent, res.TxsRebroadcast, res.TxsAcked, res.TxsApplied, res.TxsLost, res.TxsAppliedTwice, res.Forks, res.BalancesMatch, res.SupplyConserved, res.RecoverS, res.TPSBefore, res.TPSDuring, res.TPSAfter)
	fmt.Fprintf(w, "  market load: %d orders, %d leases (%d closed), %d paid past their close\n", res.Orders, res.Leases, res.LeasesClosed, res.LeasesOverpaid)
	for _, p := range res.Perturbations {
		fmt.Fprintf(w, "  at %6.1fs %-14s node%-2d recovered in %.1fs, %.1f tx/s during\n", p.AtS, p.Scenario, p.Node, p.RecoverS, p.TPSDuring)
	}
	if b := res.Byzantine; b != nil {
		fmt.Fprintf(w, "  double-signer %s: signed twice at height %d; evidence (reported by the %s) committed at %d; slashed %d of %d (%d bps), jailed %v, tombstoned %v; out of the validator set from %d\n",
			b.Validator, b.InfractionHeight, b.ReportedBy, b.EvidenceHeight, b.Slashed, b.StakeBefore, b.SlashBps, b.Jailed, b.Tombstoned, b.RemovedAt)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}
