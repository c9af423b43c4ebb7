package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/node"
)

func newLocalnetCmd() *cobra.Command {
	ln := &cobra.Command{Use: "localnet", Short: "Run an N-validator network on loopback, one process per validator"}
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Write N validator homes sharing one genesis",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			dir, _ := cmd.Flags().GetString("dir")
			n, _ := cmd.Flags().GetInt("validators")
			chainID, _ := cmd.Flags().GetString("chain-id")
			bt, _ := cmd.Flags().GetDuration("block-time")
			res, err := node.InitLocalnet(node.LocalnetOptions{Dir: dir, Validators: n, ChainID: chainID, BlockTime: bt})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "localnet %s: %d validators in %s (dev account %s in %s)\n", res.ChainID, len(res.Nodes), dir, res.Dev, res.Nodes[0].Home)
			for _, n := range res.Nodes {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s  rpc %s  p2p %s\n", n.Name, n.RPC, n.P2P)
			}
			return nil
		},
	}
	initCmd.Flags().String("dir", "./localnet", "directory for the validators' homes")
	initCmd.Flags().Int("validators", 4, "number of validators")
	initCmd.Flags().String("chain-id", "kiln-localnet", "chain identifier")
	initCmd.Flags().Duration("block-time", node.DefaultBlockTime, "target block time")

	start := &cobra.Command{
		Use:   "start [--node N]",
		Short: "Start every validator of a localnet as its own process (Ctrl-C stops them), or with --node N start node N alone, detached",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			dir, _ := cmd.Flags().GetString("dir")
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if !cmd.Flags().Changed("node") {
				return node.StartLocalnet(ctx, bin, dir, cmd.OutOrStdout())
			}
			i, _ := cmd.Flags().GetInt("node")
			s, err := node.StartLocalnetNode(ctx, bin, dir, i)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			w := cmd.OutOrStdout()
			if s.StalePID != 0 {
				fmt.Fprintf(w, "%s: replaced a stale pid file (pid %d is gone)\n", s.Name, s.StalePID)
			}
			fmt.Fprintf(w, "%s: pid %d, rpc %s, log %s (stop it with: kill %d)\n", s.Name, s.PID, s.RPC, s.Log, s.PID)
			return nil
		},
	}
	start.Flags().String("dir", "./localnet", "directory written by localnet init")
	start.Flags().Int("node", 0, "start only node N (0-based), detached: it runs until stopped with kill, logging to DIR/nodeN/node.log")
	ln.AddCommand(initCmd, start)
	return ln
}
