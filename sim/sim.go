package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// Sim is a synthetic network on the chain's market code. Build it with New, then Run.
type Sim struct {
	cfg    Config
	rng    *rand.Rand
	aux    *rand.Rand // salts: draws that must not shift the order stream between modes
	drv    driver
	lg     *app.Ledger
	kv     *store.Mem
	height int64
	t0     time.Time
	mp     market.Params

	provs   []*prov
	byAddr  map[types.Address]*prov
	tenants []types.Address
	gpus    uint64 // GPUs registered

	orders  map[uint64]*order
	nextID  uint64
	actions map[int64][]uint64 // height → leases (order IDs) their provider acts on
	toBid   []uint64           // orders whose bid window opens in the next block
	// pending are the orders that may lease next (placed, or re-opened), in the
	// order they became so; checked after every block.
	pending []uint64
	reveals map[int64][]reveal // height → sealed bids revealed then

	usedGPUs uint64 // GPUs held by leases the simulator knows are active
	// promised is what each provider's bids of the current block would take (GPUs,
	// or CPU millicores for CPU-only orders).
	promised map[types.Address]uint64
	timers   timers
	res      Result
	window   []float64 // price per GPU-hour (USD) of leases made since the last sample
}

type prov struct {
	addr         types.Address
	factor       float64 // the provider's price relative to the reference
	offlineUntil int64
	inv          registry.Inventory
}

type order struct {
	id           uint64
	mode         string
	autoRedeploy bool
	placed       int64
	window       int64 // BidOpenHeight the simulator last bid for
	offered      int64 // height providers last looked at it
	gpus         uint64
	maxPrice     uint64
	groups       []market.Group
	leased       int64 // height of its first lease, 0 before
	// the current lease, while the simulator follows it
	provider types.Address
	attempt  uint32
	jobLen   int64 // blocks the job runs once started
	endAt    int64
	lastBeat int64
	started  bool
	leaseGPU uint64
}

// New builds the network of cfg: genesis, tenants and providers registered in blocks
// through the registry's own messages, until the providers' GPUs reach cfg.GPUs.
func New(cfg Config) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6b696c6e)), aux: rand.New(rand.NewPCG(cfg.Seed, 0x73616c74)), kv: store.NewMem(),
		byAddr: map[types.Address]*prov{}, orders: map[uint64]*order{}, actions: map[int64][]uint64{}, reveals: map[int64][]reveal{},
		drv: drivers[modeName(cfg.Mode)], t0: time.Unix(1_700_000_000, 0).UTC()}
	s.res.OrdersByMode = map[string]int{}
	g := app.DefaultGenesis()
	// NB: short start and heartbeat timeouts, so that churn shows within a run of a
	// few hundred blocks; every other parameter is the chain's default.
	g.Params.Market.StartTimeoutBlocks = 10
	g.Params.Market.HeartbeatIntervalBlocks = 10
	g.Params.Market.HeartbeatTimeoutBlocks = 30
	s.mp = g.Params.Market
	val := types.ModuleAddress("sim-validator")
	pub := make([]byte, 32)
	binary.BigEndian.PutUint64(pub, cfg.Seed)
	g.Staking.Validators = []staking.GenesisValidator{{Operator: val, ConsPubKey: pub, Moniker: "sim", Tokens: 1_000_000_000}}
	lg, err := app.NewLedger(s.kv, g, app.Options{})
	if err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	s.lg = lg
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	// Tenants and providers are funded by minting in a setup block: the simulator's
	// stand-in for the genesis balances a real network starts from.
	ctx := s.begin()
	for i := range 1000 {
		a := types.ModuleAddress(fmt.Sprintf("sim-tenant-%d", i))
		if err := bank.Mint(ctx, a, types.NewCoin(types.NativeDenom, 1_000_000_000_000_000)); err != nil {
			return nil, err
		}
		s.tenants = append(s.tenants, a)
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "sim: registering providers until they hold %d GPUs\n", cfg.GPUs)
	}
	const perBlock = 2000
	for s.gpus < uint64(cfg.GPUs) {
		ctx := s.begin()
		for i := 0; i < perBlock && s.gpus < uint64(cfg.GPUs); i++ {
			p := s.newProvider(len(s.provs))
			if err := bank.Mint(ctx, p.addr, types.NewCoin(types.NativeDenom, 10_000_000_000)); err != nil {
				return nil, err
			}
			if err := s.lg.Deliver(&registry.MsgRegisterProvider{Owner: p.addr, Endpoint: "https://127.0.0.1:8443", CertPEM: cert,
				Inventory: p.inv, Stake: types.NewCoin(types.NativeDenom, 100_000_000)}); err != nil {
				return nil, fmt.Errorf("register provider %d: %w", len(s.provs), err)
			}
			s.provs = append(s.provs, p)
			s.byAddr[p.addr] = p
			s.gpus += p.inv.TotalGPUs()
		}
		if err := s.end(); err != nil {
			return nil, err
		}
	}
	if err := s.drv.setup(s); err != nil {
		return nil, fmt.Errorf("set up pricing %s: %w", modeName(cfg.Mode), err)
	}
	s.res.Providers = len(s.provs)
	s.res.GPUs = s.gpus
	s.res.KeysAfterBuild = s.kv.Len()
	return s, nil
}

