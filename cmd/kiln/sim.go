package main

import (
	"fmt"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/sim"
)

func newSimCmd() *cobra.Command {
	d := sim.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate the market at network scale on the chain's own code (40,000 to 1,000,000 GPUs)",
		Long: `Simulate the market: synthetic providers (many GPU models and regions) and tenants drive the
chain's own market code — the same message handlers, hooks and end-block, on an in-memory
store — block by block. Reports fill rate, time to lease, price per GPU-hour and its
dispersion, utilization, the chain's CPU time per order and peak memory; writes the time
series as CSV and as an SVG chart of price and utilization.`,
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
			c.Pricing, _ = f.GetString("pricing")
			c.BidsPerOrder, _ = f.GetInt("bids-per-order")
			c.JobBlocksMin, _ = f.GetInt("job-blocks-min")
			c.JobBlocksMax, _ = f.GetInt("job-blocks-max")
			c.USDPerKILN, _ = f.GetFloat64("usd-per-kiln")
			c.Seed, _ = f.GetUint64("seed")
			c.SampleEvery, _ = f.GetInt("sample-every")
			c.MaxDuration, _ = f.GetDuration("max-duration")
			c.CheckInvariants, _ = f.GetBool("check-invariants")
			c.Progress = cmd.ErrOrStderr()
			if err := c.Validate(); err != nil {
				return usageErr(err)
			}
			res, err := sim.Run(c)
			if err != nil {
				return err
			}
			csvPath, _ := f.GetString("csv")
			svgPath, _ := f.GetString("svg")
			if err := writeFile(csvPath, func(w *os.File) error { return sim.WriteCSV(w, res.Series) }); err != nil {
				return err
			}
			title := fmt.Sprintf("Kiln market simulation: %d GPUs, %s, %g orders/block", res.GPUs, res.Pricing, c.OrdersPerBlock)
			if err := writeFile(svgPath, func(w *os.File) error { return sim.WriteSVG(w, title, res.Series) }); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), struct {
					sim.Result
					CSV string `json:"csv,omitempty"`
					SVG string `json:"svg,omitempty"`
				}{res, csvPath, svgPath})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "network\t%d GPUs, %d providers, pricing %s\n", res.GPUs, res.Providers, res.Pricing)
			fmt.Fprintf(w, "ran\t%d blocks in %.1f s (built in %.1f s)%s\n", res.Blocks, res.RunSeconds, res.BuildSeconds, map[bool]string{true: ", stopped at --max-duration"}[res.StoppedEarly])
			fmt.Fprintf(w, "orders\t%d placed, %d leased (fill rate %.1f%%), %d leases redeployed\n", res.Orders, res.Leased, 100*res.FillRate, res.Redeployed)
			fmt.Fprintf(w, "time to lease\tmean %.2f blocks, p50 %.0f, p95 %.0f\n", res.TimeToLeaseMean, res.TimeToLeaseP50, res.TimeToLeaseP95)
			fmt.Fprintf(w, "utilization\t%.1f%% at the end, %.1f%% mean\n", 100*res.Utilization, 100*res.UtilizationMean)
			fmt.Fprintf(w, "price dispersion\t%.3f (coefficient of variation within a model)\n", res.PriceDispersion)
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
	f.String("pricing", d.Pricing, "pricing mode of every order")
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
