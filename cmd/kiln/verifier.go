package main

import (
	"fmt"
	"log/slog"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/verifier"
	"github.com/kiln-network/kiln/x/verify"
)

// newVerifierCmd is `kiln verifier`: run a verifier daemon.
func newVerifierCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "verifier", Short: "Run a verifier: re-execute sampled work, report cheats, sit on committees"}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the verifier daemon until interrupted",
		Long: "Answers the checks the chain assigns the --key account (register it first: kiln tx verify register-verifier):\n" +
			"fetches each sampled unit with its Merkle proof from the provider (mutual TLS with the account's published\n" +
			"certificate), checks the proof against the committed root, re-executes the unit and submits the verdict —\n" +
			"with the unit and its proof when it is wrong. It also votes on the committees it is drawn on. What the provider\n" +
			"does not serve is retried, then reported withheld (a committee then gives the provider serve_blocks to serve it).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, _ := cmd.Flags().GetString("key")
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			key, _, err := kr.PrivKey(name)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			cfg := verifier.DefaultConfig()
			cfg.Poll, _ = cmd.Flags().GetDuration("poll")
			cfg.CertDir, _ = cmd.Flags().GetString("cert-dir")
			if cfg.CertDir == "" {
				home, _ := cmd.Flags().GetString("home")
				cfg.CertDir = filepath.Join(home, "verifier", name)
			}
			cfg.AssetDir, _ = cmd.Flags().GetString("asset-dir")
			cfg.AssetCacheBytes, _ = cmd.Flags().GetInt64("asset-cache-bytes")
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			d, err := verifier.New(cfg, c, key)
			if err != nil {
				return err
			}
			v, found, err := c.Verifier(cmd.Context(), d.Address())
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("%s is not a registered verifier: register it first with kiln tx verify register-verifier %s 10000000ukiln", d.Address(), name)
			}
			cfg.Logger.Info("verifier running", "address", d.Address(), "stake", v.Stake)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx)
		},
	}
	d := verifier.DefaultConfig()
	run.Flags().String("key", "", "keyring name of the verifier account")
	run.Flags().Duration("poll", d.Poll, "how often to ask the chain for assigned checks and committees")
	run.Flags().String("cert-dir", "", "where the verifier's client certificate is kept (default HOME/verifier/KEY)")
	run.Flags().String("asset-dir", "", "where the scenes, datasets and scripts checks need are cached by SHA-256 (default CERT_DIR/assets)")
	run.Flags().Int64("asset-cache-bytes", d.AssetCacheBytes, "bound of the asset cache; the least recently used go first")
	run.MarkFlagRequired("key")
	addNodeFlags(run)
	addKeyringFlags(run)
	cmd.AddCommand(run)
	return cmd
}

// verifyTxCmd is `kiln tx verify ...`.
func verifyTxCmd() *cobra.Command {
	v := &cobra.Command{Use: "verify", Short: "Verification transactions: verifiers and tenant disputes"}
	v.AddCommand(
		txCmd("register-verifier FROM_KEY STAKE", "Register as a verifier bonding STAKE (or add stake), e.g. 10000000ukiln", 2,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				st, err := parseAmount(args[0])
				return []types.Msg{&verify.MsgRegisterVerifier{Verifier: from, Stake: st}}, err
			}),
		txCmd("unbond-verifier FROM_KEY AMOUNT", "Start unbonding verifier stake", 2,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				amt, err := parseAmount(args[0])
				return []types.Msg{&verify.MsgUnbondVerifier{Verifier: from, Amount: amt.Amount}}, err
			}),
		txCmd("dispute FROM_KEY COMMITMENT_ID UNIT_INDEX", "Dispute a unit of your lease's committed work within its window (locks the dispute deposit; a committee, or the chain for matmul, decides)", 3,
			func(_ *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
				id, err := strconv.ParseUint(args[0], 10, 64)
				if err != nil || id == 0 {
					return nil, usagef("COMMITMENT_ID %q: must be a positive integer", args[0])
				}
				u, err := strconv.ParseUint(args[1], 10, 32)
				if err != nil {
					return nil, usagef("UNIT_INDEX %q: must be an integer >= 0", args[1])
				}
				return []types.Msg{&verify.MsgDispute{Tenant: from, CommitID: id, Unit: uint32(u)}}, nil
			}),
	)
	return v
}

// verifyQueryCmd is `kiln query verify ...`.
func verifyQueryCmd() *cobra.Command {
	q := &cobra.Command{Use: "verify", Short: "Work commitments, challenges and verifiers"}
	q.AddCommand(
		queryCmd("commitments", "Every work commitment (state, samples, verifier)", 0, fixed(client.PathCommitments), nil),
		queryCmd("commitment ID", "One work commitment", 1, withID(client.PathCommitment), nil),
		queryCmd("challenges", "Every challenge and its outcome", 0, fixed(client.PathVerifyChallenges), nil),
		queryCmd("challenge ID", "One challenge", 1, withID(client.PathVerifyChallenge), nil),
		queryCmd("verifiers", "Registered verifiers", 0, fixed(client.PathVerifiers), nil),
		queryCmd("verifier ADDR", "One verifier", 1, withAddr(client.PathVerifier), nil),
		queryCmd("duty LEASE ADDR", "What verifier ADDR has to check of lease LEASE now (what providers serve it)", 2, func(args []string) (string, error) {
			id, err := parseID(args[0])
			if err != nil {
				return "", err
			}
			a, err := types.ParseAddress(args[1])
			if err != nil {
				return "", usageErr(err)
			}
			return client.PathVerifierDuty(id, a), nil
		}, nil))
	return q
}
