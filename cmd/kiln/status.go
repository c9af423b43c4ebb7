package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/app"
)

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's chain-id and latest height",
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
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"chain_id": st.ChainID, "height": st.Height})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "chain %s at height %d\n", st.ChainID, st.Height)
			return nil
		},
	}
	addNodeFlags(cmd)
	return cmd
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
