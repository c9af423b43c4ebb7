package main

import (
	"bufio"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newKeysCmd() *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "Manage account keys in the local keyring"}

	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a key (or recover one from a mnemonic with --recover)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			recover, _ := cmd.Flags().GetBool("recover")
			var mnemonic string
			if recover {
				fmt.Fprintln(cmd.ErrOrStderr(), "Enter the BIP-39 mnemonic:")
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				mnemonic = strings.TrimSpace(line)
				info, err := kr.Import(args[0], mnemonic)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), info)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", info.Name, info.Address)
				return nil
			}
			info, mnemonic, err := kr.Add(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"name": info.Name, "address": info.Address, "mnemonic": mnemonic})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n\nmnemonic (write it down; it is the only way to recover the key):\n%s\n", info.Name, info.Address, mnemonic)
			return nil
		},
	}
	add.Flags().Bool("recover", false, "read a mnemonic from standard input instead of creating one")

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a key's address",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			info, err := kr.Show(args[0])
			if err != nil {
				return err
			}
			if a, _ := cmd.Flags().GetBool("address"); a {
				fmt.Fprintln(cmd.OutOrStdout(), info.Address)
				return nil
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "name:    %s\naddress: %s\npubkey:  %X\n", info.Name, info.Address, info.PubKey)
			return nil
		},
	}
	show.Flags().BoolP("address", "a", false, "print only the address")

	list := &cobra.Command{
		Use:   "list",
		Short: "List keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			infos, err := kr.List()
			if err != nil {
				return err
			}
			if asJSON {
				if infos == nil {
					return printJSON(cmd.OutOrStdout(), []any{})
				}
				return printJSON(cmd.OutOrStdout(), infos)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tADDRESS")
			for _, i := range infos {
				fmt.Fprintf(tw, "%s\t%s\n", i.Name, i.Address)
			}
			return tw.Flush()
		},
	}

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			return kr.Delete(args[0])
		},
	}
	for _, c := range []*cobra.Command{add, show, list, del} {
		addKeyringFlags(c)
		keys.AddCommand(c)
	}
	return keys
}
