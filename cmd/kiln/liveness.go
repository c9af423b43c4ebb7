package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/liveness"
)

// livenessQueryCmd is `kiln query liveness`: challenges and scores.
func livenessQueryCmd() *cobra.Command {
	lq := &cobra.Command{Use: "liveness", Short: "Liveness and hardware challenge queries"}
	var challenges *cobra.Command
	challenges = queryCmd("challenges", "Liveness and hardware challenges (--provider ADDR, --state open|answered|pending|passed|failed, --lease ID)", 0,
		func([]string) (string, error) {
			prov, err := addrFlag(challenges, "provider")
			if err != nil {
				return "", err
			}
			var lease uint64
			if v, _ := challenges.Flags().GetString("lease"); v != "" {
				if lease, err = parseID(v); err != nil {
					return "", usagef("--lease: %w", err)
				}
			}
			state, _ := challenges.Flags().GetString("state")
			return client.PathChallenges(prov, state, lease), nil
		}, renderChallenges)
	challenges.Flags().String("provider", "", "only this provider's challenges")
	challenges.Flags().String("state", "", "open, answered, pending (open or answered), passed or failed")
	challenges.Flags().String("lease", "", "only the challenges of this lease (ID)")
	scores := queryCmd("scores [PROVIDER]", "Challenge scores per provider and model (measured throughput, flags)", 0, func(args []string) (string, error) {
		if len(args) == 0 {
			return client.PathScores(types.Address{}), nil
		}
		a, err := types.ParseAddress(args[0])
		if err != nil {
			return "", usageErr(err)
		}
		return client.PathScores(a), nil
	}, renderScores)
	scores.Args = cobra.MaximumNArgs(1)
	lq.AddCommand(challenges, scores,
		queryCmd("challenge ID", "One challenge", 1, withID(client.PathChallenge), nil))
	return lq
}

func renderChallenges(cmd *cobra.Command, raw []byte) error {
	var v struct{ Challenges []liveness.Challenge }
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if len(v.Challenges) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "(none)")
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tPROVIDER\tLEASE\tMODEL\tN\tISSUED\tDEADLINE\tSTATE\tREPORTED MFLOPS\tCHAIN MFLOPS\tSLASHED")
	for _, c := range v.Challenges {
		state := c.State
		if c.Failure != "" {
			state += " (" + c.Failure + ")"
		}
		lease := "-"
		if c.Lease != 0 {
			lease = fmt.Sprintf("%d/%d", c.Lease, c.Attempt)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\n", c.ID, c.Kind, c.Provider, lease, c.Model, c.N,
			c.IssuedHeight, c.Deadline, state, c.ReportedMFLOPS, c.ChainMFLOPS, c.Slashed)
	}
	return w.Flush()
}

func renderScores(cmd *cobra.Command, raw []byte) error {
	var v struct{ Scores []liveness.Score }
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if len(v.Scores) == 0 {
		fmt.Fprintln(cmd.OutOrStdout(), "(none)")
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROVIDER\tMODEL\tCHALLENGES\tPASSED\tFAILED\tEXPECTED MFLOPS\tLAST REPORTED\tLAST CHAIN\tFLAGGED")
	for _, s := range v.Scores {
		flag := "no"
		if s.Flagged {
			flag = fmt.Sprintf("yes, at %d: %s", s.FlagHeight, s.FlagReason)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Provider, s.Model, s.Challenges, s.Passed, s.Failed,
			s.ExpectedMFLOPS, s.LastReportedMFLOPS, s.LastChainMFLOPS, flag)
	}
	return w.Flush()
}
