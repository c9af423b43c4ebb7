package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/gpu/gpucmd"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/sdl/sdlcmd"
)

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Execute runs the CLI and returns the process exit status.
func Execute(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var se *sdlcmd.ExitError
	if errors.As(err, &se) {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return se.Code
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "Error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	return 1
}

func defaultHome() string {
	if h := os.Getenv("KILN_HOME"); h != "" {
		return h
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return ".kiln"
	}
	return filepath.Join(dir, ".kiln")
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Kiln: a decentralized GPU compute network",
		Long:          "Kiln is a decentralized GPU compute network: a CometBFT proof-of-stake ledger for money, market and proofs, with providers running tenants' workloads off-chain.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("home", defaultHome(), "directory for config, data and keys")
	root.PersistentFlags().StringP("output", "o", "text", "output format: text or json")
	// Usage errors (unknown flag, bad flag value) exit 2, apart from refusals (1).
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: 2, err: err} })
	root.AddCommand(sdlcmd.NewCommand(), gpucmd.NewCommand(), newDeployCmd(), newLeaseCmd(), newFetchCmd(), newWorkCmd())
	root.AddCommand(newInitCmd(), newNodeCmd(), newKeysCmd(), newTxCmd(), newQueryCmd(),
		newLocalnetCmd(), newDemoCmd(), newBenchCmd(), newStatusCmd(), newVersionCmd())
	root.AddCommand(newProviderCmd())
	return root
}

func homeFlag(cmd *cobra.Command) string {
	h, _ := cmd.Flags().GetString("home")
	return h
}

// outputJSON reports whether --output json was asked for; it refuses unknown formats.
func outputJSON(cmd *cobra.Command) (bool, error) {
	o, _ := cmd.Flags().GetString("output")
	switch o {
	case "json":
		return true, nil
	case "text", "":
		return false, nil
	}
	return false, fmt.Errorf("--output %q: want text or json", o)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func addKeyringFlags(cmd *cobra.Command) {
	cmd.Flags().String("keyring-backend", keyring.BackendFile, "keyring backend: file (encrypted) or test (unencrypted, development only)")
}

func addNodeFlags(cmd *cobra.Command) {
	cmd.Flags().String("node", client.DefaultNode, "RPC address of a Kiln node")
}

func newClient(cmd *cobra.Command) (*client.Client, error) {
	n, _ := cmd.Flags().GetString("node")
	return client.New(n)
}

// passphraseFunc reads the keyring passphrase from KILN_KEYRING_PASSPHRASE, a terminal
// prompt, or the first line of standard input, once per command.
func passphraseFunc(cmd *cobra.Command) func() (string, error) {
	var cached *string
	return func() (string, error) {
		if cached != nil {
			return *cached, nil
		}
		var p string
		if env, ok := os.LookupEnv("KILN_KEYRING_PASSPHRASE"); ok {
			p = env
		} else if term.IsTerminal(int(os.Stdin.Fd())) {
			fmt.Fprint(cmd.ErrOrStderr(), "Keyring passphrase: ")
			b, err := term.ReadPassword(int(os.Stdin.Fd()))
			fmt.Fprintln(cmd.ErrOrStderr())
			if err != nil {
				return "", err
			}
			p = string(b)
		} else {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && line == "" {
				return "", errors.New("no passphrase: set KILN_KEYRING_PASSPHRASE or use --keyring-backend test")
			}
			p = strings.TrimRight(line, "\r\n")
		}
		cached = &p
		return p, nil
	}
}

func openKeyring(cmd *cobra.Command) (*keyring.Keyring, error) {
	backend, _ := cmd.Flags().GetString("keyring-backend")
	return keyring.Open(homeFlag(cmd), backend, passphraseFunc(cmd))
}
