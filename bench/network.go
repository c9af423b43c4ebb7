package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/kiln-network/kiln/demo"
	"github.com/kiln-network/kiln/provider/api"
)

// NetworkResult is what `kiln bench network` reports.
type NetworkResult struct {
	Runs                  int     `json:"runs"`
	Deployments           int     `json:"deployments"`
	OrderToLeaseBlocksP50 float64 `json:"order_to_lease_blocks_p50"`
	OrderToLeaseBlocksMax float64 `json:"order_to_lease_blocks_max"`
	OrderToRunningMSP50   float64 `json:"order_to_running_ms_p50"`
	OrderToRunningMSMax   float64 `json:"order_to_running_ms_max"`
	DataPlaneRatio        float64 `json:"dataplane_ratio"`
	DataPlaneMiBps        float64 `json:"dataplane_mib_per_s"`
	RawTCPMiBps           float64 `json:"raw_tcp_mib_per_s"`
	DataPlane             string  `json:"dataplane"`
}

// Network runs the demo network runs times and collects every deployment's
// order→lease blocks and order→running time, then measures the data plane (upload and
// download through mutual TLS and encryption at rest) against raw loopback TCP moving
// the same bytes in the same run.
func Network(ctx context.Context, runs int, dataplaneBytes int64, progress io.Writer) (NetworkResult, error) {
	if runs < 1 || runs > 20 {
		return NetworkResult{}, fmt.Errorf("runs %d: must be 1 to 20", runs)
	}
	if progress == nil {
		progress = io.Discard
	}
	var blocks, ms []float64
	for i := 0; i < runs; i++ {
		fmt.Fprintf(progress, "==> demo network %d of %d\n", i+1, runs)
		s, err := demo.Run(ctx, demo.Options{})
		if err != nil {
			return NetworkResult{}, fmt.Errorf("run %d: %w", i+1, err)
		}
		for _, j := range s.Jobs {
			blocks = append(blocks, float64(j.OrderToLeaseBlks))
			ms = append(ms, float64(j.OrderToRunningMS))
		}
	}
	r := NetworkResult{Runs: runs, Deployments: len(blocks)}
	r.OrderToLeaseBlocksP50, r.OrderToLeaseBlocksMax = percentile(blocks, 50), maxOf(blocks)
	r.OrderToRunningMSP50, r.OrderToRunningMSMax = percentile(ms, 50), maxOf(ms)
	fmt.Fprintf(progress, "==> data plane: %d MiB each way\n", dataplaneBytes>>20)
	dp, err := api.BenchUploadDownload(ctx, dataplaneBytes)
	if err != nil {
		return r, err
	}
	r.DataPlaneRatio = math.Round(dp.Ratio()*1000) / 1000
	r.DataPlaneMiBps = math.Round(dp.Throughput() / (1 << 20))
	r.RawTCPMiBps = math.Round(dp.RawThroughput() / (1 << 20))
	r.DataPlane = dp.String()
	return r, nil
}

func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)-1]
}
