package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/units"
)

func newWorkVerifyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "verify DIR",
		Short: "Re-execute K sampled units of a job directory and compare: exit 0 ok, 1 fraud, 2 error",
		Long: `Re-execute K units of the job in DIR (sampled with --seed from DIR/units.json), each through
its workload (render, train, matmul) with that workload's tolerance, and compare with what DIR
holds. Prints {"verdict": "ok"|"fraud", "checked": K, "failed": [unit ids]} with --output json.
Exit status: 0 ok, 1 fraud (some unit is not an honest result), 2 the check could not be done.`,
		Example: `  kiln work verify /tmp/r --samples 4 --output json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			k, _ := cmd.Flags().GetInt("samples")
			seed, _ := cmd.Flags().GetString("seed")
			pr := newProgress(cmd.ErrOrStderr())
			rep, err := catalog.Registry().Verify(cmd.Context(), args[0], k, []byte(seed), func(done, total int, what string) {
				pr.Waiting(fmt.Sprintf("verify: %d/%d units (%s)", done, total, what))
			})
			pr.Done()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s job, %d units, root %s: checked %d, failed %d\n", rep.Verdict, rep.Kind, rep.Units, rep.Root, rep.Checked, len(rep.Failed))
				for _, id := range rep.Failed {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s: %s\n", id, rep.Reasons[id])
				}
			}
			if rep.Verdict == units.VerdictFraud {
				return &exitError{code: 1, err: errors.New("fraud: " + strings.Join(rep.Failed, ", "))}
			}
			return nil
		},
	}
	c.Flags().Int("samples", 4, "units to re-execute")
	c.Flags().String("seed", "kiln", "sampling seed (a verifier uses randomness the provider did not know)")
	return c
}
