// Package gpucmd provides the `kiln gpu` command: inventory of this host's GPUs.
package gpucmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/gpu"
)

// detect is gpu.Detect; tests replace it to avoid depending on the host.
var detect = gpu.Detect

// NewCommand returns the `gpu` command with its `detect` subcommand.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gpu",
		Short: "Inspect this host's GPUs",
	}
	cmd.AddCommand(newDetectCommand())
	return cmd
}

func newDetectCommand() *cobra.Command {
	var (
		fromFile string
		output   string
	)
	cmd := &cobra.Command{
		Use:   "detect",
		Short: "Print the GPU, CPU, memory and disk inventory",
		Long: `Detect prints the hardware inventory a provider registers: GPUs through NVML,
else through nvidia-smi, plus CPU, memory and disk. Without an NVIDIA driver it
prints a CPU-only inventory and says so.

With --from-file it reads saved nvidia-smi output instead (-q -x, -q,
--query-gpu CSV, the plain table, -L, topo -m, or a multi-section capture).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output: must be text or json (got %q)", output)
			}
			var (
				inv gpu.Inventory
				err error
			)
			if fromFile != "" {
				inv, err = gpu.FromFile(fromFile)
				if err != nil {
					return err
				}
			} else {
				inv, err = detect(cmd.Context(), gpu.Options{})
				if err != nil && !errors.Is(err, gpu.ErrNoDriver) {
					return err
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(inv)
			}
			return WriteText(cmd.OutOrStdout(), inv)
		},
	}
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read saved nvidia-smi output from `FILE` instead of detecting")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// WriteText writes inv as a human-readable summary and GPU table.
func WriteText(w io.Writer, inv gpu.Inventory) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Source:  %s\n", inv.Source)
	if inv.Driver != "" || inv.CUDA != "" {
		fmt.Fprintf(ew, "Driver:  %s (CUDA %s)\n", orDash(inv.Driver), orDash(inv.CUDA))
	}
	if inv.CPU.Threads > 0 || inv.CPU.Model != "" {
		fmt.Fprintf(ew, "CPU:     %s, %d cores, %d threads\n", orDash(inv.CPU.Model), inv.CPU.Cores, inv.CPU.Threads)
	}
	if inv.MemoryBytes > 0 {
		fmt.Fprintf(ew, "Memory:  %s\n", gib(inv.MemoryBytes))
	}
	if inv.DiskBytes > 0 {
		fmt.Fprintf(ew, "Disk:    %s\n", gib(inv.DiskBytes))
	}
	if len(inv.GPUs) == 0 {
		fmt.Fprintln(ew, "GPUs:    none")
	} else {
		fmt.Fprintf(ew, "GPUs:    %d\n\n", len(inv.GPUs))
		tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IDX\tMODEL\tNAME\tMEMORY\tIFACE\tCC\tBUS ID\tMIG\tPOWER\tUTIL")
		for _, g := range inv.GPUs {
			util := "-"
			if g.UtilizationPct != nil {
				util = fmt.Sprintf("%d%%", *g.UtilizationPct)
			}
			power := "-"
			if g.PowerLimitW > 0 {
				power = fmt.Sprintf("%gW", g.PowerLimitW)
			}
			mig := orDash(g.MIGMode)
			if len(g.MIGDevices) > 0 {
				mig = fmt.Sprintf("%s (%d)", g.MIGMode, len(g.MIGDevices))
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d MiB\t%s\t%s\t%s\t%s\t%s\t%s\n",
				g.Index, orDash(g.ModelKey), g.Name, g.MemoryMiB, orDash(g.Interface),
				orDash(g.ComputeCapability), orDash(g.PCIBusID), mig, power, util)
		}
		tw.Flush()
		for _, g := range inv.GPUs {
			for _, d := range g.MIGDevices {
				fmt.Fprintf(ew, "  GPU %d MIG %d: %s gi=%d ci=%d %d MiB\n", g.Index, d.Index, orDash(d.Profile), d.GPUInstanceID, d.ComputeInstanceID, d.MemoryMiB)
			}
		}
	}
	if t := inv.Topology; t != nil && len(t.Devices) > 1 {
		fmt.Fprintln(ew, "\nTopology:")
		for _, d := range t.Devices {
			var links []string
			for _, o := range t.Devices {
				if l := d.Links[o.Name]; l != "" {
					links = append(links, o.Name+"="+l)
				}
			}
			fmt.Fprintf(ew, "  %s: %s\n", d.Name, strings.Join(links, " "))
		}
	}
	for _, n := range inv.Notes {
		fmt.Fprintf(ew, "Note:    %s\n", n)
	}
	return ew.err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func gib(b uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}

// errWriter keeps the first write error so WriteText can report it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
