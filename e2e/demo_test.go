package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/demo"
	"github.com/kiln-network/kiln/ports"
)

// `kiln demo --output json`, as a new user runs it: three batch jobs and a service end
// to end, money conserved on chain, fast.
func TestDemo(t *testing.T) {
	// 170 s: the demo promises to finish in under two minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kilnBin, "demo", "--output", "json").Output()
	if err != nil {
		t.Fatalf("kiln demo: %v", err)
	}
	var s struct {
		JobsCompleted   int     `json:"jobs_completed"`
		ServicesReached int     `json:"services_reached"`
		Leases          int     `json:"leases"`
		LeaseBlocks     float64 `json:"order_to_lease_blocks_p50"`
		RunningMS       float64 `json:"order_to_running_ms_p50"`
		Paid            string  `json:"paid_to_providers"`
		Fees            string  `json:"protocol_fees"`
		Refunded        string  `json:"refunded"`
		SupplyConserved bool    `json:"supply_conserved"`
		Jobs            []struct {
			Name, State, CloseReason string
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("demo output is not JSON: %v\n%s", err, out)
	}
	paid, _ := strconv.ParseUint(s.Paid, 10, 64)
	fees, _ := strconv.ParseUint(s.Fees, 10, 64)
	if s.JobsCompleted < 3 || s.ServicesReached < 1 || s.Leases < 4 || !s.SupplyConserved || paid == 0 || fees == 0 {
		t.Fatalf("demo summary: %s", out)
	}
	// The demo leaves nothing running: its service was stopped when its lease closed.
	if out, err := exec.Command("pgrep", "-f", kilnBin+" work").Output(); err == nil && len(out) > 0 {
		t.Errorf("workloads still running after the demo exited: pids %s", out)
	}
	// The speed targets (order→lease ≤ 2 blocks, order→running ≤ 5 s) are measured by
	// `kiln bench network`, not asserted here: machines are shared and noisy.
	t.Logf("order→lease %.0f blocks, order→running %.0f ms", s.LeaseBlocks, s.RunningMS)
}

// The demo network binds its node's, providers' and ingress's ports itself (port 0),
// so nothing there is picked ahead. The one port it must pick ahead, its service's
// (written into the manifest; the service binds it), is taken by another program
// between the pick and the bind, the race made certain: the demo says so, closes that
// lease, deploys the service again on a fresh port and reaches it, with every lease's
// money in the summary and supply conserved.
func TestDemoServiceMovesOffTakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo network in-process; skipped with -short")
	}
	var held []net.Listener
	t.Cleanup(func() {
		for _, l := range held {
			l.Close()
		}
	})
	pick := func() (int, error) {
		p, err := ports.Pick("127.0.0.1", 1)
		if err != nil {
			return 0, err
		}
		if len(held) == 0 { // another program takes the first port picked
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p[0]))
			if err != nil {
				return 0, err
			}
			held = append(held, l)
		}
		return p[0], nil
	}
	var progress strings.Builder
	// 170 s: the demo promises to finish in under two minutes; this run deploys one
	// service twice, under the race detector.
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()
	s, err := demo.Run(ctx, demo.Options{Worker: kilnBin, PickPort: pick, Progress: &progress})
	if err != nil {
		t.Fatalf("demo.Run: %v\n%s", err, progress.String())
	}
	takenPort := held[0].Addr().(*net.TCPAddr).Port
	if !strings.Contains(progress.String(), fmt.Sprintf("port %d was taken by another program", takenPort)) {
		t.Errorf("the demo did not say that port %d was taken:\n%s", takenPort, progress.String())
	}
	var lost []demo.Job
	for _, j := range s.Jobs {
		if strings.Contains(j.Name, "taken") {
			lost = append(lost, j)
		}
	}
	if s.ServicesReached != 1 || s.JobsCompleted != 3 || len(lost) != 1 || lost[0].CloseReason == "" || s.Leases != 5 || !s.SupplyConserved {
		t.Fatalf("summary: services reached %d, jobs completed %d, leases %d, supply conserved %v, leases that lost their port %+v\n%s",
			s.ServicesReached, s.JobsCompleted, s.Leases, s.SupplyConserved, lost, progress.String())
	}
}
