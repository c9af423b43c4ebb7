package sim

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
)

// timers add up the process's CPU time (user and system, garbage collection
// included) spent in each part of a block: unlike wall time, it does not count the
// time other programs on a shared machine take from it.
type timers struct {
	orders, bids, endBlock, lifecycle time.Duration
}

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Result is what a run measured.
type Result struct {
	Pricing   string `json:"pricing"`
	GPUs      uint64 `json:"gpus"`
	Providers int    `json:"providers"`
	Blocks    int    `json:"blocks"`
	// StoppedEarly: the run reached Config.MaxDuration before its last block.
	StoppedEarly bool `json:"stopped_early,omitempty"`
	// KeysAfterBuild is the number of state records once the network is registered.
	KeysAfterBuild int `json:"state_keys_after_build"`

	Orders     int `json:"orders"`
	Leased     int `json:"orders_leased"`
	Redeployed int `json:"leases_redeployed"`
	Candidates int `json:"candidates_offered"`
	Bids       int `json:"bids"`
	Starts     int `json:"leases_started"`
	Heartbeats int `json:"heartbeats"`
	Completed  int `json:"leases_completed"`
	RefusedTxs int `json:"refused_txs"`
	// WentOffline counts providers taken offline by churn.
	WentOffline int `json:"providers_went_offline"`
	// OrdersByMode counts orders by the pricing mode they named: all in the run's
	// mode, but for performance pricing, which leaves to the auction the orders it
	// cannot price (CPU only, or a GPU model without a catalogue score).
	OrdersByMode map[string]int `json:"orders_by_mode"`
	// Unfilled counts orders that closed without ever leasing (expired, or refused
	// by the order book); Unrevealed sealed bids a provider did not reveal (offline),
	// forfeiting its deposit.
	Unfilled   int `json:"orders_unfilled"`
	Unrevealed int `json:"sealed_bids_unrevealed,omitempty"`

	// FillRate is orders leased / orders placed.
	FillRate float64 `json:"fill_rate"`
	// TimeToLease is blocks from an order's placement to its first lease.
	TimeToLeaseMean float64 `json:"time_to_lease_blocks_mean"`
	TimeToLeaseP50  float64 `json:"time_to_lease_blocks_p50"`
	TimeToLeaseP95  float64 `json:"time_to_lease_blocks_p95"`
	// PriceDispersion is the coefficient of variation (stddev / mean) of the price
	// per GPU-hour of leases of one model, averaged over models weighted by leases.
	PriceDispersion float64 `json:"price_dispersion"`
	// PricePerGPUHour is the median lease price per GPU-hour per model, in the
	// reference currency (USD).
	PricePerGPUHour map[string]float64 `json:"price_usd_per_gpu_hour"`
	// Utilization is leased GPUs / GPUs at the end, and its mean over the samples.
	Utilization     float64 `json:"utilization"`
	UtilizationMean float64 `json:"utilization_mean"`

	// What the run's orders cost their tenants (escrow paid to providers, held-back
	// pay and protocol fees included), what providers earned (escrow paid and held
	// for them, net of fees, plus the
	// stake pool's epoch rewards, which the chain pays whatever mode orders use, from
	// the community pool's fees and forfeits), and the fees, by the end of the run, in ukiln and
	// in the reference currency; ProviderUSDPerGPUHour is providers' earnings per
	// registered GPU per hour of the run (1-second blocks): what a GPU earns in this
	// mode, idle time included.
	TenantCostUkiln       uint64  `json:"tenant_cost_ukiln,string"`
	ProviderRevenueUkiln  uint64  `json:"provider_revenue_ukiln,string"`
	FeesUkiln             uint64  `json:"protocol_fees_ukiln,string"`
	StakeRewardsUkiln     uint64  `json:"stake_rewards_ukiln,string"`
	TenantCostUSD         float64 `json:"tenant_cost_usd"`
	ProviderRevenueUSD    float64 `json:"provider_revenue_usd"`
	TenantUSDPerOrder     float64 `json:"tenant_cost_usd_per_leased_order"`
	ProviderUSDPerGPUHour float64 `json:"provider_revenue_usd_per_gpu_hour"`

	// MatchMicros is the chain's CPU time per leased order spent placing orders,
	// taking bids (the free-capacity search included) and running end-block (window
	// closes, leases, and the per-block settlement of running leases), in
	// microseconds; OrdersPerSecond is its inverse: orders matched per CPU-second.
	MatchMicros     float64 `json:"match_us_per_order"`
	OrdersPerSecond float64 `json:"orders_per_s"`
	// LifecycleMicros is the CPU time per leased order spent on start, heartbeat and
	// completion messages.
	LifecycleMicros float64 `json:"lifecycle_us_per_order"`
	BuildSeconds    float64 `json:"build_s"`
	RunSeconds      float64 `json:"run_s"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`

	Series []Sample `json:"-"`

	timeToLease []float64
	prices      map[string][]float64
}

