package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/infer"
	"github.com/kiln-network/kiln/provider/attest"
	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/types"
	xinfer "github.com/kiln-network/kiln/x/infer"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// inputArg reads --input: the text itself, or @FILE for a file's bytes.
func inputArg(s string) ([]byte, error) {
	if f, ok := strings.CutPrefix(s, "@"); ok {
		b, err := readBounded(f, xinfer.MaxInputBytes)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--input: %w", err))
		}
		return b, nil
	}
	return []byte(s), nil
}

// modelHash is --hash, or the built-in model's hash when the model is the built-in one.
func modelHash(cmd *cobra.Command, id string) (string, error) {
	h, _ := cmd.Flags().GetString("hash")
	if h == "" && id == infer.TinyID {
		return infer.NewTiny().Hash(), nil
	}
	if h == "" {
		return "", usagef("--hash: the SHA-256 of model %q's weights is required (only %s's is built in)", id, infer.TinyID)
	}
	return h, nil
}

func inferTxCmds() *cobra.Command {
	c := &cobra.Command{Use: "infer", Short: "On-chain inference: models, requests, results"}
	request := txCmd("request FROM_KEY --model ID --input TEXT|@FILE --max-fee AMOUNT", "Post an inference request; its fee is escrowed until k providers agree on the output (or a TEE provider answers), and refunded if nobody does by the deadline", 1,
		func(cmd *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
			model, _ := cmd.Flags().GetString("model")
			in, _ := cmd.Flags().GetString("input")
			feeS, _ := cmd.Flags().GetString("max-fee")
			if model == "" || in == "" || feeS == "" {
				return nil, usagef("--model, --input and --max-fee are required")
			}
			input, err := inputArg(in)
			if err != nil {
				return nil, err
			}
			fee, err := parseAmount(feeS)
			if err != nil {
				return nil, err
			}
			return []types.Msg{&xinfer.MsgInferRequest{Requester: from, Model: model, Input: input, MaxFee: fee.Amount}}, nil
		})
	request.Flags().String("model", "", "model id, e.g. "+infer.TinyID)
	request.Flags().String("input", "", "input text, or @FILE")
	request.Flags().String("max-fee", "", "most the request pays, e.g. 1000ukiln (split among the agreeing providers)")
	register := txCmd("register-model FROM_KEY ID", "Register a model id with the SHA-256 of its weights (--hash; built in for "+infer.TinyID+")", 2,
		func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			h, err := modelHash(cmd, args[0])
			if err != nil {
				return nil, err
			}
			return []types.Msg{&xinfer.MsgRegisterModel{Owner: from, ID: args[0], Hash: h}}, nil
		})
	register.Flags().String("hash", "", "SHA-256 of the weights, hex")
	serve := txCmd("serve FROM_KEY ID", "Declare that your provider serves a registered model (the weights' hash must match)", 2,
		func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			h, err := modelHash(cmd, args[0])
			if err != nil {
				return nil, err
			}
			return []types.Msg{&xinfer.MsgServeModel{Provider: from, Model: args[0], Hash: h}}, nil
		})
	serve.Flags().String("hash", "", "SHA-256 of the weights, hex")
	c.AddCommand(request, register, serve)
	return c
}

func teeTxCmds() *cobra.Command {
	c := &cobra.Command{Use: "tee", Short: "Confidential compute: record your provider's attestation"}
	attestCmd := txCmd("attest FROM_KEY --evidence FILE --seal-key age1... --nonce-height H [--collateral DIR]",
		"Record TEE evidence whose report_data binds your key, the chain nonce of height H and your sealing key (see kiln query tee nonce)", 1,
		func(cmd *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
			ev, _ := cmd.Flags().GetString("evidence")
			seal, _ := cmd.Flags().GetString("seal-key")
			nh, _ := cmd.Flags().GetInt64("nonce-height")
			colDir, _ := cmd.Flags().GetString("collateral")
			idFile, _ := cmd.Flags().GetString("produce")
			var col tee.Collateral
			if colDir != "" {
				var err error
				if col, err = tee.LoadCollateral(colDir); err != nil {
					return nil, usageErr(err)
				}
			}
			if idFile != "" {
				// Inside a confidential VM: the sealing identity, the newest chain nonce,
				// and evidence from the guest device binding both to this key.
				m, err := produceEvidence(cmd, from, idFile, col)
				if err != nil {
					return nil, err
				}
				return []types.Msg{m}, nil
			}
			if ev == "" || seal == "" || nh < 1 {
				return nil, usagef("--evidence, --seal-key and --nonce-height are required (or --produce IDENTITY_FILE inside a confidential VM)")
			}
			raw, err := readBounded(ev, xtee.MaxEvidenceBytes)
			if err != nil {
				return nil, usageErr(fmt.Errorf("--evidence: %w", err))
			}
			m := &xtee.MsgAttest{Provider: from, NonceHeight: nh, SealKey: seal, Evidence: raw}
			col.SEVRoots = nil // NB: the chain trusts its own roots
			if !col.Empty() {
				if m.Collateral, err = json.Marshal(col); err != nil {
					return nil, err
				}
			}
			return []types.Msg{m}, nil
		})
	attestCmd.Flags().String("evidence", "", "SEV-SNP report or TDX quote made inside the confidential VM")
	attestCmd.Flags().String("seal-key", "", "age X25519 recipient generated inside the VM and bound in the report")
	attestCmd.Flags().Int64("nonce-height", 0, "height of the chain nonce bound in the report")
	attestCmd.Flags().String("collateral", "", "offline collateral directory (see kiln tee verify --help)")
	attestCmd.Flags().String("produce", "", "inside a confidential VM: make the evidence now from the guest device, with the sealing identity in this file (created, 0600, when absent; kept otherwise, so inputs sealed to it stay readable)")
	c.AddCommand(attestCmd)
	return c
}

