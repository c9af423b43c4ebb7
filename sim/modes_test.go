package sim

import (
	"testing"

	"github.com/kiln-network/kiln/x/market"
)

// Every pricing mode runs (Compare) on the same small network and order stream with
// every invariant checked after every block: orders lease with each mode's own
// latency, jobs run and finish, tenants pay, providers earn, and the money adds up.
func TestEveryModeSmallNetwork(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GPUs, cfg.Blocks, cfg.OrdersPerBlock, cfg.Churn, cfg.JobBlocksMin, cfg.JobBlocksMax = 300, 104, 3, 0.01, 3, 30
	cfg.CheckInvariants = true
	runs, err := Compare(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != len(market.ModeNames()) {
		t.Fatalf("%d runs, want one per mode %v", len(runs), market.ModeNames())
	}
	// Blocks from placement to lease: the book fills in the order's own block and
	// stake work is assigned at its end; the auction and performance pricing close a
	// one-block window; sealed bids commit in one block and reveal in the next two.
	latency := map[string]float64{market.ModeAuction: 1, market.ModeMarket: 0, market.ModePerformance: 1, market.ModeSealed: 3, market.ModeStake: 0}
	for i, r := range runs {
		t.Logf("%s: %d orders %v, %d leased (fill %.2f), p50 %.0f blocks, %d redeployed, %d completed, %d unfilled, util %.2f, paid $%.4f, earned $%.4f, fees %d, rewards %d",
			r.Pricing, r.Orders, r.OrdersByMode, r.Leased, r.FillRate, r.TimeToLeaseP50, r.Redeployed, r.Completed, r.Unfilled, r.UtilizationMean,
			r.TenantCostUSD, r.ProviderRevenueUSD, r.FeesUkiln, r.StakeRewardsUkiln)
		if r.Pricing != market.ModeNames()[i] {
			t.Errorf("run %d is %s, want %s", i, r.Pricing, market.ModeNames()[i])
		}
		if r.Orders != runs[0].Orders || r.GPUs != runs[0].GPUs {
			t.Errorf("%s: %d orders on %d GPUs, auction had %d on %d: not the same network and stream", r.Pricing, r.Orders, r.GPUs, runs[0].Orders, runs[0].GPUs)
		}
		if r.Leased == 0 || r.Completed == 0 || r.FillRate < 0.6 {
			t.Errorf("%s did little: %d orders, %d leased, %d completed", r.Pricing, r.Orders, r.Leased, r.Completed)
		}
		if r.TimeToLeaseP50 != latency[r.Pricing] {
			t.Errorf("%s: time to lease p50 %v blocks, want %v", r.Pricing, r.TimeToLeaseP50, latency[r.Pricing])
		}
		if r.TenantCostUkiln == 0 || r.FeesUkiln == 0 || r.TenantCostUkiln != r.ProviderRevenueUkiln-r.StakeRewardsUkiln+r.FeesUkiln {
			t.Errorf("%s: tenants paid %d, providers earned %d (%d of it stake rewards), fees %d: does not add up", r.Pricing, r.TenantCostUkiln,
				r.ProviderRevenueUkiln, r.StakeRewardsUkiln, r.FeesUkiln)
		}
		want := map[string]bool{r.Pricing: true}
		if r.Pricing == market.ModePerformance {
			want[market.ModeAuction] = true // NB: CPU-only orders and unscored models
		}
		for m, n := range r.OrdersByMode {
			if !want[m] || n == 0 {
				t.Errorf("%s: %d orders in mode %s", r.Pricing, n, m)
			}
		}
	}
	byMode := map[string]Result{}
	for _, r := range runs {
		byMode[r.Pricing] = r
	}
	if byMode[market.ModeStake].StakeRewardsUkiln == 0 {
		t.Errorf("the stake run paid no epoch rewards in %d blocks", cfg.Blocks)
	}
	if byMode[market.ModeSealed].Unrevealed == 0 {
		t.Errorf("no sealed bid went unrevealed despite churn")
	}
}
