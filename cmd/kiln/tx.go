package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/inventory"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// txCmd builds a command that signs msgs built by build with the key named by the
// first argument (or --from) and waits for the transaction to commit.
func txCmd(use, short string, nArgs int, build func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.RangeArgs(nArgs-1, nArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			fromName, _ := cmd.Flags().GetString("from")
			switch {
			case fromName == "" && len(args) == nArgs:
				fromName, args = args[0], args[1:]
			case fromName != "" && len(args) == nArgs-1:
			default:
				return usagef("usage: %s %s (or --from KEY in place of FROM_KEY)", cmd.Parent().CommandPath(), use)
			}
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			key, info, err := kr.PrivKey(fromName)
			if err != nil {
				return err
			}
			msgs, err := build(cmd, info.Address, args)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if err := m.ValidateBasic(); err != nil {
					return err
				}
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			opts := client.SignOptions{}
			opts.ChainID, _ = cmd.Flags().GetString("chain-id")
			opts.Memo, _ = cmd.Flags().GetString("memo")
			if f, _ := cmd.Flags().GetString("fees"); f != "" {
				fee, err := types.ParseCoin(f)
				if err != nil {
					return usagef("--fees: %w", err)
				}
				opts.Fee = &fee
			}
			res, err := c.Send(cmd.Context(), ed25519.PrivateKey(key), opts, msgs...)
			var te *client.TxError
			if err != nil && !errors.As(err, &te) {
				return err
			}
			if asJSON {
				if perr := printJSON(cmd.OutOrStdout(), res); perr != nil {
					return perr
				}
			} else if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "committed tx %s at height %d\n", res.TxHash, res.Height)
			}
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	addKeyringFlags(cmd)
	addNodeFlags(cmd)
	cmd.Flags().String("chain-id", "", "chain-id to sign for (default: the node's)")
	cmd.Flags().String("fees", "", "fee to pay, e.g. 2000ukiln (default: the minimum for the tx's size)")
	cmd.Flags().String("memo", "", "memo attached to the transaction")
	cmd.Flags().String("from", "", "key to sign with (instead of the first argument)")
	return cmd
}

// parseAmount parses a command-line amount; a bad one is a usage error.
func parseAmount(s string) (types.Coin, error) {
	c, err := types.ParseCoin(s)
	if err != nil {
		return c, usageErr(err)
	}
	return c, usageErr(c.Validate())
}

