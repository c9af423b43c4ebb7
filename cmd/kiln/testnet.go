package main

import (
	"context"
	"fmt"
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
		Short: "Start N validators as separate processes, send load, perturb the network (kill -9, SIGSTOP, a 1-vs-3 partition in network namespaces, 100 ms peer latency, a double-signing twin of a validator, a late state-sync joiner) and check that nothing was lost, applied twice or forked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			o := testnet.Options{Bin: bin, Log: cmd.ErrOrStderr()}
			o.Scenario, _ = cmd.Flags().GetString("scenario")
			o.Dir, _ = cmd.Flags().GetString("dir")
			o.Validators, _ = cmd.Flags().GetInt("validators")
			o.Duration, _ = cmd.Flags().GetDuration("duration")
			o.BlockTime, _ = cmd.Flags().GetDuration("block-time")
			o.Accounts, _ = cmd.Flags().GetInt("accounts")
			o.WatcherGrace, _ = cmd.Flags().GetDuration("watcher-grace")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, 9*time.Minute)
			defer cancel()
			res, err := testnet.Run(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s, %d validators): sent %d, acked %d, applied %d, lost %d, applied twice %d, forks %d, balances match %v, supply conserved %v; recovered in %.1fs; tps %.1f / %.1f / %.1f (before/during/after)\n",
					res.Scenario, res.Network, res.Validators, res.TxsSent, res.TxsAcked, res.TxsApplied, res.TxsLost, res.TxsAppliedTwice, res.Forks, res.BalancesMatch, res.SupplyConserved, res.RecoverS, res.TPSBefore, res.TPSDuring, res.TPSAfter)
				if b := res.Byzantine; b != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "  double-signer %s: signed twice at height %d; evidence (reported by the %s) committed at %d; slashed %d of %d (%d bps), jailed %v, tombstoned %v; out of the validator set from %d\n",
						b.Validator, b.InfractionHeight, b.ReportedBy, b.EvidenceHeight, b.Slashed, b.StakeBefore, b.SlashBps, b.Jailed, b.Tombstoned, b.RemovedAt)
				}
				for _, p := range res.Problems {
					fmt.Fprintf(cmd.OutOrStdout(), "  problem: %s\n", p)
				}
			}
			if !res.OK() {
				return fmt.Errorf("scenario %s: the history check failed", res.Scenario)
			}
			return nil
		},
	}
	run.Flags().String("scenario", "", fmt.Sprintf("fault to inject: one of %v", testnet.Scenarios))
	run.Flags().String("dir", "", "where the nodes' homes go (default: a temporary directory, removed after)")
	run.Flags().Int("validators", 4, "number of validators")
	run.Flags().Duration("duration", 30*time.Second, "load run: a third before, during and after the fault")
	run.Flags().Duration("block-time", 300*time.Millisecond, "target block time")
	run.Flags().Int("accounts", 4, "load generator accounts")
	run.Flags().Duration("watcher-grace", 30*time.Second, "byzantine: how long the validators have to report the double-sign themselves before the harness's watcher does")
	tn.AddCommand(run)
	return tn
}
