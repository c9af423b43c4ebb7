package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"

	"github.com/kiln-network/kiln/demo"
)

// NetworkResult is what `kiln bench network` reports.
type NetworkResult struct {
	Runs                  int     `json:"runs"`
	Deployments           int     `json:"deployments"`
	OrderToLeaseBlocksP50 float64 `json:"order_to_lease_blocks_p50"`
	OrderToLeaseBlocksMax float64 `json:"order_to_lease_blocks_max"`
	OrderToRunningMSP50   float64 `json:"order_to_running_ms_p50"`
	OrderToRunningMSMax   float64 `json:"order_to_running_ms_max"`
	// The data plane figures are those of the round with the median ratio.
	DataPlaneRounds int       `json:"dataplane_rounds"`
	DataPlaneRatio  float64   `json:"dataplane_ratio"`
	DataPlaneRatios []float64 `json:"dataplane_ratios"`
	DataPlaneMiBps  float64   `json:"dataplane_mib_per_s"`
	RawTCPMiBps     float64   `json:"raw_tcp_mib_per_s"`
	DataPlaneCores  float64   `json:"dataplane_cores_busy"`
	RawTCPCores     float64   `json:"raw_tcp_cores_busy"`
	MachineCores    int       `json:"machine_cores"`
	DataPlane       string    `json:"dataplane"`
}

// Network runs the demo network runs times and collects every deployment's
// order→lease blocks and order→running time, then measures the data plane (upload and
// download through mutual TLS and encryption at rest) against raw loopback TCP moving
// the same bytes in the same run.
func Network(ctx context.Context, runs, rounds int, dataplaneBytes int64, progress io.Writer) (NetworkResult, error) {
	if runs < 1 || runs > 20 {
		return NetworkResult{}, fmt.Errorf("runs %d: must be 1 to 20", runs)
	}
	if rounds < 1 || rounds > 50 {
		return NetworkResult{}, fmt.Errorf("data plane rounds %d: must be 1 to 50", rounds)
	}
	if dataplaneBytes < 1<<20 || dataplaneBytes > 4<<30 {
		return NetworkResult{}, fmt.Errorf("data plane size %d bytes: must be 1 MiB to 4 GiB", dataplaneBytes)
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
	// Several rounds, each API then raw TCP back to back, and the median
	// ratio: a shared machine's noise moves single rounds by a third.
	var dps []BenchResult
	for i := 0; i < rounds; i++ {
		fmt.Fprintf(progress, "==> data plane round %d of %d: %d MiB each way\n", i+1, rounds, dataplaneBytes>>20)
		dp, err := BenchUploadDownload(ctx, dataplaneBytes)
		if err != nil {
			return r, err
		}
		dps = append(dps, dp)
	}
	sort.Slice(dps, func(i, j int) bool { return dps[i].Ratio() < dps[j].Ratio() })
	r.DataPlaneRounds = rounds
	for _, dp := range dps {
		r.DataPlaneRatios = append(r.DataPlaneRatios, round3(dp.Ratio()))
	}
	dp := dps[len(dps)/2]
	r.DataPlaneRatio = round3(dp.Ratio())
	r.DataPlaneMiBps = math.Round(dp.Throughput() / (1 << 20))
	r.RawTCPMiBps = math.Round(dp.RawThroughput() / (1 << 20))
	r.DataPlaneCores = math.Round(dp.Cores()*10) / 10
	r.RawTCPCores = math.Round(dp.RawCores()*10) / 10
	r.MachineCores = runtime.NumCPU()
	r.DataPlane = dp.String()
	return r, nil
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func maxOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)-1]
}
