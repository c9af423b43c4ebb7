package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/bench"
	"github.com/kiln-network/kiln/overlay/allreduce"
)

func newBenchClusterCmd() *cobra.Command {
	d := allreduce.DefaultOptions()
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Cluster order -> every rank running (ms, median of --runs demo clusters), and all-reduce over the overlay vs without it, in one run",
		Long: `Run --runs demo networks with one 3-member cluster each (kiln demo --cluster: three providers,
data-parallel training over a WireGuard overlay) and report the median time from the cluster
order to the chain recording every rank running (order_to_all_running_ms). Then time a
torch.distributed gloo all_reduce across ranks in network namespaces of their own, over the
lease overlay and directly, both across the same modelled inter-provider link (veths to one
bridge, shaped to --link-mbps each way), interleaved in the same processes
(allreduce_ratio: overlay over direct bus bandwidth, median of --rounds), then again with
the link unshaped (*_unshaped: bound by this host's CPUs, which carry every member's
encryption at once).
Needs root, iproute2, /dev/net/tun and a python3 with torch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			runs, _ := cmd.Flags().GetInt("runs")
			o := allreduce.Options{}
			o.Ranks, _ = cmd.Flags().GetInt("ranks")
			mib, _ := cmd.Flags().GetInt64("allreduce-mib")
			o.Bytes = mib << 20
			o.Iters, _ = cmd.Flags().GetInt("iters")
			o.Rounds, _ = cmd.Flags().GetInt("rounds")
			o.LinkMbps, _ = cmd.Flags().GetInt("link-mbps")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			res, err := bench.Cluster(ctx, runs, o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "order→all running  median %.0f ms of %d clusters %v (%d members on %d providers, %s engine); order→placed %.0f ms\n",
				res.OrderToAllRunningMS, res.Runs, res.OrderToAllRunningMSRuns, res.Members, res.Providers, res.Engine, res.OrderToPlacedMS)
			fmt.Fprintf(w, "all-reduce         on a %d Mbit/s link: overlay %.0f Mbit/s, direct %.0f Mbit/s, ratio %.3f (median of %v; target >= 0.7); %d ranks, %d MiB, MTU %d, %d cores\n",
				res.LinkMbps, res.OverlayMbps, res.DirectMbps, res.Ratio, res.Ratios, res.Ranks, res.Bytes>>20, res.OverlayMTU, res.MachineCores)
			fmt.Fprintf(w, "                   unshaped: overlay %.0f Mbit/s, direct %.0f Mbit/s, ratio %.3f (this host's CPUs, not a link)\n",
				res.OverlayMbpsUnshaped, res.DirectMbpsUnshaped, res.RatioUnshaped)
			return nil
		},
	}
	c.Flags().Int("runs", 3, "cluster deployments (a demo network each); the median is reported")
	c.Flags().Int("ranks", d.Ranks, "all-reduce ranks, each in a network namespace of its own (default: 3, or one per core on a host with fewer, so that each emulated member has a core of its own)")
	c.Flags().Int64("allreduce-mib", d.Bytes>>20, "MiB all-reduced (25: DDP's default gradient bucket)")
	c.Flags().Int("iters", d.Iters, "all-reduces timed per path per round")
	c.Flags().Int("rounds", d.Rounds, "interleaved overlay/direct rounds; the median ratio is reported")
	c.Flags().Int("link-mbps", d.LinkMbps, "the modelled inter-provider link's rate each way, Mbit/s (0: unshaped only)")
	return c
}