// Sample is one row of the time series.
type Sample struct {
	Height int64 `json:"height"`
	// PriceUSD is the median price per GPU-hour of the leases made since the previous
	// sample (NaN when none were).
	PriceUSD    float64 `json:"price_usd_per_gpu_hour"`
	Utilization float64 `json:"utilization"`
	Orders      int     `json:"orders"`
	Leased      int     `json:"orders_leased"`
}

// Run builds the network of cfg and runs it, returning what it measured.
func Run(cfg Config) (Result, error) {
	start := time.Now()
	s, err := New(cfg)
	if err != nil {
		return Result{}, err
	}
	built := time.Since(start)
	res, err := s.Run()
	res.BuildSeconds = built.Seconds()
	return res, err
}

// Compare runs cfg once per pricing mode of modes (every mode the chain has when
// empty), in that order, each on a network of its own built from the same seed: the
// same providers, prices and churn, and the same tenants' orders, shaped only as far
// as each mode demands (newOrder). Memory is returned between runs.
func Compare(cfg Config, modes []string) ([]Result, error) {
	if len(modes) == 0 {
		modes = market.ModeNames()
	}
	var out []Result
	for _, m := range modes {
		c := cfg
		c.Mode = m
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "sim: pricing mode %s\n", m)
		}
		res, err := Run(c)
		if err != nil {
			return out, fmt.Errorf("mode %s: %w", m, err)
		}
		out = append(out, res)
		runtime.GC()
		debug.FreeOSMemory()
	}
	return out, nil
}

