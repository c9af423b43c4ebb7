package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/lightclient"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--verify --trust-height H --trust-hash HASH]",
		Short: "Show the node's chain-id and latest height; with --verify, the latest header (or --height's) verified by CometBFT's light client from a trusted header",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if verify, _ := cmd.Flags().GetBool("verify"); verify {
				return verifyStatus(cmd, st.ChainID, asJSON)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"chain_id": st.ChainID, "height": st.Height})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "chain %s at height %d\n", st.ChainID, st.Height)
			return nil
		},
	}
	addNodeFlags(cmd)
	cmd.Flags().Bool("verify", false, "verify the header with CometBFT's light client from --trust-height/--trust-hash")
	cmd.Flags().Int64("trust-height", 0, "with --verify: height of the trusted header")
	cmd.Flags().String("trust-hash", "", "with --verify: hash of the trusted header (hex)")
	cmd.Flags().Duration("trust-period", lightclient.DefaultTrustPeriod, "with --verify: how old the trusted header may be")
	cmd.Flags().StringSlice("witness", nil, "with --verify: RPC address of a node to cross-check headers with (repeatable; default: none, the node is its own witness)")
	cmd.Flags().Bool("sequential", false, "with --verify: verify every header from the trusted one (default: skipping)")
	cmd.Flags().Int64("height", 0, "with --verify: the height to verify (default: the latest)")
	return cmd
}

// verifyStatus runs the light client against --node.
func verifyStatus(cmd *cobra.Command, chainID string, asJSON bool) error {
	o := lightclient.Options{ChainID: chainID}
	o.Primary, _ = cmd.Flags().GetString("node")
	o.Witnesses, _ = cmd.Flags().GetStringSlice("witness")
	o.TrustHeight, _ = cmd.Flags().GetInt64("trust-height")
	o.TrustPeriod, _ = cmd.Flags().GetDuration("trust-period")
	o.Sequential, _ = cmd.Flags().GetBool("sequential")
	o.Height, _ = cmd.Flags().GetInt64("height")
	hs, _ := cmd.Flags().GetString("trust-hash")
	h, err := lightclient.ParseHash(hs)
	if err != nil {
		return usagef("--trust-hash: %v", err)
	}
	o.TrustHash = h
	res, err := lightclient.Verify(cmd.Context(), o)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(cmd.OutOrStdout(), res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "chain %s at height %d: header %s verified (%s, from trusted height %d, %d validators, %d witnesses)\napp hash %s (the state after block %d), time %s\n",
		res.ChainID, res.Height, res.Hash, res.Mode, res.TrustedHeight, res.Validators, res.Witnesses, res.AppHash, res.Height-1, res.Time.Format(time.RFC3339))
	return nil
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kiln %s (app protocol %d)\n", app.Version, app.AppVersion)
		},
	}
}
