package market

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/big"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// stakeMode is stake-proportional work and rewards (ModeStake), as Phala shares its
// pool: an order is not bid on but assigned, at the end of the block it is placed, to
// one of the providers that fit it, drawn with the block's randomness with weight
// stake x uptime; it pays the order's max price per block. Separately, every
// stake_epoch_blocks a reward pool funded from the community pool (stake_pool_per_epoch,
// at most what the pool holds) is split among providers in proportion to stake x
// proven uptime in that epoch. Uptime is a provider's share of the epoch's heartbeat
// slots it sent a heartbeat in (x/liveness registers measured uptime when present).
//
// The draw is among a sample of the fitting providers, never a scan of all of them
// (stakeCandidates): up to stakeSample of them, found by walking the free-capacity
// index's pool entries (providers with free capacity of the order's class, by
// address) from a random address. Where at most stakeSample providers fit, the draw
// is exactly by stake x uptime among all of them; beyond that, each fitting provider
// is about equally likely to be in the sample (addresses are hashes, so a random
// start lands before any of them about as often), and within it the draw is by
// stake x uptime.
type stakeMode struct{}

// stakeSample is how many fitting providers one assignment draws among; the walk
// that finds them checks at most stakeExamined entries fully and skips at most
// stakeSkipped whose free amount is too small, so one order costs O(stakeSample)
// index reads whatever the network's size. An order that finds none waits a block
// and draws again, from another start.
const (
	stakeSample   = 16
	stakeExamined = examinedFloor + examinedPerCandidate*stakeSample
	stakeSkipped  = 64 * stakeSample
)

// uptimePrefix: provider → uptimeRecord for the current epoch.
var (
	uptimePrefix = []byte("market/uptime/")
	stakeLastKey = []byte("market/stake/last")
)

type uptimeRecord struct {
	Epoch int64 `json:"epoch,string"`
	// Beats counts the heartbeat slots (heartbeat_interval_blocks each) of the epoch
	// in which the provider sent a heartbeat or started a lease.
	Beats    int64 `json:"beats,string"`
	LastSlot int64 `json:"last_slot,string"`
}

// EpochReward is the last stake epoch's pool and what it paid.
type EpochReward struct {
	Epoch     int64  `json:"epoch,string"`
	Height    int64  `json:"height,string"`
	Pool      uint64 `json:"pool,string"`
	Paid      uint64 `json:"paid,string"`
	Providers []struct {
		Provider      types.Address `json:"provider"`
		Stake         uint64        `json:"stake,string"`
		UptimePermill uint64        `json:"uptime_permille"`
		Reward        uint64        `json:"reward,string"`
	} `json:"providers"`
}

func (stakeMode) Name() string { return ModeStake }

func (stakeMode) validateOrder(m *MsgCreateOrder) error {
	if m.Manual {
		return types.InvalidField("manual", true, "stake-pool work is assigned by stake x uptime; nobody picks")
	}
	return nil
}

// Open schedules the assignment at the end of this block.
func (stakeMode) Open(ctx *types.Context, p Params, o *Order) {
	o.BidOpenHeight, o.BidCloseHeight = ctx.Height, ctx.Height
	if o.ExpireHeight < ctx.Height {
		o.ExpireHeight = ctx.Height + p.OrderTTLBlocks
	}
	schedule(ctx, o, ctx.Height)
}

func (stakeMode) Bid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) error {
	return types.Wrapf(types.ErrModeMismatch, "order %d is stake-pool work: it is assigned by stake x uptime, not bid on", o.ID)
}

func (stakeMode) Pick(ctx *types.Context, p Params, o *Order, m *MsgCreateLease) error {
	return types.Wrapf(types.ErrModeMismatch, "order %d is stake-pool work: it is assigned by stake x uptime", o.ID)
}

// Check assigns o to a provider drawn by stake x uptime among a sample of those that
// fit; with none it tries again next block, until it expires.
func (stakeMode) Check(ctx *types.Context, p Params, o *Order) {
	r := ctx.Rand("market/stake-assign", binary.BigEndian.AppendUint64(nil, o.ID), binary.BigEndian.AppendUint32(nil, o.Attempts))
	cands, total := stakeCandidates(ctx, p, o, r)
	if len(cands) == 0 {
		if ctx.Height >= o.ExpireHeight {
			closeOrder(ctx, o, ReasonNoBids)
			return
		}
		schedule(ctx, o, ctx.Height+1)
		setOrder(ctx, o)
		return
	}
	// A uniform draw below the total weight, from 128 random bits (bias < 2^-64 for
	// any total below 2^64 x 1000).
	x := new(big.Int).SetBytes(r.Bytes(24))
	x.Mod(x, total)
	for _, c := range cands {
		if x.Cmp(c.w) < 0 {
			makeLease(ctx, p, o, c.b)
			return
		}
		x.Sub(x, c.w)
	}
	panic("market: stake draw fell past every candidate")
}

