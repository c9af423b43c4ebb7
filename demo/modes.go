package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// The sealed demo's sessions: their clients are "at" a loopback endpoint the demo
// serves, which every provider measures its round-trip time to.
const (
	demoClientLocation = "demo-client"
	demoMaxRTTMs       = 50
)

// clientEndpoint serves the demo's client location: a TCP listener on loopback that
// accepts and closes connections (providers time the connect).
func clientEndpoint() (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("client location endpoint: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

// perfMaxPrice is what the performance demo's orders pay at most per benchmark
// TFLOP-hour: above the providers' default 30000.
const perfMaxPrice = 50_000

// perfPlan makes plan a performance-priced one: its max price per TFLOP-hour. A
// CPU-only job stays in the auction: performance pricing bills GPU work.
func perfPlan(plan *tenant.Plan) {
	gpus := false
	for _, g := range plan.Groups {
		gpus = gpus || g.GPU.Units > 0
	}
	if !gpus {
		plan.Pricing = market.ModeAuction
		return
	}
	plan.MaxPrice = perfMaxPrice
	plan.Deposit = types.NewCoin(types.NativeDenom, perfMaxPrice*tenant.DefaultDepositBlocks)
}

// modeFigures returns what the demo reports of its pricing mode beyond the jobs: for
// the order book, its prices per class.
func modeFigures(ctx context.Context, c *client.Client, mode string, jobs []Job) (map[string]any, error) {
	switch mode {
	case market.ModePerformance:
		type work struct {
			Job           string  `json:"job"`
			Lease         uint64  `json:"lease,string"`
			UnitPrice     uint64  `json:"price_per_tflop_hour,string"`
			TFLOPS        float64 `json:"benchmark_tflops"`
			PricePerBlock uint64  `json:"price_per_block,string"`
		}
		var ws []work
		for _, j := range jobs {
			l, err := c.Lease(ctx, j.Lease)
			if err != nil {
				return nil, fmt.Errorf("lease %d: %w", j.Lease, err)
			}
			if l.UnitPrice > 0 {
				ws = append(ws, work{j.Name, l.ID, l.UnitPrice, float64(l.WorkMilliTFLOPS) / 1000, l.Price})
			}
		}
		return map[string]any{"work_priced_leases": ws, "score_source": "GPU catalogue's expected FP32 TFLOPS (declared hardware; no measured scores yet)"}, nil
	case market.ModeMarket:
		raw, err := c.Query(ctx, client.PathPrices)
		if err != nil {
			return nil, fmt.Errorf("order book prices: %w", err)
		}
		var v struct {
			Prices []market.ClassPrices `json:"prices"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("order book prices: %w", err)
		}
		return map[string]any{"prices": v.Prices}, nil
	case market.ModeStake:
		// NB: rewards are paid at the end of each stake epoch: wait for the next one
		// (100 blocks by default, 20 s at the demo's block time).
		mp, err := c.MarketParams(ctx)
		if err != nil {
			return nil, err
		}
		h, err := c.AppHeight(ctx)
		if err != nil {
			return nil, err
		}
		end := (h/mp.StakeEpochBlocks+1)*mp.StakeEpochBlocks + 1
		if err := c.WaitHeight(ctx, end); err != nil {
			return nil, fmt.Errorf("wait for the stake epoch's end at %d: %w", end, err)
		}
		var r market.EpochReward
		raw, err := c.Query(ctx, "/market/stake/rewards")
		if err != nil {
			return nil, fmt.Errorf("stake rewards: %w", err)
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("stake rewards: %w", err)
		}
		return map[string]any{"epoch_blocks": mp.StakeEpochBlocks, "pool_per_epoch": mp.StakePoolPerEpoch, "last_epoch": r,
			"assignment": "each order assigned at the end of its block to a fitting provider drawn by stake x uptime"}, nil
	case market.ModeSealed:
		return map[string]any{"session_blocks": tenant.DefaultDepositBlocks, "client_location": demoClientLocation, "max_rtt_ms": demoMaxRTTMs,
			"commit_blocks": 1, "reveal_blocks": 2}, nil
	}
	return nil, nil
}
