package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// queryCmd builds a query command for path (computed from the args) that prints the
// JSON value, or text through render.
func queryCmd(use, short string, nArgs int, path func(args []string) (string, error), render func(cmd *cobra.Command, raw []byte) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			p, err := path(args)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			raw, err := c.Query(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON || render == nil {
				var v any
				if err := json.Unmarshal(raw, &v); err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), v)
			}
			return render(cmd, raw)
		},
	}
	addNodeFlags(cmd)
	return cmd
}

func fixed(p string) func([]string) (string, error) {
	return func([]string) (string, error) { return p, nil }
}

// withAddr is the query path of the address in the first argument.
func withAddr(path func(types.Address) string) func([]string) (string, error) {
	return func(args []string) (string, error) {
		a, err := types.ParseAddress(args[0])
		if err != nil {
			return "", usageErr(err)
		}
		return path(a), nil
	}
}

func renderCoins(field string) func(cmd *cobra.Command, raw []byte) error {
	return func(cmd *cobra.Command, raw []byte) error {
		var v map[string]types.Coins
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if len(v[field]) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "(none)")
		}
		for _, c := range v[field] {
			fmt.Fprintln(cmd.OutOrStdout(), c.String())
		}
		return nil
	}
}

func renderAccounting(cmd *cobra.Command, raw []byte) error {
	var a bank.Accounting
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "height %d: conserved %v\n\nDENOM\tSUPPLY\tBALANCES\tIN MODULE ACCOUNTS\n", a.Height, a.Conserved)
	for _, d := range a.Denoms {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", d.Denom, d.Supply, d.Balances, d.Modules)
	}
	fmt.Fprintf(w, "\nMODULE ACCOUNT\tHOLDS\tRECORDS SAY\n")
	for _, m := range a.Modules {
		owed := "(not checked)"
		if m.Checked {
			owed = m.Owed.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", m.Name, m.Balance, owed)
	}
	w.Flush()
	for _, p := range a.Problems {
		fmt.Fprintf(cmd.OutOrStdout(), "PROBLEM: %s\n", p)
	}
	return nil
}

func newQueryCmd() *cobra.Command {
	q := &cobra.Command{Use: "query", Aliases: []string{"q"}, Short: "Query chain state"}
	bankQ := &cobra.Command{Use: "bank", Short: "Bank queries"}
	bankQ.AddCommand(
		queryCmd("balances ADDR", "Balances of an account", 1, withAddr(client.PathBalances), renderCoins("balances")),
		queryCmd("supply", "Total supply of every denom", 0, fixed(client.PathSupply), renderCoins("supply")),
		queryCmd("accounting", "Every balance summed against the supply, and each module account against its records", 0, fixed(client.PathAccounting), renderAccounting))
	authQ := &cobra.Command{Use: "auth", Short: "Account queries"}
	authQ.AddCommand(queryCmd("account ADDR", "An account's sequence", 1, withAddr(client.PathAccount), nil))
	stakingQ := &cobra.Command{Use: "staking", Short: "Staking queries"}
	stakingQ.AddCommand(
		queryCmd("validators", "Validators", 0, fixed(client.PathValidators), renderValidators),
		queryCmd("delegations", "All delegations", 0, fixed(client.PathDelegations), nil),
		queryCmd("unbondings", "Stake waiting out the unbonding period", 0, fixed(client.PathUnbondings), nil))
	regQ := &cobra.Command{Use: "registry", Short: "Provider registry queries"}
	regQ.AddCommand(
		queryCmd("providers", "Registered providers", 0, fixed(client.PathProviders), renderProviders),
		queryCmd("provider ADDR", "One provider", 1, withAddr(client.PathProvider), nil))
	q.AddCommand(marketQueryCmds()...)
	q.AddCommand(livenessQueryCmd())
	q.AddCommand(inferTEEQueryCmds()...)
	q.AddCommand(bankQ, authQ, stakingQ, regQ, verifyQueryCmd(),
		queryCmd("params", "Every module's on-chain parameters", 0, fixed(client.PathParams), nil))
	return q
}

func renderValidators(cmd *cobra.Command, raw []byte) error {
	var v struct {
		Validators []struct {
			Operator string `json:"operator"`
			Moniker  string `json:"moniker"`
			Tokens   string `json:"tokens"`
			Jailed   bool   `json:"jailed"`
		} `json:"validators"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OPERATOR\tMONIKER\tTOKENS\tJAILED")
	for _, x := range v.Validators {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", x.Operator, x.Moniker, x.Tokens, x.Jailed)
	}
	return tw.Flush()
}

func renderProviders(cmd *cobra.Command, raw []byte) error {
	var v struct {
		Providers []struct {
			Owner     string `json:"owner"`
			Endpoint  string `json:"endpoint"`
			Stake     string `json:"stake"`
			Inventory struct {
				Source   string `json:"source"`
				Region   string `json:"region"`
				CPUCores int    `json:"cpu_cores"`
				GPUs     []struct {
					Model string `json:"model"`
					Count int    `json:"count"`
				} `json:"gpus"`
			} `json:"inventory"`
		} `json:"providers"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tENDPOINT\tREGION\tCPU\tGPUS\tSOURCE\tSTAKE")
	for _, p := range v.Providers {
		gpus := ""
		for i, g := range p.Inventory.GPUs {
			if i > 0 {
				gpus += ","
			}
			gpus += fmt.Sprintf("%dx%s", g.Count, g.Model)
		}
		if gpus == "" {
			gpus = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Owner, p.Endpoint, p.Inventory.Region, p.Inventory.CPUCores, gpus, p.Inventory.Source, p.Stake)
	}
	return tw.Flush()
}
