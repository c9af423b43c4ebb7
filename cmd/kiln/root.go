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

// exitError carries a specific exit status: 1 for an operation refused or failed, 2
// for a usage error (the command line itself is wrong).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usagef returns a usage error (exit status 2).
func usagef(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// usageErr marks err, if any, as a usage error (exit status 2).
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: 2, err: err}
}

// cobraUsage holds the beginnings of cobra's own messages for a wrong command line,
// which it returns as plain errors.
var cobraUsage = []string{"unknown command ", "required flag(s) ", "unknown flag: ", "unknown shorthand flag: ",
	"flag needs an argument: ", "invalid argument ", "if any flags in the group "}

// exitStatus returns the exit status of a command's error: 2 for usage errors, the
// code an *exitError or *sdlcmd.ExitError carries, 1 otherwise.
func exitStatus(err error) int {
	var ee *exitError
	if errors.As(err, &ee) { // NB: first, so the outermost status wins
		return ee.code
	}
	var se *sdlcmd.ExitError
	if errors.As(err, &se) {
		return se.Code
	}
	for _, p := range cobraUsage {
		if strings.HasPrefix(err.Error(), p) {
			return 2
		}
	}
	return 1
}

// Execute runs the CLI and returns the process exit status.
func Execute(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "Error:", msg)
	}
	return exitStatus(err)
}

// strictUsage makes every command of the tree refuse a wrong command line with a
// usage error (exit 2) naming the command and its usage: a wrong number of
// arguments, and an unknown subcommand of a command that only groups others (cobra
// would print the group's help and exit 0).
func strictUsage(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictUsage(sub)
	}
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.SuggestionsMinimumDistance = 2
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			hint := ""
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usagef("unknown command %q for %q%s; see %s --help", args[0], cmd.CommandPath(), hint, cmd.CommandPath())
		}
		return
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ee *exitError
			var se *sdlcmd.ExitError
			if err == nil || errors.As(err, &ee) || errors.As(err, &se) {
				return err
			}
			return usagef("%s: %v (usage: %s)", cmd.CommandPath(), err, cmd.UseLine())
		}
	}
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
		newLocalnetCmd(), newTestnetCmd(), newDemoCmd(), newBenchCmd(), newStatusCmd(), newVersionCmd(), newSimCmd(), newStatsCmd(), newExplorerCmd(), newExportCmd())
	root.AddCommand(newProviderCmd(), newTEECmd(), newInferCmd(), newVerifierCmd())
	strictUsage(root)
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
	return false, usagef("--output %q: want text or json", o)
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
	if backend != keyring.BackendFile && backend != keyring.BackendTest {
		return nil, usagef("--keyring-backend %q: want %s or %s", backend, keyring.BackendFile, keyring.BackendTest)
	}
	return keyring.Open(homeFlag(cmd), backend, passphraseFunc(cmd))
}
