package main

import (
	"fmt"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/demo"
)

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded default: a single-validator chain with accounts transacting, then a summary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			keep, _ := cmd.Flags().GetBool("keep")
			o := demo.Options{Progress: cmd.ErrOrStderr(), Keep: keep}
			o.Accounts, _ = cmd.Flags().GetInt("accounts")
			o.Transfers, _ = cmd.Flags().GetInt("transfers")
			o.BlockTime, _ = cmd.Flags().GetDuration("block-time")
			if keep {
				o.Home, _ = cmd.Flags().GetString("home")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			s, err := demo.Run(ctx, o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "Kiln demo summary")
			fmt.Fprintf(tw, "chain\t%s (1 validator, in this process)\n", s.ChainID)
			fmt.Fprintf(tw, "accounts\t%d\n", s.Accounts)
			fmt.Fprintf(tw, "txs committed\t%d in %d blocks, %s (%.1f tx/s)\n", s.TxsCommitted, s.Blocks, time.Duration(s.DurationMS)*time.Millisecond, s.TxPerSecond)
			fmt.Fprintf(tw, "overspend refused\t%v\n", s.OverspendRefused)
			fmt.Fprintf(tw, "moved\t%d ukiln\n", s.Moved)
			fmt.Fprintf(tw, "fees paid by accounts\t%d ukiln (community pool now %d ukiln)\n", s.FeesPaid, s.CommunityPool)
			fmt.Fprintf(tw, "supply before / after\t%s / %s\n", s.SupplyBefore, s.SupplyAfter)
			fmt.Fprintf(tw, "supply conserved\t%v\n", s.SupplyConserved)
			fmt.Fprintf(tw, "balances as expected\t%v\n", s.BalancesMatch)
			return tw.Flush()
		},
	}
	cmd.Flags().Bool("keep", false, "leave the network running (in --home) until Ctrl-C")
	cmd.Flags().Int("accounts", 5, "tenant accounts")
	cmd.Flags().Int("transfers", 10, "transfers each account sends")
	cmd.Flags().Duration("block-time", 200*time.Millisecond, "block time of the demo chain")
	return cmd
}