// providerSizes are GPUs per provider and their weights: most providers are one
// 8-GPU server, many are a gaming card or two, a few are racks.
var providerSizes = []struct {
	gpus   uint32
	weight int
}{{1, 20}, {2, 10}, {4, 15}, {8, 40}, {16, 10}, {32, 5}}

func weighted[T any](r *rand.Rand, items []T, weight func(T) int) T {
	total := 0
	for _, it := range items {
		total += weight(it)
	}
	n := r.IntN(total)
	for _, it := range items {
		if n -= weight(it); n < 0 {
			return it
		}
	}
	return items[len(items)-1]
}

func (s *Sim) newProvider(i int) *prov {
	r := s.rng
	size := weighted(r, providerSizes, func(x struct {
		gpus   uint32
		weight int
	}) int {
		return x.weight
	}).gpus
	inv := registry.Inventory{Source: "declared", Region: Regions[r.IntN(len(Regions))], Runtime: registry.DefaultRuntime()}
	m := weighted(r, Catalogue, func(m Model) int { return m.Weight })
	if size >= 8 && r.IntN(5) == 0 {
		// NB: one server in five of 8+ GPUs mixes two models, half and half.
		m2 := weighted(r, Catalogue, func(m Model) int { return m.Weight })
		if m2 != m {
			inv.GPUs = append(inv.GPUs, m.gpu(size/2), m2.gpu(size-size/2))
		}
	}
	if inv.GPUs == nil {
		inv.GPUs = []registry.GPU{m.gpu(size)}
	}
	inv.CPUCores = uint64(size)*8 + 8
	inv.MemoryBytes = uint64(size)*64*registry.Gi + 32*registry.Gi
	inv.StorageBytes = uint64(size) * 2 * registry.Ti
	return &prov{addr: types.ModuleAddress(fmt.Sprintf("sim-provider-%d", i)), factor: 0.75 + 0.5*r.Float64(), inv: inv}
}

func selfSigned() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sim-provider"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0)}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func (s *Sim) begin() *types.Context {
	s.height++
	return s.lg.Begin(s.height, s.t0.Add(time.Duration(s.height)*time.Second))
}

func (s *Sim) end() error {
	s.lg.End()
	if s.cfg.CheckInvariants {
		return s.lg.CheckInvariants(s.height)
	}
	return nil
}

// ukilnPerBlock converts a price per hour in the reference currency to ukiln per
// 1-second block.
func (s *Sim) ukilnPerBlock(usdPerH float64) float64 { return usdPerH / 3600 / s.cfg.USDPerKILN * 1e6 }

// usdPerH converts a price in ukiln per block back.
func (s *Sim) usdPerH(ukiln float64) float64 { return ukiln * 3600 * s.cfg.USDPerKILN / 1e6 }

func modelPrice(name string) float64 {
	best := 0.0
	for _, m := range Catalogue {
		if m.Name == name {
			best = max(best, m.USDPerH)
		}
	}
	return best
}

// anyGPUUSDPerH is what a tenant asking for any GPU pays per GPU-hour (a mid-range
// card), and anyGPUUSDPerTFLOPH per TFLOP-hour (what the catalogue's cheaper TFLOPS
// cost).
const (
	anyGPUUSDPerH      = 0.8
	anyGPUUSDPerTFLOPH = 0.03
)

