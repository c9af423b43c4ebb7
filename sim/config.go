package sim

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kiln-network/kiln/x/market"
)

// Config is one simulation.
type Config struct {
	// GPUs is the network's size: providers are added until their GPUs reach it.
	GPUs int
	// Blocks is how many blocks the simulation runs (after the network is built).
	Blocks int
	// OrdersPerBlock is the mean number of orders tenants place per block (Poisson).
	OrdersPerBlock float64
	// CPUOrderShare is the share of orders that ask for CPUs only.
	CPUOrderShare float64
	// Churn is the share of providers that go offline in each block; an offline
	// provider stops starting, heartbeating and bidding for OfflineBlocks, so its
	// leases time out on chain and auto_redeploy orders are placed again.
	Churn         float64
	OfflineBlocks int
	// Mode is the pricing mode every order names (market.ValidMode; performance
	// pricing leaves to the auction the orders it cannot price).
	Mode string
	// BidsPerOrder is how many providers bid on each order: the first that many
	// candidates the market's free-capacity index offers.
	BidsPerOrder int
	// JobBlocksMin..JobBlocksMax is how long a job runs once started.
	JobBlocksMin, JobBlocksMax int
	// USDPerKILN converts prices to the reference currency (1 KILN = 1,000,000 ukiln).
	USDPerKILN float64
	// Seed makes a run repeatable.
	Seed uint64
	// SampleEvery is how often (blocks) a row of the time series is taken.
	SampleEvery int
	// CheckInvariants runs the books and every module's invariants after every block:
	// O(state) per block, for tests on small networks.
	CheckInvariants bool
	// MaxDuration bounds a run's wall time (0: none): blocks stop there, and the
	// result says how many ran.
	MaxDuration time.Duration
	// Progress, if set, receives a progress bar.
	Progress io.Writer
}

// DefaultConfig: io.net/Aethir scale (40,000 GPUs), 200 blocks of 200 orders per
// block, one provider in a thousand going offline per block for 40 blocks, five bids
// per order, jobs of 5 to 60 blocks, 1 KILN = $1.
func DefaultConfig() Config {
	return Config{GPUs: 40_000, Blocks: 200, OrdersPerBlock: 200, CPUOrderShare: 0.1, Churn: 0.001, OfflineBlocks: 40,
		Mode: market.ModeAuction, BidsPerOrder: 5, JobBlocksMin: 5, JobBlocksMax: 60, USDPerKILN: 1, Seed: 1, SampleEvery: 5}
}

// Validate checks every field, naming the one that is wrong.
func (c Config) Validate() error {
	switch {
	case c.GPUs < 64 || c.GPUs > 2_000_000:
		return fmt.Errorf("gpus: must be 64 to 2000000 (got %d)", c.GPUs)
	case c.Blocks < 1 || c.Blocks > 100_000:
		return fmt.Errorf("blocks: must be 1 to 100000 (got %d)", c.Blocks)
	case c.OrdersPerBlock <= 0 || c.OrdersPerBlock > 100_000:
		return fmt.Errorf("orders-per-block: must be above 0 and at most 100000 (got %g)", c.OrdersPerBlock)
	case c.CPUOrderShare < 0 || c.CPUOrderShare > 1:
		return fmt.Errorf("cpu-order-share: must be 0 to 1 (got %g)", c.CPUOrderShare)
	case c.Churn < 0 || c.Churn > 0.5:
		return fmt.Errorf("churn: must be 0 to 0.5 (got %g)", c.Churn)
	case c.OfflineBlocks < 1:
		return fmt.Errorf("offline-blocks: must be >= 1 (got %d)", c.OfflineBlocks)
	case !market.ValidMode(c.Mode):
		return fmt.Errorf("mode: %q is not a pricing mode of this chain (%s)", c.Mode, strings.Join(market.ModeNames(), ", "))
	case drivers[modeName(c.Mode)] == nil:
		return fmt.Errorf("mode: the simulator has no provider behaviour for mode %q yet (it has %v)", c.Mode, driverNames())
	case c.BidsPerOrder < 1 || c.BidsPerOrder > 100:
		return fmt.Errorf("bids-per-order: must be 1 to 100 (got %d)", c.BidsPerOrder)
	case c.JobBlocksMin < 1 || c.JobBlocksMax < c.JobBlocksMin || c.JobBlocksMax > 100_000:
		return fmt.Errorf("job-blocks: min %d max %d: need 1 <= min <= max <= 100000", c.JobBlocksMin, c.JobBlocksMax)
	case c.USDPerKILN <= 0:
		return fmt.Errorf("usd-per-kiln: must be above 0 (got %g)", c.USDPerKILN)
	case c.MaxDuration < 0:
		return fmt.Errorf("max-duration: must be >= 0 (got %s)", c.MaxDuration)
	case c.SampleEvery < 1:
		return fmt.Errorf("sample-every: must be >= 1 (got %d)", c.SampleEvery)
	}
	return nil
}

func modeName(p string) string {
	if p == "" {
		return market.ModeAuction
	}
	return p
}