func newTxCmd() *cobra.Command {
	txc := &cobra.Command{Use: "tx", Short: "Sign and broadcast transactions (each waits until committed)"}

	bankCmd := &cobra.Command{Use: "bank", Short: "Bank transactions"}
	bankCmd.AddCommand(txCmd("send FROM_KEY TO_ADDR AMOUNT", "Send coins, e.g. kiln tx bank send dev kiln1... 1000ukiln", 3,
		func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			to, err := types.ParseAddress(args[0])
			if err != nil {
				return nil, usageErr(err)
			}
			coins, err := types.ParseCoins(args[1])
			if err != nil {
				return nil, usageErr(err)
			}
			return []types.Msg{&bank.MsgSend{From: from, To: to, Amount: coins}}, nil
		}))

	stakingCmd := &cobra.Command{Use: "staking", Short: "Staking transactions"}
	createVal := txCmd("create-validator FROM_KEY AMOUNT", "Bond AMOUNT and register a validator with the consensus key --pubkey", 2,
		func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			amt, err := parseAmount(args[0])
			if err != nil {
				return nil, err
			}
			pk, _ := cmd.Flags().GetString("pubkey")
			pub, err := decodeKey(pk)
			if err != nil {
				return nil, usagef("--pubkey: %w", err)
			}
			moniker, _ := cmd.Flags().GetString("moniker")
			return []types.Msg{&staking.MsgCreateValidator{Operator: from, ConsPubKey: pub, Moniker: moniker, Amount: amt}}, nil
		})
	createVal.Flags().String("pubkey", "", "validator consensus ed25519 public key (base64 or hex); see priv_validator_key.json")
	createVal.Flags().String("moniker", "", "validator name")
	stakingCmd.AddCommand(createVal,
		txCmd("delegate FROM_KEY VALIDATOR_ADDR AMOUNT", "Bond stake to a validator", 3,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				val, err := types.ParseAddress(args[0])
				if err != nil {
					return nil, usageErr(err)
				}
				amt, err := parseAmount(args[1])
				return []types.Msg{&staking.MsgDelegate{Delegator: from, Validator: val, Amount: amt}}, err
			}),
		txCmd("undelegate FROM_KEY VALIDATOR_ADDR AMOUNT", "Start unbonding stake from a validator", 3,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				val, err := types.ParseAddress(args[0])
				if err != nil {
					return nil, usageErr(err)
				}
				amt, err := parseAmount(args[1])
				return []types.Msg{&staking.MsgUndelegate{Delegator: from, Validator: val, Amount: amt}}, err
			}),
		txCmd("unjail FROM_KEY", "Unjail your validator after its jail time", 1,
			func(_ *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
				return []types.Msg{&staking.MsgUnjail{Operator: from}}, nil
			}))

	regCmd := &cobra.Command{Use: "registry", Short: "Provider registry transactions"}
	register := txCmd("register-provider FROM_KEY", "Register as a provider with --inventory, --endpoint, --cert and --stake", 1,
		func(cmd *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
			m := &registry.MsgRegisterProvider{Owner: from}
			var err error
			if m.Endpoint, m.CertPEM, err = endpointAndCert(cmd, true); err != nil {
				return nil, err
			}
			invPath, _ := cmd.Flags().GetString("inventory")
			if invPath == "" {
				return nil, usagef("--inventory FILE is required")
			}
			if m.Inventory, err = inventory.Load(invPath); err != nil {
				return nil, err
			}
			st, _ := cmd.Flags().GetString("stake")
			if m.Stake, err = parseAmount(st); err != nil {
				return nil, usagef("--stake: %w", err)
			}
			return []types.Msg{m}, nil
		})
	register.Flags().String("inventory", "", "hardware inventory file (TOML or JSON)")
	register.Flags().String("endpoint", "", "provider API endpoint, https://HOST:PORT")
	register.Flags().String("cert", "", "provider TLS certificate (PEM file)")
	register.Flags().String("stake", "100000000ukiln", "stake to bond")
	update := txCmd("update-provider FROM_KEY", "Change a provider's endpoint, certificate or inventory, or add stake", 1,
		func(cmd *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
			m := &registry.MsgUpdateProvider{Owner: from}
			var err error
			if m.Endpoint, m.CertPEM, err = endpointAndCert(cmd, false); err != nil {
				return nil, err
			}
			if invPath, _ := cmd.Flags().GetString("inventory"); invPath != "" {
				inv, err := inventory.Load(invPath)
				if err != nil {
					return nil, err
				}
				m.Inventory = &inv
			}
			if st, _ := cmd.Flags().GetString("add-stake"); st != "" {
				c, err := parseAmount(st)
				if err != nil {
					return nil, usagef("--add-stake: %w", err)
				}
				m.AddStake = c.Amount
			}
			return []types.Msg{m}, nil
		})
	update.Flags().String("inventory", "", "new hardware inventory file (TOML or JSON)")
	update.Flags().String("endpoint", "", "new endpoint, https://HOST:PORT")
	update.Flags().String("cert", "", "new TLS certificate (PEM file)")
	update.Flags().String("add-stake", "", "stake to add, e.g. 1000000ukiln")
	regCmd.AddCommand(register, update,
		txCmd("deregister-provider FROM_KEY", "Remove your provider registration and unbond its stake", 1,
			func(_ *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
				return []types.Msg{&registry.MsgDeregisterProvider{Owner: from}}, nil
			}))

	txc.AddCommand(bankCmd, stakingCmd, regCmd, verifyTxCmd())
	txc.AddCommand(marketTxCmds()...)
	txc.AddCommand(inferTxCmds(), teeTxCmds())
	return txc
}

func endpointAndCert(cmd *cobra.Command, required bool) (string, []byte, error) {
	ep, _ := cmd.Flags().GetString("endpoint")
	certPath, _ := cmd.Flags().GetString("cert")
	if required && (ep == "" || certPath == "") {
		return "", nil, usagef("--endpoint and --cert are required")
	}
	var cert []byte
	if certPath != "" {
		var err error
		if cert, err = os.ReadFile(certPath); err != nil {
			return "", nil, fmt.Errorf("--cert: %w", err)
		}
	}
	return ep, cert, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	return nil, fmt.Errorf("want a 32-byte ed25519 key in hex or base64 (got %q)", s)
}