// newOrder draws a tenant's order: mostly one instance of 1-8 GPUs of a named model
// (sometimes either of two, sometimes any), some pinned to a region, some CPU only,
// at a max price 10-60% above the reference. The draw is the same in every mode (the
// same seed gives the same tenants, sizes, models, regions and jobs); the order is
// then shaped only as its mode demands: the order book prices one GPU model per
// order (either of two: the first; any: one drawn by the network's shares), and
// performance pricing bills GPU work per TFLOP-hour, so its max price is per
// TFLOP-hour, and an order it cannot price (CPU only, or a model the catalogue has
// no score for) goes to the auction.
func (s *Sim) newOrder() (*market.MsgCreateOrder, uint64, int) {
	r := s.rng
	mode := modeName(s.cfg.Mode)
	g := market.Group{Name: "job", Count: 1, StorageBytes: 50 * registry.Gi}
	var refUSD float64
	var gpus uint64
	var models []string
	cpuOnly := r.Float64() < s.cfg.CPUOrderShare
	// NB: every draw is made whatever the order turns out to be, so that the
	// stream stays aligned across modes and seeds.
	cores := uint64(1 + r.IntN(8))
	units := weighted(r, []uint32{1, 1, 1, 1, 2, 2, 4, 4, 8, 8}, func(uint32) int { return 1 })
	m1 := weighted(r, Catalogue, func(m Model) int { return m.Weight }).Name
	m2 := weighted(r, Catalogue, func(m Model) int { return m.Weight }).Name
	m3 := weighted(r, Catalogue, func(m Model) int { return m.Weight }).Name
	kind := r.IntN(20)
	if cpuOnly {
		g.CPUMilli, g.MemoryBytes = cores*1000, cores*4*registry.Gi
		refUSD = float64(cores) * cpuUSDPerCoreH
	} else {
		gpus = uint64(units)
		g.GPU.Units = units
		g.CPUMilli, g.MemoryBytes = uint64(units)*4000, uint64(units)*32*registry.Gi
		switch {
		case kind < 13:
			models = []string{m1}
		case kind < 16 && m2 != m1:
			models = []string{m1, m2}
		case kind < 16:
			models = []string{m1}
		}
		if mode == market.ModeMarket {
			if len(models) == 0 {
				models = []string{m3}
			}
			models = models[:1]
		}
		perGPU := anyGPUUSDPerH
		if len(models) > 0 {
			perGPU = 0
			for _, m := range models {
				g.GPU.Models = append(g.GPU.Models, market.GPUFilter{Model: m})
				perGPU = max(perGPU, modelPrice(m))
			}
		}
		refUSD = perGPU * float64(units)
	}
	if r.IntN(4) == 0 {
		g.Region = Regions[r.IntN(len(Regions))]
	}
	markup := 1.1 + 0.5*r.Float64()
	maxPrice := uint64(math.Ceil(s.ukilnPerBlock(refUSD) * markup))
	jobs := s.cfg.JobBlocksMax + 20
	dep := maxPrice * uint64(int(s.mp.MinDepositBlocks)+jobs)
	m := &market.MsgCreateOrder{Owner: s.tenants[r.IntN(len(s.tenants))], Kind: market.KindBatch, Groups: []market.Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, dep), AutoRedeploy: r.IntN(2) == 0, Mode: mode}
	if mode == market.ModePerformance {
		m.Mode = market.ModeAuction
		if unit, ok := perfReference(models); ok && !cpuOnly {
			// NB: the work a block bills at the unit cap is at most the per-block
			// reference, so the deposit it needs stays; the chain also wants
			// min_deposit_blocks of the max price, which is per TFLOP-hour here.
			m.Mode, m.MaxPrice = market.ModePerformance, uint64(math.Ceil(unit/s.cfg.USDPerKILN*1e6*markup))
			m.Deposit.Amount = max(m.Deposit.Amount, m.MaxPrice*s.mp.MinDepositBlocks)
		}
	}
	return m, gpus, s.cfg.JobBlocksMin + r.IntN(s.cfg.JobBlocksMax-s.cfg.JobBlocksMin+1)
}

// perfReference is a tenant's reference price per TFLOP-hour (USD) for GPUs of any
// of models (none: any GPU); false when one has no catalogue score.
func perfReference(models []string) (float64, bool) {
	if len(models) == 0 {
		return anyGPUUSDPerTFLOPH, true
	}
	best := 0.0
	for _, m := range models {
		tf := tflops(m)
		if tf == 0 {
			return 0, false
		}
		best = max(best, modelPrice(m)/tf)
	}
	return best, true
}