// stakeCand is a provider that can take stake-pool work, with its weight.
type stakeCand struct {
	b Bid
	w *big.Int
}

// stakeCandidates returns up to stakeSample providers per class of o's GPU filters
// (or CPU) that can take o now, with their weights (bonded stake x uptime, at least
// stake_min_uptime_permille) and the weights' sum. It walks the pool entries of the
// index from a random address drawn from r, wrapping once around: a seek per
// address bucket (the first byte) it passes, and at most stakeExamined full checks.
func stakeCandidates(ctx *types.Context, p Params, o *Order, r *types.RandStream) ([]stakeCand, *big.Int) {
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	classes, want, region := searchClass(o.Groups)
	start := r.Bytes(types.AddressLen)
	examined, skipped := stakeExamined, stakeSkipped
	seen := map[types.Address]bool{}
	var cands []stakeCand
	total := new(big.Int)
	for _, class := range classes {
		scope := poolScopeAll(class)
		if region != "" {
			scope = poolScopeRegion(region, class)
		}
		found := 0
		walkRing(ctx, scope, start, func(prov types.Address, free uint64) bool {
			if found == stakeSample || examined == 0 || skipped == 0 {
				return false
			}
			if free < want || seen[prov] || prov == o.Owner {
				skipped--
				return true
			}
			seen[prov] = true
			examined--
			c, ok := eligible(ctx, rp, o, prov)
			if !ok {
				return true
			}
			// NB: a provider not yet measured still gets work, at the floor uptime:
			// how else would it prove any.
			up := max(Uptime(ctx, p, prov), uint64(p.StakeMinUptimePermille))
			w := new(big.Int).Mul(new(big.Int).SetUint64(c.stake), new(big.Int).SetUint64(up))
			if w.Sign() == 0 {
				return true
			}
			total.Add(total, w)
			cands = append(cands, stakeCand{Bid{OrderID: o.ID, Provider: prov, Price: o.MaxPrice, GPUs: c.choices, Usage: c.Usage}, w})
			found++
			return true
		})
	}
	return cands, total
}

// walkRing calls fn for the pool entries under scope (provider → free amount) in
// address order from start, wrapping around to the entries before it, until fn
// returns false. Each address bucket (first byte) is its own prefix walk, so the
// walk costs a seek per bucket it passes plus the entries it visits.
func walkRing(ctx *types.Context, scope, start []byte, fn func(types.Address, uint64) bool) {
	stopped := false
	visit := func(bucket byte, keep func(addr []byte) bool) {
		pre := append(bytes.Clone(scope), bucket)
		ctx.Store.Iterate(pre, func(k, v []byte) bool {
			addr := k[len(scope):]
			if !keep(addr) {
				return true
			}
			var prov types.Address
			copy(prov[:], addr)
			if !fn(prov, binary.BigEndian.Uint64(v)) {
				stopped = true
				return false
			}
			return true
		})
	}
	from := func(addr []byte) bool { return bytes.Compare(addr, start) >= 0 }
	all := func([]byte) bool { return true }
	before := func(addr []byte) bool { return bytes.Compare(addr, start) < 0 }
	visit(start[0], from)
	for i := 1; i < 256 && !stopped; i++ {
		visit(start[0]+byte(i), all)
	}
	if !stopped {
		visit(start[0], before)
	}
}

// noteUptime records that provider p proved itself up at this height (a heartbeat or
// a lease start).
func noteUptime(ctx *types.Context, p Params, prov types.Address) {
	epoch := ctx.Height / p.StakeEpochBlocks
	slot := ctx.Height / p.HeartbeatIntervalBlocks
	k := append(append([]byte{}, uptimePrefix...), prov[:]...)
	var u uptimeRecord
	if !getJSON(ctx, k, &u) || u.Epoch != epoch {
		u = uptimeRecord{Epoch: epoch, LastSlot: -1}
	}
	if u.LastSlot == slot {
		return
	}
	u.Beats++
	u.LastSlot = slot
	setJSON(ctx, k, u)
}

// UptimeSource reports a provider's measured uptime in the current epoch, in
// permille, or false if it has none. x/liveness registers one (RegisterUptime).
type UptimeSource func(ctx *types.Context, provider types.Address) (permille uint64, ok bool)

