package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/kiln-network/kiln/demo"
	"github.com/kiln-network/kiln/overlay/allreduce"
)

// ClusterResult is what `kiln bench cluster` reports: how fast a cluster order
// becomes every rank running, over real demo networks, and what the overlay costs
// an all-reduce (allreduce.Result's fields, in the same JSON object).
type ClusterResult struct {
	Runs int `json:"runs"`
	// OrderToAllRunningMS is the median, over Runs cluster deployments, of the time
	// from the cluster order's transaction to the chain recording every rank
	// running; OrderToAllRunningMSRuns the runs' own, in order.
	OrderToAllRunningMS     float64 `json:"order_to_all_running_ms"`
	OrderToAllRunningMSRuns []int64 `json:"order_to_all_running_ms_runs"`
	// OrderToPlacedMS is the median time to every member leased.
	OrderToPlacedMS float64 `json:"order_to_placed_ms"`
	Members         int     `json:"members"`
	Providers       int     `json:"providers"`
	Engine          string  `json:"engine"`
	allreduce.Result
	MachineCores int `json:"machine_cores"`
}

// Cluster runs `kiln demo --cluster` runs times (a chain, three providers, a
// 3-member data-parallel training cluster each) and takes the median order to every
// rank running, then measures the all-reduce over the overlay against the same
// transfer without it (allreduce.AllReduce with ar) in the same run.
func Cluster(ctx context.Context, runs int, ar allreduce.Options, progress io.Writer) (ClusterResult, error) {
	if runs < 1 || runs > 20 {
		return ClusterResult{}, fmt.Errorf("runs %d: must be 1 to 20", runs)
	}
	if progress == nil {
		progress = io.Discard
	}
	if why := demo.ClusterAvailable(); why != "" {
		return ClusterResult{}, fmt.Errorf("bench cluster cannot run here: %s (the overlay needs root, iproute2 and /dev/net/tun)", why)
	}
	if why := allreduce.Available(); why != "" {
		return ClusterResult{}, fmt.Errorf("bench cluster: the all-reduce cannot run here: %s", why)
	}
	r := ClusterResult{Runs: runs, MachineCores: runtime.NumCPU()}
	var run, placed []float64
	for i := 0; i < runs; i++ {
		fmt.Fprintf(progress, "==> cluster deployment %d of %d (a demo network each)\n", i+1, runs)
		s, err := demo.Run(ctx, demo.Options{Cluster: true})
		if err != nil {
			return r, fmt.Errorf("run %d: %w", i+1, err)
		}
		cj := s.Cluster
		if cj == nil || cj.OrderToAllRunningMS == 0 {
			return r, fmt.Errorf("run %d: the cluster never had every rank running", i+1)
		}
		r.OrderToAllRunningMSRuns = append(r.OrderToAllRunningMSRuns, cj.OrderToAllRunningMS)
		run = append(run, float64(cj.OrderToAllRunningMS))
		if len(s.Jobs) > 0 {
			placed = append(placed, float64(s.Jobs[0].OrderToLeaseMS))
		}
		r.Members, r.Providers, r.Engine = cj.Members, s.ClusterProviders, cj.Engine
		fmt.Fprintf(progress, "    order -> every rank running %d ms (%d members on %d providers)\n", cj.OrderToAllRunningMS, cj.Members, s.ClusterProviders)
	}
	r.OrderToAllRunningMS, r.OrderToPlacedMS = percentile(run, 50), percentile(placed, 50)
	fmt.Fprintf(progress, "==> all-reduce over the overlay vs direct, interleaved in one run\n")
	if ar.Log == nil {
		ar.Log = slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	res, err := allreduce.AllReduce(ctx, ar)
	if err != nil {
		return r, fmt.Errorf("all-reduce: %w", err)
	}
	r.Result = res
	return r, nil
}
