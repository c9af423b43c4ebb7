package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/x/market"
)

// peer is one network's published figures, as issue #11 tabulates them ("" where the
// network publishes none).
type peer struct {
	Name     string `json:"name"`
	GPUs     string `json:"gpus"`
	CPUs     string `json:"cpus"`
	H100A100 string `json:"h100_a100"`
	H100USD  string `json:"h100_usd_per_hour"`
	A100USD  string `json:"a100_usd_per_hour"`
}

// peers are the published figures of the networks Kiln is compared with.
var peers = []peer{
	{"Render", "5,600", "114", "", "", ""},
	{"Akash", "384", "14,672", "157", "1.46", "1.37"},
	{"io.net", "38,177", "5,433", "2,330", "1.19", "1.50"},
	{"Gensyn", "", "", "", "", "0.55 expected"},
	{"Aethir", "40,000+", "", "2,000+", "", "0.33 expected"},
	{"Phala", "", "30,000+", "", "", ""},
}

func newStatsCmd() *cobra.Command {
	d := market.DefaultStatsOptions()
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Network statistics: GPUs and CPUs (detected vs declared), H100/A100, price per GPU-hour per model, providers, leases, utilization",
		Long: `Network statistics from a node's /market/stats query: GPUs and CPU cores (detected by the
provider daemons vs declared by operators), H100 and A100 counts, the price per GPU-hour of
each model (median of the leases made in the last --blocks blocks, and of the order book's
live asks where one is kept) in ukiln and in a reference currency at --ref-per-kiln, providers
online, active leases and utilization. --compare prints the published figures of Render,
Akash, io.net, Gensyn, Aethir and Phala beside Kiln's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			o := d
			o.WindowBlocks, _ = f.GetInt64("blocks")
			o.BlocksPerHour, _ = f.GetInt64("blocks-per-hour")
			o.RefCurrency, _ = f.GetString("ref")
			o.RefPerKILN, _ = f.GetFloat64("ref-per-kiln")
			if err := o.Validate(); err != nil {
				return usageErr(err)
			}
			compare, _ := f.GetBool("compare")
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			q := url.Values{"blocks": {strconv.FormatInt(o.WindowBlocks, 10)}, "blocks_per_hour": {strconv.FormatInt(o.BlocksPerHour, 10)},
				"ref": {o.RefCurrency}, "ref_per_kiln": {strconv.FormatFloat(o.RefPerKILN, 'g', -1, 64)}}
			raw, err := c.Query(cmd.Context(), "/market/stats?"+q.Encode())
			if err != nil {
				return err
			}
			var s market.Stats
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode /market/stats: %w", err)
			}
			if asJSON {
				if compare {
					return printJSON(cmd.OutOrStdout(), struct {
						Kiln  market.Stats `json:"kiln"`
						Peers []peer       `json:"peers"`
					}{s, peers})
				}
				return printJSON(cmd.OutOrStdout(), s)
			}
			if compare {
				return renderCompare(cmd.OutOrStdout(), s)
			}
			return renderStats(cmd.OutOrStdout(), s)
		},
	}
	f := cmd.Flags()
	f.Int64("blocks", d.WindowBlocks, fmt.Sprintf("lease prices over the last this many blocks (at most %d)", market.LeaseHistoryBlocks))
	f.Int64("blocks-per-hour", d.BlocksPerHour, "blocks per hour, to turn prices per block into prices per hour (3600 for 1-second blocks)")
	f.String("ref", d.RefCurrency, "reference currency of the *_ref prices")
	f.Float64("ref-per-kiln", d.RefPerKILN, "reference rate: units of the reference currency per KILN")
	f.Bool("compare", false, "print the published figures of Render, Akash, io.net, Gensyn, Aethir and Phala beside Kiln's")
	addNodeFlags(cmd)
	return cmd
}

func renderStats(out io.Writer, s market.Stats) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "height\t%d\n", s.Height)
	fmt.Fprintf(w, "providers\t%d registered, %d online (bonded)\n", s.Providers, s.ProvidersOnline)
	fmt.Fprintf(w, "GPUs\t%d (%d detected, %d declared); H100 %d, A100 %d\n", s.GPUs.Total, s.GPUs.Detected, s.GPUs.Declared, s.H100, s.A100)
	fmt.Fprintf(w, "CPU cores\t%d (%d detected, %d declared)\n", s.CPUs.Total, s.CPUs.Detected, s.CPUs.Declared)
	fmt.Fprintf(w, "active leases\t%d; %d GPUs and %d CPU cores leased\n", s.ActiveLeases, s.LeasedGPUs, s.LeasedCPUMilli/1000)
	fmt.Fprintf(w, "utilization\tGPU %.1f%%, CPU %.1f%%\n", 100*s.Utilization, 100*s.CPUUtilization)
	w.Flush()
	fmt.Fprintf(out, "\nprice per GPU-hour (leases of the last %d blocks; 1 KILN = %g %s)\n", s.WindowBlocks, s.RefPerKILN, s.RefCurrency)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "MODEL\tGPUS\tLEASES\tLEASE MEDIAN\t%s\tASKS\tASK MEDIAN\t%s\n", s.RefCurrency, s.RefCurrency)
	for _, p := range s.Prices {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n", p.Model, p.GPUs, p.Leases, ukilnOrDash(p.LeaseMedianUkiln), refOrDash(p.LeaseMedianRef, p.Leases),
			p.Asks, ukilnOrDash(p.AskMedianUkiln), refOrDash(p.AskMedianRef, p.Asks))
	}
	return w.Flush()
}

func ukilnOrDash(v uint64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatUint(v, 10) + "ukiln"
}

func refOrDash(v float64, n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func renderCompare(out io.Writer, s market.Stats) error {
	price := func(model string) string {
		for _, p := range s.Prices {
			if p.Model == model && p.Leases > 0 {
				return strconv.FormatFloat(p.LeaseMedianRef, 'f', 2, 64)
			}
			if p.Model == model && p.Asks > 0 {
				return strconv.FormatFloat(p.AskMedianRef, 'f', 2, 64) + " (asks)"
			}
		}
		return ""
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NETWORK\tGPUS\tCPUS\tH100/A100\tH100 $/H\tA100 $/H\n")
	fmt.Fprintf(w, "Kiln (this chain)\t%d\t%d\t%d\t%s\t%s\n", s.GPUs.Total, s.CPUs.Total, s.H100+s.A100, dash(price("h100")), dash(price("a100")))
	for _, p := range peers {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(p.GPUs), dash(p.CPUs), dash(p.H100A100), dash(p.H100USD), dash(p.A100USD))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "\nPeers: published figures (issue #11's table). Kiln: height %d, prices are medians of leases of the last %d blocks at 1 KILN = %g %s.\n",
		s.Height, s.WindowBlocks, s.RefPerKILN, s.RefCurrency)
	return err
}
