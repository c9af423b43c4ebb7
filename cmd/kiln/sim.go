package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/sim"
	"github.com/kiln-network/kiln/x/market"
)

func newSimCmd() *cobra.Command {
	d := sim.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate the market at network scale on the chain's own code (40,000 to 1,000,000 GPUs)",
		Long: `Simulate the market: synthetic providers (many GPU models and regions) and tenants drive the
chain's own market code — the same message handlers, hooks and end-block, on an in-memory
store — block by block, in one pricing mode (--mode auction|market|performance|sealed|stake)
or in each of them in turn on the same network and order stream (--mode all), to compare
them. Reports fill rate, time to lease, price per GPU-hour and its dispersion,
utilization, what tenants paid and providers earned, the chain's CPU time per order and
peak memory; writes the time series as CSV and as an SVG chart of price and utilization.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			c := d
			c.GPUs, _ = f.GetInt("gpus")
			c.Blocks, _ = f.GetInt("blocks")
			c.OrdersPerBlock, _ = f.GetFloat64("orders-per-block")
			c.CPUOrderShare, _ = f.GetFloat64("cpu-order-share")
			c.Churn, _ = f.GetFloat64("churn")
			c.OfflineBlocks, _ = f.GetInt("offline-blocks")
			c.Mode, _ = f.GetString("mode")
			c.BidsPerOrder, _ = f.GetInt("bids-per-order")
			c.JobBlocksMin, _ = f.GetInt("job-blocks-min")
			c.JobBlocksMax, _ = f.GetInt("job-blocks-max")
			c.USDPerKILN, _ = f.GetFloat64("usd-per-kiln")
			c.Seed, _ = f.GetUint64("seed")
			c.SampleEvery, _ = f.GetInt("sample-every")
			c.MaxDuration, _ = f.GetDuration("max-duration")
			c.CheckInvariants, _ = f.GetBool("check-invariants")
			c.Progress = cmd.ErrOrStderr()
			all := c.Mode == "all"
			if all {
				c.Mode = market.ModeAuction // NB: validated as one mode; Compare runs each
			}
			if err := c.Validate(); err != nil {
				return usageErr(err)
			}
			var runs []sim.Result
			if all {
				runs, err = sim.Compare(c, nil)
			} else {
				var res sim.Result
				res, err = sim.Run(c)
				runs = []sim.Result{res}
			}
			if err != nil {
				return err
			}
			csvPath, _ := f.GetString("csv")
			svgPath, _ := f.GetString("svg")
			if err := writeFile(csvPath, func(w *os.File) error { return sim.WriteCSV(w, runs) }); err != nil {
				return err
			}
			modes := runs[0].Pricing
			if all {
				modes = "every pricing mode"
			}
			title := fmt.Sprintf("Kiln market simulation: %d GPUs, %s, %g orders/block", runs[0].GPUs, modes, c.OrdersPerBlock)
			if err := writeFile(svgPath, func(w *os.File) error { return sim.WriteSVG(w, title, runs) }); err != nil {
				return err
			}
			if asJSON {
				if all {
					return printJSON(cmd.OutOrStdout(), struct {
						Modes []sim.Result `json:"modes"`
						CSV   string       `json:"csv,omitempty"`
						SVG   string       `json:"svg,omitempty"`
					}{runs, csvPath, svgPath})
				}
				return printJSON(cmd.OutOrStdout(), struct {
					sim.Result
					CSV string `json:"csv,omitempty"`
					SVG string `json:"svg,omitempty"`
				}{runs[0], csvPath, svgPath})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if all {
				printComparison(w, runs)
			} else {
				printRun(w, runs[0])
			}
			if csvPath != "" || svgPath != "" {
				fmt.Fprintf(w, "wrote\t%s %s\n", csvPath, svgPath)
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.Int("gpus", d.GPUs, "GPUs in the network (40000 is io.net/Aethir scale; up to 2000000)")
	f.Int("blocks", d.Blocks, "blocks to run")
	f.Float64("orders-per-block", d.OrdersPerBlock, "mean order arrivals per block (Poisson)")
	f.Float64("cpu-order-share", d.CPUOrderShare, "share of orders asking for CPUs only")
	f.Float64("churn", d.Churn, "share of providers going offline per block")
	f.Int("offline-blocks", d.OfflineBlocks, "blocks an offline provider stays away")
	f.String("mode", d.Mode, "pricing mode of every order ("+strings.Join(market.ModeNames(), ", ")+"), or all: each in turn on the same network, compared")
	f.Int("bids-per-order", d.BidsPerOrder, "providers bidding on each order")
	f.Int("job-blocks-min", d.JobBlocksMin, "shortest job, in blocks")
	f.Int("job-blocks-max", d.JobBlocksMax, "longest job, in blocks")
	f.Float64("usd-per-kiln", d.USDPerKILN, "reference rate: US dollars per KILN")
	f.Uint64("seed", d.Seed, "random seed (same seed, same run)")
	f.Int("sample-every", d.SampleEvery, "blocks between time-series samples")
	f.Duration("max-duration", 10*60e9, "stop after this much wall time (0: run every block)")
	f.Bool("check-invariants", false, "check the books and every module's invariants after every block (slow: for small networks)")
	f.String("csv", "kiln-sim.csv", "write the time series here (empty: don't)")
	f.String("svg", "kiln-sim.svg", "write the price and utilization chart here (empty: don't)")
	return cmd
}

// printRun prints one run's figures.
func printRun(w io.Writer, res sim.Result) {
	fmt.Fprintf(w, "network\t%d GPUs, %d providers, pricing %s\n", res.GPUs, res.Providers, res.Pricing)
	fmt.Fprintf(w, "ran\t%d blocks in %.1f s (built in %.1f s)%s\n", res.Blocks, res.RunSeconds, res.BuildSeconds, map[bool]string{true: ", stopped at --max-duration"}[res.StoppedEarly])
	fmt.Fprintf(w, "orders\t%d placed, %d leased (fill rate %.1f%%), %d leases redeployed, %d closed unfilled\n", res.Orders, res.Leased, 100*res.FillRate, res.Redeployed, res.Unfilled)
	fmt.Fprintf(w, "time to lease\tmean %.2f blocks, p50 %.0f, p95 %.0f\n", res.TimeToLeaseMean, res.TimeToLeaseP50, res.TimeToLeaseP95)
	fmt.Fprintf(w, "utilization\t%.1f%% at the end, %.1f%% mean\n", 100*res.Utilization, 100*res.UtilizationMean)
	fmt.Fprintf(w, "price dispersion\t%.3f (coefficient of variation within a model)\n", res.PriceDispersion)
	fmt.Fprintf(w, "money\ttenants paid $%.2f ($%.4f per leased order), providers earned $%.2f ($%.4f per GPU-hour), fees %d ukiln, stake rewards %d ukiln\n",
		res.TenantCostUSD, res.TenantUSDPerOrder, res.ProviderRevenueUSD, res.ProviderUSDPerGPUHour, res.FeesUkiln, res.StakeRewardsUkiln)
	fmt.Fprintf(w, "matching\t%.1f us CPU per leased order (%.0f orders/s); lifecycle %.1f us\n", res.MatchMicros, res.OrdersPerSecond, res.LifecycleMicros)
	fmt.Fprintf(w, "peak memory\t%.0f MiB\n", res.PeakRSSMiB)
	models := make([]string, 0, len(res.PricePerGPUHour))
	for m := range res.PricePerGPUHour {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		fmt.Fprintf(w, "  %s\t$%.3f per GPU-hour (median lease)\n", m, res.PricePerGPUHour[m])
	}
}

// printComparison prints a row per pricing mode.
func printComparison(w io.Writer, runs []sim.Result) {
	r0 := runs[0]
	fmt.Fprintf(w, "network: %d GPUs, %d providers; %d blocks each\n\n", r0.GPUs, r0.Providers, r0.Blocks)
	fmt.Fprintln(w, "mode\torders\tfill\tlease p50/mean (blocks)\tH100 $/h\tA100 $/h\tdispersion\tutilization\ttenants paid\tproviders earned\tearned $/GPU-h\tmatch us/order")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%d\t%.1f%%\t%.0f / %.2f\t%.3f\t%.3f\t%.3f\t%.1f%%\t$%.2f\t$%.2f\t%.4f\t%.0f\n", r.Pricing, r.Orders, 100*r.FillRate,
			r.TimeToLeaseP50, r.TimeToLeaseMean, r.PricePerGPUHour["h100"], r.PricePerGPUHour["a100"], r.PriceDispersion, 100*r.UtilizationMean,
			r.TenantCostUSD, r.ProviderRevenueUSD, r.ProviderUSDPerGPUHour, r.MatchMicros)
	}
	fmt.Fprintln(w)
}

// writeFile writes path with fill; an empty path writes nothing.
func writeFile(path string, fill func(*os.File) error) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
