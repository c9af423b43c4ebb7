package main

import (
	"fmt"

	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/node"
)

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export [--chain-id ID] [--out FILE]",
		Short: "Write the stopped node's whole state at its last committed height as the genesis of a new chain that continues it (chain upgrades; start its nodes with kiln init --genesis FILE)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			chainID, _ := cmd.Flags().GetString("chain-id")
			out, _ := cmd.Flags().GetString("out")
			doc, e, err := node.Export(homeFlag(cmd), chainID)
			if err != nil {
				return err
			}
			if out != "" {
				if err := doc.SaveAs(out); err != nil {
					return err
				}
			} else {
				b, err := cmtjson.MarshalIndent(doc, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %s at height %d: %d keys, app hash %X; chain %s starts at height %d\n",
				e.ChainID, e.Height, len(e.Pairs), []byte(e.AppHash), doc.ChainID, doc.InitialHeight)
			return nil
		},
	}
	cmd.Flags().String("chain-id", "", "the new chain's id (default: the exported chain's)")
	cmd.Flags().String("out", "", "write the genesis to FILE (default: standard output)")
	return cmd
}
