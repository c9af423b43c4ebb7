package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/bench"
)

func newBenchInferCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "infer",
		Short: "On-chain inference request→result (blocks, ms) on an embedded chain, and attestation verification time per report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			requests, _ := cmd.Flags().GetInt("requests")
			providers, _ := cmd.Flags().GetInt("providers")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := bench.Infer(ctx, requests, providers, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "request→result  p50 %.0f blocks, max %.0f (target <= 2); p50 %.0f ms, max %.0f ms; %d requests, %d providers, k=%d\n",
				res.RequestToResultBlocksP50, res.RequestToResultBlocksMax, res.RequestToResultMSP50, res.RequestToResultMSMax, res.Requests, res.Providers, res.AgreeK)
			fmt.Fprintf(w, "attestation     SEV-SNP %.3f ms, TDX %.3f ms per report; fits CheckTx (budget %.1f ms): %v\n",
				res.AttestationVerifyMS, res.AttestationVerifyMSTDX, res.CheckTxBudgetMS, res.AttestationFitsCheckTx)
			return nil
		},
	}
	c.Flags().Int("requests", 10, "inference requests, one after another")
	c.Flags().Int("providers", 2, "providers answering (at least the chain's agree_k)")
	return c
}