func inferTEEQueryCmds() []*cobra.Command {
	iq := &cobra.Command{Use: "infer", Short: "On-chain inference queries"}
	iq.AddCommand(
		queryCmd("request ID", "An inference request and, once resolved, its result", 1, withID(client.PathInferRequest), renderInferRequest),
		queryCmd("open", "Open inference requests", 0, fixed(client.PathInferOpen), nil),
		queryCmd("model ID", "A registered model", 1, func(args []string) (string, error) { return client.PathInferModel(args[0]), nil }, nil),
		queryCmd("params", "Inference parameters (agree_k, deadline_blocks, ...)", 0, fixed(client.PathInferParams), nil))
	tq := &cobra.Command{Use: "tee", Short: "Confidential compute queries"}
	tq.AddCommand(
		queryCmd("attestation ADDR", "A provider's attestation record", 1, withAddr(client.PathAttestation), nil),
		queryCmd("nonce", "The newest chain nonce (bind it in report_data) and its height", 0, fixed(client.PathTEENonce), nil),
		queryCmd("params", "TEE parameters (reattest_blocks, nonce_window_blocks, ...)", 0, fixed(client.PathTEEParams), nil))
	return []*cobra.Command{iq, tq}
}

func renderInferRequest(cmd *cobra.Command, raw []byte) error {
	var r xinfer.Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "request %d  model %s  state %s  max_fee %d%s  deadline %d\n", r.ID, r.Model, r.State, r.MaxFee, r.Denom, r.Deadline)
	for _, a := range r.Answers {
		fmt.Fprintf(w, "  answer from %s at %d: %s… tee=%v %s paid %d\n", a.Provider, a.Height, a.OutputHash[:16], a.TEE, a.Outcome, a.Paid)
	}
	if r.State == xinfer.StateResolved {
		fmt.Fprintf(w, "result (%s, height %d): %s\n", r.Via, r.ResolvedHeight, r.Output)
	}
	return nil
}

// teeSealCmd: kiln tee seal.
func newTEESealCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "seal --provider ADDR --in FILE --out FILE",
		Short: "Encrypt an input to the sealing key a provider's attested environment bound in its report (read from the chain)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, _ := cmd.Flags().GetString("provider")
			in, _ := cmd.Flags().GetString("in")
			out, _ := cmd.Flags().GetString("out")
			ms, _ := cmd.Flags().GetStringSlice("measurement")
			p, err := types.ParseAddress(ps)
			if err != nil || in == "" || out == "" {
				return usagef("--provider ADDR, --in FILE and --out FILE are required (%v)", err)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(in)
			if err != nil {
				return usageErr(err)
			}
			defer f.Close()
			tmp := out + ".tmp"
			w, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			at, err := sealFor(cmd, c, p, ms, f, w)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(tmp)
				return &exitError{code: 1, err: err}
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sealed %s to %s's %s environment (measurement %s…, attestation valid until height %d) -> %s\n",
				in, p, at.Type, at.Measurement[:16], at.ExpiresHeight, out)
			return nil
		},
	}
	addNodeFlags(c)
	c.Flags().String("provider", "", "provider address whose attested environment may read the input")
	c.Flags().String("in", "", "plaintext input")
	c.Flags().String("out", "", "sealed (age) output; upload it as NAME.sealed and the attested provider's workload reads it as NAME")
	c.Flags().StringSlice("measurement", nil, "accepted launch measurement (hex); repeat for several; default any")
	return c
}

func newInferCmd() *cobra.Command {
	c := &cobra.Command{Use: "infer", Short: "Serve on-chain inference requests as a provider"}
	serve := &cobra.Command{
		Use:   "serve KEY [--model ID]",
		Short: "Answer the chain's open inference requests for a model you serve, after every block, until interrupted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			model, _ := cmd.Flags().GetString("model")
			corrupt, _ := cmd.Flags().GetBool("corrupt")
			if model != infer.TinyID {
				return usagef("--model %q: only the built-in %s runs in-process; a provider serving another model answers through its own infer workload", model, infer.TinyID)
			}
			kr, err := openKeyring(cmd)
			if err != nil {
				return err
			}
			key, info, err := kr.PrivKey(args[0])
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			m := infer.NewTiny()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			log.Info("serving inference", "provider", info.Address, "model", m.ID(), "hash", m.Hash(), "corrupt", corrupt)
			a := &infer.Answerer{Client: c, Key: ed25519.PrivateKey(key), Model: m, Log: log, Corrupt: corrupt}
			return a.Run(ctx)
		},
	}
	serve.Flags().String("model", infer.TinyID, "model to serve")
	serve.Flags().Bool("corrupt", false, "answer wrong outputs (to watch a cheater be outvoted; never in production)")
	addKeyringFlags(serve)
	addNodeFlags(serve)
	c.AddCommand(serve)
	return c
}

// produceEvidence makes this provider's MsgAttest inside a confidential VM: the
// sealing identity in idFile (created there when absent), the newest chain nonce, and
// evidence from the guest device binding them to from. On a machine that is not a
// confidential VM it fails with tee.ErrNoTEE, saying so.
func produceEvidence(cmd *cobra.Command, from types.Address, idFile string, col tee.Collateral) (*xtee.MsgAttest, error) {
	dev := tee.Device{}
	if p := dev.Capability(); p.Type == "" {
		return nil, &exitError{code: 1, err: tee.ErrNoTEE}
	}
	c, err := newClient(cmd)
	if err != nil {
		return nil, err
	}
	id, err := attest.LoadOrCreateIdentity(idFile)
	if err != nil {
		return nil, usageErr(err)
	}
	return attest.Make(cmd.Context(), c, dev, from, id, col)
}
