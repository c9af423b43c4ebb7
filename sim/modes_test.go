package sim

import (
	"testing"

	"github.com/kiln-network/kiln/x/market"
)

// Every pricing mode runs on the same small network and order stream with every
// invariant checked after every block: orders lease, jobs run and finish, tenants pay
// and providers earn, each mode with its own latency.
func TestEveryModeSmallNetwork(t *testing.T) {
	for _, mode := range market.ModeNames() {
		t.Run(mode, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.GPUs, cfg.Blocks, cfg.OrdersPerBlock, cfg.Churn, cfg.JobBlocksMin, cfg.JobBlocksMax = 600, 80, 6, 0.01, 3, 30
			cfg.Mode, cfg.CheckInvariants = mode, true
			res, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d orders %v, %d leased (fill %.2f), p50 %.0f blocks, %d redeployed, %d completed, %d unfilled, util %.2f, cost $%.2f, revenue $%.2f, fees %d ukiln, rewards %d",
				mode, res.Orders, res.OrdersByMode, res.Leased, res.FillRate, res.TimeToLeaseP50, res.Redeployed, res.Completed, res.Unfilled, res.UtilizationMean,
				res.TenantCostUSD, res.ProviderRevenueUSD, res.FeesUkiln, res.StakeRewardsUkiln)
		})
	}
}