// track records order m, just placed as the next order ID, for the simulator to
// follow.
func (s *Sim) track(m *market.MsgCreateOrder, gpus uint64, jobBlocks int) *order {
	s.nextID++
	o := &order{id: s.nextID, mode: m.Mode, autoRedeploy: m.AutoRedeploy, placed: s.height, gpus: gpus, maxPrice: m.MaxPrice,
		groups: m.Groups, jobLen: int64(jobBlocks)}
	s.orders[o.id] = o
	s.res.OrdersByMode[o.mode]++
	return o
}

// price is what provider p asks for the GPUs and CPU candidate c would reserve: per
// block, or for a performance-priced order per TFLOP-hour of those GPUs' scores
// (false when one has none: its work would bill nothing).
func (s *Sim) price(p *prov, c market.Candidate, mode string) (uint64, bool) {
	usd := float64(c.Usage.CPUMilli) / 1000 * cpuUSDPerCoreH
	var work float64
	for _, g := range c.Usage.GPUs {
		usd += float64(g.Count) * modelPrice(g.Model)
		tf := tflops(g.Model)
		if tf == 0 {
			work = math.Inf(-1)
		}
		work += float64(g.Count) * tf
	}
	if mode == market.ModePerformance {
		if !(work > 0) {
			return 0, false
		}
		return uint64(math.Ceil(usd * p.factor / work / s.cfg.USDPerKILN * 1e6)), true
	}
	return uint64(math.Ceil(s.ukilnPerBlock(usd * p.factor))), true
}

func (s *Sim) online(p *prov) bool { return s.height >= p.offlineUntil }

// errLease: the lease the simulator followed is gone (closed on chain).
var errLease = errors.New("lease closed")

// act runs a provider's duties on the lease of order id in this block: start it,
// heartbeat it, finish it. It returns the next height it acts, or 0 when done.
func (s *Sim) act(o *order) int64 {
	p := s.byAddr[o.provider]
	ctx := s.lg.Context(s.height)
	l, ok := market.GetLease(ctx, o.id)
	if !ok || l.Attempt != o.attempt || l.State != market.LeaseActive {
		s.leaseGone(o, false)
		return 0
	}
	if !s.online(p) {
		// NB: an offline provider does nothing; look again once the chain has had
		// time to notice (heartbeat and start timeouts).
		return s.height + s.mp.HeartbeatTimeoutBlocks + 1
	}
	var err error
	switch {
	case !o.started:
		err = s.lg.Deliver(&market.MsgStartLease{Provider: p.addr, LeaseID: o.id})
		o.started, o.lastBeat = true, s.height
		o.endAt = s.height + o.jobLen
		s.res.Starts++
	case s.height >= o.endAt:
		err = s.lg.Deliver(&market.MsgCompleteLease{Provider: p.addr, LeaseID: o.id, OutputHash: make([]byte, 32)})
		s.res.Completed++
		s.leaseGone(o, err == nil)
		if err != nil {
			s.res.RefusedTxs++
		}
		return 0
	default:
		err = s.lg.Deliver(&market.MsgHeartbeat{Provider: p.addr, LeaseID: o.id})
		o.lastBeat = s.height
		s.res.Heartbeats++
	}
	if err != nil {
		s.res.RefusedTxs++
		s.leaseGone(o, false)
		return 0
	}
	return min(o.endAt, s.height+s.mp.HeartbeatIntervalBlocks)
}

// leaseGone stops following order o's lease; an auto_redeploy order may lease again.
func (s *Sim) leaseGone(o *order, done bool) {
	if o.leaseGPU > 0 {
		s.usedGPUs -= o.leaseGPU
		o.leaseGPU = 0
	}
	if !o.provider.IsZero() && o.autoRedeploy && !done {
		s.pending = append(s.pending, o.id)
	}
	o.provider = types.Address{}
}