// Run runs the built network for cfg.Blocks blocks.
func (s *Sim) Run() (Result, error) {
	s.res.Pricing = modeName(s.cfg.Mode)
	s.res.prices = map[string][]float64{}
	var bar *progressbar.ProgressBar
	if s.cfg.Progress != nil {
		bar = progressbar.NewOptions(s.cfg.Blocks, progressbar.OptionSetWriter(s.cfg.Progress),
			progressbar.OptionSetDescription(fmt.Sprintf("sim %d GPUs", s.gpus)), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	start := time.Now()
	var utilSum float64
	lastOrders, lastLeased := 0, 0
	ran := 0
	for b := 1; b <= s.cfg.Blocks; b++ {
		if s.cfg.MaxDuration > 0 && time.Since(start) > s.cfg.MaxDuration {
			s.res.StoppedEarly = true
			break
		}
		ran = b
		if err := s.step(); err != nil {
			return s.res, err
		}
		if b%s.cfg.SampleEvery == 0 || b == s.cfg.Blocks {
			u := float64(s.usedGPUs) / float64(max(s.gpus, 1))
			utilSum += u
			sm := Sample{Height: s.height, PriceUSD: math.NaN(), Utilization: u, Orders: s.res.Orders - lastOrders, Leased: s.res.Leased - lastLeased}
			if len(s.window) > 0 {
				sm.PriceUSD = percentile(s.window, 0.5)
			}
			s.window = s.window[:0]
			lastOrders, lastLeased = s.res.Orders, s.res.Leased
			s.res.Series = append(s.res.Series, sm)
		}
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	r := &s.res
	r.Blocks = ran
	r.RunSeconds = time.Since(start).Seconds()
	if r.Orders > 0 {
		r.FillRate = float64(r.Leased) / float64(r.Orders)
	}
	if n := len(r.timeToLease); n > 0 {
		sum := 0.0
		for _, x := range r.timeToLease {
			sum += x
		}
		r.TimeToLeaseMean = sum / float64(n)
		r.TimeToLeaseP50 = percentile(r.timeToLease, 0.5)
		r.TimeToLeaseP95 = percentile(r.timeToLease, 0.95)
	}
	r.PricePerGPUHour = map[string]float64{}
	var cvSum, cvN float64
	models := make([]string, 0, len(r.prices))
	for m := range r.prices {
		models = append(models, m)
	}
	sort.Strings(models)
	for _, m := range models {
		ps := r.prices[m]
		r.PricePerGPUHour[m] = round(percentile(ps, 0.5), 4)
		mean, sq := 0.0, 0.0
		for _, p := range ps {
			mean += p
		}
		mean /= float64(len(ps))
		for _, p := range ps {
			sq += (p - mean) * (p - mean)
		}
		if mean > 0 {
			cvSum += math.Sqrt(sq/float64(len(ps))) / mean * float64(len(ps))
			cvN += float64(len(ps))
		}
	}
	if cvN > 0 {
		r.PriceDispersion = round(cvSum/cvN, 4)
	}
	r.Utilization = round(float64(s.usedGPUs)/float64(max(s.gpus, 1)), 4)
	if n := len(r.Series); n > 0 {
		r.UtilizationMean = round(utilSum/float64(n), 4)
	}
	match := s.timers.orders + s.timers.bids + s.timers.endBlock
	if r.Leased > 0 {
		r.MatchMicros = round(float64(match.Microseconds())/float64(r.Leased), 2)
		r.LifecycleMicros = round(float64(s.timers.lifecycle.Microseconds())/float64(r.Leased), 2)
		r.OrdersPerSecond = round(float64(r.Leased)/match.Seconds(), 1)
	}
	s.money()
	r.PeakRSSMiB = PeakRSSMiB()
	return *r, nil
}

// money adds up what the run's orders paid, from their escrow accounts.
func (s *Sim) money() {
	r := &s.res
	ctx := s.lg.Context(s.height)
	for id := range s.orders {
		a, ok := escrow.Get(ctx, id)
		if !ok {
			continue
		}
		// NB: pay held back for the dispute window (escrow's holdback_bps) is the
		// provider's once the window closes; no one disputes in the simulator.
		r.TenantCostUkiln += a.Paid + a.Held + a.Fees
		r.ProviderRevenueUkiln += a.Paid + a.Held
		r.FeesUkiln += a.Fees
	}
	r.ProviderRevenueUkiln += r.StakeRewardsUkiln
	usd := func(ukiln uint64) float64 { return round(float64(ukiln)/1e6*s.cfg.USDPerKILN, 4) }
	r.TenantCostUSD, r.ProviderRevenueUSD = usd(r.TenantCostUkiln), usd(r.ProviderRevenueUkiln)
	if r.Leased > 0 {
		r.TenantUSDPerOrder = round(r.TenantCostUSD/float64(r.Leased), 4)
	}
	if s.gpus > 0 && r.Blocks > 0 {
		r.ProviderUSDPerGPUHour = round(r.ProviderRevenueUSD/float64(s.gpus)/(float64(r.Blocks)/3600), 4)
	}
}

// PeakRSSMiB is the process's peak resident memory (getrusage maxrss), in MiB.
func PeakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return round(float64(ms.Sys)/(1<<20), 1)
	}
	return round(float64(ru.Maxrss)/1024, 1) // NB: Linux reports KiB
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
