package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// pricingTxCmds returns the market transactions of the pricing modes beyond the
// auction: the order book's asks.
func pricingTxCmds() []*cobra.Command {
	ask := txCmd("ask FROM_KEY", "Post or amend your standing ask in the order book: --gpu MODEL (or --cpu), --price per unit per block, --units", 1,
		func(cmd *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
			class, err := askClass(cmd)
			if err != nil {
				return nil, err
			}
			ps, _ := cmd.Flags().GetString("price")
			price, err := client.ParsePrice(ps, types.NativeDenom)
			if err != nil {
				return nil, usagef("--price: %w", err)
			}
			units, _ := cmd.Flags().GetUint64("units")
			m := &market.MsgAsk{Provider: from, Class: class, Price: price, Units: units}
			return []types.Msg{m}, m.ValidateBasic()
		})
	ask.Flags().String("gpu", "", "GPU model the ask offers (h100, a100, ...)")
	ask.Flags().Bool("cpu", false, "offer CPU cores instead of GPUs")
	ask.Flags().String("price", "", "price per unit (GPU or core) per block, e.g. 120 or 120ukiln")
	ask.Flags().Uint64("units", 1, "how many GPUs (or cores) the ask offers")
	cancel := txCmd("cancel-ask FROM_KEY", "Withdraw your ask in a class (--gpu MODEL or --cpu)", 1,
		func(cmd *cobra.Command, from types.Address, _ []string) ([]types.Msg, error) {
			class, err := askClass(cmd)
			if err != nil {
				return nil, err
			}
			return []types.Msg{&market.MsgCancelAsk{Provider: from, Class: class}}, nil
		})
	cancel.Flags().String("gpu", "", "GPU model of the ask")
	cancel.Flags().Bool("cpu", false, "the CPU ask")
	reclaim := txCmd("reclaim FROM_KEY LEASE_ID", "Reclaim a reclaimable lease you run: it closes (reclaimed) after --notice, at least its order's reclamation window", 2,
		func(cmd *cobra.Command, from types.Address, args []string) ([]types.Msg, error) {
			id, err := parseID(args[0])
			if err != nil {
				return nil, err
			}
			reason, _ := cmd.Flags().GetString("reason")
			notice, _ := cmd.Flags().GetDuration("notice")
			m := &market.MsgReclaimLease{Provider: from, LeaseID: id, Reason: reason, NoticeSeconds: uint64(notice / time.Second)}
			return []types.Msg{m}, m.ValidateBasic()
		})
	reclaim.Flags().String("reason", "", "why the capacity is needed back (recorded on chain)")
	reclaim.Flags().Duration("notice", 24*time.Hour, "how long until the lease closes: at least the order's reclamation window")
	return []*cobra.Command{ask, cancel, reclaim}
}

func askClass(cmd *cobra.Command) (string, error) {
	gpu, _ := cmd.Flags().GetString("gpu")
	cpu, _ := cmd.Flags().GetBool("cpu")
	switch {
	case gpu != "" && cpu:
		return "", usagef("--gpu and --cpu: name one class")
	case cpu:
		return market.ClassCPU, nil
	case gpu == "":
		return "", usagef("--gpu MODEL or --cpu: the class is required")
	}
	return gpu, nil
}

// pricingQueryCmds returns the market queries of the pricing modes.
func pricingQueryCmds() []*cobra.Command {
	return []*cobra.Command{
		queryCmd("prices", "The order book per GPU model and CPU: best ask, last trade, 24 h range (ukiln per unit per block)", 0,
			fixed(client.PathPrices), renderPrices),
		queryCmd("asks CLASS", "The asks of a class (a GPU model or cpu), cheapest first", 1,
			func(args []string) (string, error) { return client.PathAsks(args[0]), nil }, nil),
	}
}

func renderPrices(cmd *cobra.Command, raw []byte) error {
	var v struct{ Prices []market.ClassPrices }
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tBEST ASK\tUNITS\tASKS\tLAST TRADE\tAT HEIGHT\t24H LOW\t24H HIGH\tTRADES 24H")
	dash := func(v uint64) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatUint(v, 10)
	}
	for _, p := range v.Prices {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\t%d\n", p.Class, dash(p.BestAsk), p.BestAskUnits, p.Asks, dash(p.LastTrade),
			p.LastTradeHeight, dash(p.Low24h), dash(p.High24h), p.Trades24h)
	}
	return tw.Flush()
}