// step runs one block.
func (s *Sim) step() error {
	ctx := s.begin()
	h := s.height
	// Providers' duties on their leases.
	t := cpuTime()
	due := s.actions[h]
	delete(s.actions, h)
	for _, id := range due {
		o := s.orders[id]
		if o.provider.IsZero() {
			continue
		}
		if next := s.act(o); next > 0 {
			s.actions[next] = append(s.actions[next], id)
		}
	}
	s.timers.lifecycle += cpuTime() - t

	// Offers on the orders whose window opens now, and the mode's other duties.
	bidding := s.toBid
	s.toBid = nil
	s.promised = map[types.Address]uint64{}
	t = cpuTime()
	s.drv.due(s)
	for _, id := range bidding {
		s.drv.bid(s, ctx, s.orders[id])
	}
	s.timers.bids += cpuTime() - t

	// New orders.
	n := poisson(s.rng, s.cfg.OrdersPerBlock)
	t = cpuTime()
	for range n {
		m, gpus, jobBlocks := s.newOrder()
		if err := s.lg.Deliver(m); err != nil {
			return fmt.Errorf("height %d: create order: %w", h, err)
		}
		s.pending = append(s.pending, s.track(m, gpus, jobBlocks).id)
	}
	s.timers.orders += cpuTime() - t
	s.res.Orders += n

	t = cpuTime()
	s.lg.End()
	s.timers.endBlock += cpuTime() - t
	if s.cfg.CheckInvariants {
		if err := s.lg.CheckInvariants(h); err != nil {
			return err
		}
	}
	s.observe(h)

	// Churn: some providers go offline for a while.
	for range poisson(s.rng, s.cfg.Churn*float64(len(s.provs))) {
		p := s.provs[s.rng.IntN(len(s.provs))]
		p.offlineUntil = h + int64(s.cfg.OfflineBlocks)
		s.res.WentOffline++
	}
	return nil
}

// observe reads what block h did to the orders that may lease: a new lease is
// followed from the next block; an open order with a window not offered in yet is
// offered on in the next block, in modes where providers offer; a closed one is
// forgotten. It
// also counts the stake pool's epoch rewards, paid in the epoch's last block.
func (s *Sim) observe(h int64) {
	rctx := s.lg.Context(h)
	kept := s.pending[:0]
	for _, id := range s.pending {
		o := s.orders[id]
		if !o.provider.IsZero() {
			continue // NB: a duplicate entry of an order followed since
		}
		if l, ok := market.GetLease(rctx, id); ok && l.State == market.LeaseActive && l.Attempt > o.attempt {
			s.leased(o, l, h)
			continue
		}
		mo, ok := market.GetOrder(rctx, id)
		if !ok || mo.State != market.OrderOpen {
			if mo.State == market.OrderClosed && mo.Attempts == 0 {
				s.res.Unfilled++
			}
			continue
		}
		// NB: a window that opened while nobody looked still takes a late offer (the
		// auction arms a fresh window with it); and like a daemon polling the open
		// orders, providers look again at an order whose window passed without a
		// lease, every retryBlocks, while it stays open.
		fresh := mo.BidOpenHeight <= h+1 && o.window != mo.BidOpenHeight
		retry := mo.Mode != market.ModeSealed && mo.BidCloseHeight <= h && h-o.offered >= retryBlocks
		if s.drv.bids() && (fresh || retry) {
			s.toBid = append(s.toBid, id)
		}
		kept = append(kept, id)
	}
	s.pending = kept
	if r, ok := market.LastEpochReward(rctx); ok && r.Height == h {
		s.res.StakeRewardsUkiln += r.Paid
	}
}

// retryBlocks is how often providers look again at an open order nobody leased: as
// often as the chain re-matches a waiting order-book order (book_retry_blocks), so
// the modes compare on the same footing. Sealed orders need no retry: a round
// without a winner opens the next by itself.
const retryBlocks = 2

// leased follows lease l of order o, made in block h.
func (s *Sim) leased(o *order, l market.Lease, h int64) {
	if o.leased == 0 {
		o.leased = h
		s.res.Leased++
		s.res.timeToLease = append(s.res.timeToLease, float64(h-o.placed))
	} else {
		s.res.Redeployed++
	}
	o.provider, o.attempt, o.started = l.Provider, l.Attempt, false
	o.leaseGPU = o.gpus
	s.usedGPUs += o.gpus
	if o.gpus > 0 {
		per := s.usdPerH(float64(l.Price)) / float64(o.gpus)
		s.window = append(s.window, per)
		model := l.GPUs[0].Model
		s.res.prices[model] = append(s.res.prices[model], per)
	}
	s.actions[h+1] = append(s.actions[h+1], o.id)
}

func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 50 {
		// NB: the normal approximation; exact enough for arrival counts this large.
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[int(math.Round(q*float64(len(s)-1)))]
}
