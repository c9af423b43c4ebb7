package main

import (
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

var (
	provA = types.Address{0xa}
	provB = types.Address{0xb}
)

func TestWriteLease(t *testing.T) {
	h100 := market.GPUSpec{Model: "h100", MemoryBytes: 80 << 30, Interface: "sxm"}
	cpuOnly := market.Lease{ID: 7, Attempt: 1, Owner: types.Address{1}, Provider: provA, Kind: "batch", Price: 800, Denom: "ukiln",
		GPUs: []market.GPUSpec{{}}, Usage: market.Usage{CPUMilli: 1500, MemoryBytes: 4 << 30, StorageBytes: 10 << 30},
		State: market.LeaseActive, LastHeartbeat: 20, CreatedHeight: 12}
	withGPU := cpuOnly
	withGPU.GPUs = []market.GPUSpec{{}, h100}
	withGPU.Usage.GPUs = []market.GPUCount{{GPUSpec: h100, Count: 2}}
	closed := cpuOnly
	closed.State, closed.CloseReason, closed.ClosedHeight, closed.OutputHash = market.LeaseClosed, market.ReasonCompleted, 30, "ab12"
	tests := []struct {
		name    string
		l       market.Lease
		want    []string
		notWant []string
	}{
		{"cpu only", cpuOnly, []string{
			"lease 7 (attempt 1): active\n",
			"  provider   " + provA.String() + "\n",
			"  price      800ukiln per block\n",
			"  resources  cpu 1.5, memory 4Gi, storage 10Gi\n",
			"  created    height 12\n",
			"  heartbeat  height 20\n",
		}, []string{"gpus", "model", "{", "closed"}},
		{"gpu in the second group", withGPU, []string{
			"  gpus       group 2: h100 80Gi sxm\n",
			"  resources  cpu 1.5, memory 4Gi, storage 10Gi, 2× h100 80Gi sxm\n",
		}, []string{"group 1"}},
		{"closed", closed, []string{
			"lease 7 (attempt 1): closed\n",
			"  closed     completed at height 30\n",
			"  output     ab12\n",
		}, []string{"heartbeat", "gpus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeLease(&b, tt.l)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("writeLease(%s) =\n%s\nwant a line %q", tt.name, b.String(), w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("writeLease(%s) =\n%s\nwant no %q", tt.name, b.String(), w)
				}
			}
		})
	}
}

func TestWriteMatch(t *testing.T) {
	gpuFail := market.ProviderMatch{Provider: provB, Failures: []market.Failure{{Constraint: "gpu_model", Group: "main", Detail: "wants GPU h100, provider has none"}}}
	tests := []struct {
		name    string
		r       market.MatchReport
		want    []string
		notWant []string
	}{
		{"open", market.MatchReport{OrderID: 4, State: market.OrderOpen, Height: 10, BidCloseHeight: 11,
			Providers: []market.ProviderMatch{{Provider: provA, Fits: true}, gpuFail}}, []string{
			"order 4 is open, taking bids until height 11; 2 providers at height 10:\n",
			"  " + provA.String() + " fits but has not bid",
			"  " + provB.String() + ": gpu_model (group main): wants GPU h100, provider has none\n",
		}, nil},
		{"leased", market.MatchReport{OrderID: 4, State: market.OrderActive, Height: 50,
			Lease:     &market.LeaseRef{ID: 4, Attempt: 1, Provider: provA, State: market.LeaseActive, CreatedHeight: 42},
			Providers: []market.ProviderMatch{{Provider: provA, Fits: true, Leased: true}, {Provider: provB, Fits: true}}}, []string{
			"order 4 is leased to " + provA.String() + " since height 42 (lease 4, attempt 1): a leased order takes no bids",
			"  " + provA.String() + " holds the lease\n",
			"  " + provB.String() + " fits\n",
		}, []string{"has not bid"}},
		{"closed after a lease", market.MatchReport{OrderID: 4, State: market.OrderClosed, Height: 90, CloseReason: market.ReasonCompleted, ClosedHeight: 80,
			Lease:     &market.LeaseRef{ID: 4, Attempt: 1, Provider: provA, State: market.LeaseClosed, CreatedHeight: 42, CloseReason: market.ReasonCompleted, ClosedHeight: 80},
			Providers: []market.ProviderMatch{{Provider: provA, Fits: true}}}, []string{
			"order 4 is closed (completed at height 80): it takes no bids",
			"  its last lease (attempt 1) was with " + provA.String() + " from height 42 until completed at height 80\n",
		}, []string{"has not bid", "holds the lease"}},
		{"no providers", market.MatchReport{OrderID: 4, State: market.OrderOpen, Height: 10, BidCloseHeight: 11}, []string{"  no provider is registered\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeMatch(&b, tt.r)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("writeMatch(%s) =\n%s\nwant %q", tt.name, b.String(), w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(b.String(), w) {
					t.Errorf("writeMatch(%s) =\n%s\nwant no %q", tt.name, b.String(), w)
				}
			}
		})
	}
}
