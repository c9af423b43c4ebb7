package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/node"
)

func newInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a single-validator home: config, genesis, validator key and a funded dev key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			chainID, _ := cmd.Flags().GetString("chain-id")
			moniker, _ := cmd.Flags().GetString("moniker")
			bt, _ := cmd.Flags().GetDuration("block-time")
			backend, _ := cmd.Flags().GetString("keyring-backend")
			challenges, _ := cmd.Flags().GetBool("challenges")
			if bt <= 0 || bt > time.Minute {
				return usagef("--block-time %s: must be > 0 and <= 1m", bt)
			}
			if gen, _ := cmd.Flags().GetString("genesis"); gen != "" {
				pvKey, _ := cmd.Flags().GetString("priv-validator-key")
				res, err := node.InitFromGenesis(node.InitFromGenesisOptions{Home: homeFlag(cmd), Genesis: gen, Moniker: moniker, BlockTime: bt, PrivValidatorKey: pvKey})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Initialized %s for chain %s from %s\nnode id:     %s\nvalidator:   %s\n", homeFlag(cmd), res.ChainID, gen, res.NodeID, res.ValidatorAddress)
				return nil
			}
			res, err := node.Init(node.InitOptions{Home: homeFlag(cmd), ChainID: chainID, Moniker: moniker, BlockTime: bt,
				KeyringBackend: backend, Passphrase: passphraseFunc(cmd), Challenges: challenges})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Initialized %s for chain %s (block time %s)\n", homeFlag(cmd), chainID, bt)
			fmt.Fprintf(out, "node id:     %s\nvalidator:   %s\n", res.NodeID, res.ValidatorAddress)
			fmt.Fprintf(out, "dev account: %s (funded with %d ukiln)\n", res.DevAddress, node.DevFunds)
			fmt.Fprintf(out, "dev mnemonic (write it down; it is the only way to recover the key):\n%s\n", res.DevMnemonic)
			return nil
		},
	}
	cmd.Flags().String("chain-id", "kiln-local", "chain identifier")
	cmd.Flags().String("moniker", "kiln-node", "validator name")
	cmd.Flags().Duration("block-time", node.DefaultBlockTime, "target block time (CometBFT timeout_commit)")
	cmd.Flags().Bool("challenges", false, "turn liveness and hardware challenges on in the genesis (the liveness module's defaults; providers must run a daemon that answers them, on the hardware they declare)")
	cmd.Flags().String("genesis", "", "start from this genesis (kiln export's) instead of writing a new one; --chain-id and --challenges do not apply")
	cmd.Flags().String("priv-validator-key", "", "with --genesis: the validator's priv_validator_key.json to sign with (default: a new key, a full node)")
	addKeyringFlags(cmd)
	return cmd
}
