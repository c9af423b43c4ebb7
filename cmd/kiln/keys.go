package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// errNoTerminal refuses a question that nobody can answer.
var errNoTerminal = errors.New("standard input is not a terminal to confirm on; pass --yes (-y) to go ahead")

// confirm asks question on out and reads the answer from in: true for y or yes (any
// case), false for anything else, an empty line or end of input. Without a terminal it
// asks nothing and returns errNoTerminal: a script must say --yes.
func confirm(in io.Reader, out io.Writer, terminal bool, question string) (bool, error) {
	if !terminal {
		return false, errNoTerminal
	}
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(out)
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

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
		Short: "Delete a key (asks first on a terminal; -y to skip the question, as scripts must)",
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
			if yes, _ := cmd.Flags().GetBool("yes"); !yes {
				q := fmt.Sprintf("Delete key %q (%s)? Only its mnemonic can bring it back. [y/N] ", info.Name, info.Address)
				ok, err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), term.IsTerminal(int(os.Stdin.Fd())), q)
				if err != nil {
					return fmt.Errorf("key %q not deleted: %w", info.Name, err)
				}
				if !ok {
					return &exitError{code: 1, err: fmt.Errorf("key %q not deleted", info.Name)}
				}
			}
			if err := kr.Delete(info.Name); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"deleted": info.Name, "address": info.Address})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted key %q (%s)\n", info.Name, info.Address)
			return nil
		},
	}
	del.Flags().BoolP("yes", "y", false, "delete without asking")
	for _, c := range []*cobra.Command{add, show, list, del} {
		addKeyringFlags(c)
		keys.AddCommand(c)
	}
	return keys
}
