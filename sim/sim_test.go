package sim

import (
	"testing"
)

// A small network runs with every invariant checked after every block: orders are
// placed, bid on from the free-capacity index, leased, started, finished; churn makes
// leases time out and auto_redeploy orders lease again; money is conserved.
func TestSmallNetworkKeepsInvariants(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GPUs, cfg.Blocks, cfg.OrdersPerBlock, cfg.Churn, cfg.JobBlocksMin, cfg.JobBlocksMax = 600, 120, 8, 0.01, 3, 40
	cfg.CheckInvariants = true
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d orders, %d leased, %d redeployed, %d completed, fill %.2f, utilization %.2f, dispersion %.3f", res.Orders, res.Leased, res.Redeployed, res.Completed, res.FillRate, res.Utilization, res.PriceDispersion)
	if res.Leased == 0 || res.Completed == 0 || res.FillRate < 0.5 {
		t.Fatalf("network did little: %d orders, %d leased, %d completed", res.Orders, res.Leased, res.Completed)
	}
	if res.WentOffline == 0 || res.Redeployed == 0 {
		t.Errorf("churn had no effect: %d offline, %d redeployed", res.WentOffline, res.Redeployed)
	}
	if res.Utilization <= 0 || res.Utilization > 1 {
		t.Errorf("utilization %v out of (0, 1]", res.Utilization)
	}
}