const uptimeTable = ModuleName + "/uptime"

// RegisterUptime adds a source of measured uptime, consulted (in registration
// order) before the heartbeat count. It panics if h is sealed: a wiring bug.
func RegisterUptime(h *types.Hooks, src UptimeSource) {
	h.MustBeOpen("market uptime")
	t := h.Table(uptimeTable, func() any { return &[]UptimeSource{} }).(*[]UptimeSource)
	*t = append(*t, src)
}

// Uptime returns provider prov's uptime in the current epoch so far, in permille: a
// registered measured source's, else the share of the epoch's heartbeat slots so far
// in which it proved itself up.
func Uptime(ctx *types.Context, p Params, prov types.Address) uint64 {
	if t, ok := ctx.Hooks.Lookup(uptimeTable); ok {
		for _, src := range *t.(*[]UptimeSource) {
			if v, ok := src(ctx, prov); ok {
				return min(v, 1000)
			}
		}
	}
	var u uptimeRecord
	if !getJSON(ctx, append(append([]byte{}, uptimePrefix...), prov[:]...), &u) || u.Epoch != ctx.Height/p.StakeEpochBlocks {
		return 0
	}
	start := u.Epoch * p.StakeEpochBlocks
	slots := (ctx.Height-start)/p.HeartbeatIntervalBlocks + 1
	return min(1000, uint64(u.Beats)*1000/uint64(slots))
}

// stakeRewards pays the epoch's reward pool at its last height: min(stake_pool_per_epoch,
// the community pool) split among the providers with uptime this epoch in proportion
// to stake x uptime, rounded down (the rest stays in the pool); then the epoch's
// uptime records are dropped. O(providers with uptime).
func stakeRewards(ctx *types.Context, p Params) {
	if p.StakeEpochBlocks == 0 || (ctx.Height+1)%p.StakeEpochBlocks != 0 {
		return
	}
	type share struct {
		prov   types.Address
		stake  uint64
		uptime uint64
		w      *big.Int
	}
	var shares []share
	var keys [][]byte
	total := new(big.Int)
	ctx.Store.Iterate(uptimePrefix, func(k, _ []byte) bool {
		keys = append(keys, append([]byte{}, k...))
		return true
	})
	for _, k := range keys {
		var a types.Address
		copy(a[:], k[len(uptimePrefix):])
		up := Uptime(ctx, p, a)
		st := staking.Bonded(ctx, registry.BondPurpose, a)
		if _, ok := registry.Get(ctx, a); ok && up > 0 && st > 0 {
			w := new(big.Int).Mul(new(big.Int).SetUint64(st), new(big.Int).SetUint64(up))
			total.Add(total, w)
			shares = append(shares, share{a, st, up, w})
		}
		ctx.Store.Delete(k)
	}
	pool := min(p.StakePoolPerEpoch, bank.Balance(ctx, bank.CommunityPool, p.Denom))
	rec := EpochReward{Epoch: ctx.Height / p.StakeEpochBlocks, Height: ctx.Height, Pool: pool}
	if pool == 0 || total.Sign() == 0 {
		setJSON(ctx, stakeLastKey, rec)
		return
	}
	for _, s := range shares {
		r := new(big.Int).Mul(new(big.Int).SetUint64(pool), s.w)
		r.Quo(r, total)
		amt := r.Uint64()
		if amt > 0 {
			if err := bank.Send(ctx, bank.CommunityPool, s.prov, types.NewCoin(p.Denom, amt)); err != nil {
				panic(fmt.Sprintf("market: stake reward to %s: %v", s.prov, err))
			}
		}
		rec.Paid += amt
		rec.Providers = append(rec.Providers, struct {
			Provider      types.Address `json:"provider"`
			Stake         uint64        `json:"stake,string"`
			UptimePermill uint64        `json:"uptime_permille"`
			Reward        uint64        `json:"reward,string"`
		}{s.prov, s.stake, s.uptime, amt})
	}
	setJSON(ctx, stakeLastKey, rec)
	ctx.Emit("stake_rewards", "epoch", strconv.FormatInt(rec.Epoch, 10), "pool", idStr(pool), "paid", idStr(rec.Paid),
		"providers", strconv.Itoa(len(shares)))
}

// LastEpochReward returns the last stake epoch's reward record.
func LastEpochReward(ctx *types.Context) (EpochReward, bool) {
	var r EpochReward
	return r, getJSON(ctx, stakeLastKey, &r)
}
