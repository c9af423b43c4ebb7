package market

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// Stake-pool work is assigned, not bid on, at the end of the block it is placed, to a
// fitting provider drawn by stake x uptime: over many orders a provider with three
// times the stake gets about three times the work; one that cannot fit gets none.
func TestStakeAssignsByWeight(t *testing.T) {
	e := newEnv(t)
	big := e.providerStake("big", "eu-west", 4096, nil, 300_000_000)
	small := e.providerStake("small", "eu-west", 4096, nil, 100_000_000)
	e.providerStake("tiny", "eu-west", 1, nil, 900_000_000) // never fits 2 cores
	got := map[types.Address]int{}
	g := Group{Name: "main", Count: 1, CPUMilli: 2000, MemoryBytes: registry.Gi}
	const n = 200
	for i := 0; i < n; i++ {
		id := uint64(i + 1)
		e.must(&MsgCreateOrder{Owner: e.tenant, Kind: KindBatch, Groups: []Group{g}, MaxPrice: 10, Deposit: types.NewCoin(types.NativeDenom, 1000), Mode: ModeStake})
		if err := e.do(&MsgCreateBid{Provider: big, OrderID: id, Price: 5}); !errors.Is(err, types.ErrModeMismatch) {
			t.Fatalf("bid on stake-pool work: %v", err)
		}
		e.next()
		l, ok := GetLease(e.ctx, id)
		if !ok || l.Price != 10 || l.CreatedHeight != e.ctx.Height-1 {
			t.Fatalf("order %d: lease %+v %v, want assigned in its block at its max price", id, l, ok)
		}
		got[l.Provider]++
		e.must(&MsgCloseLease{Sender: e.tenant, LeaseID: id})
	}
	if got[big]+got[small] != n {
		t.Fatalf("assignments = %v: a provider that does not fit got work", got)
	}
	// 3:1 expected: 150 of 200; binomial sd ~6.1, so 5 sd either side.
	if got[big] < 120 || got[big] > 180 {
		t.Fatalf("big got %d of %d, want about 150 (stake 3:1)", got[big], n)
	}
}

// The epoch's reward pool, from the community pool, is split by stake x proven
// uptime; a provider that proved no uptime gets nothing; money is conserved.
func TestStakeRewards(t *testing.T) {
	e := newEnv(t)
	a := e.providerStake("a", "eu-west", 64, nil, 300_000_000)
	b := e.providerStake("b", "eu-west", 64, nil, 100_000_000)
	idle := e.providerStake("idle", "eu-west", 64, nil, 500_000_000)
	bank.Mint(e.ctx, bank.CommunityPool, types.NewCoin(types.NativeDenom, 10_000_000))
	e.supply += 10_000_000
	p := DefaultParams()
	for e.ctx.Height%p.StakeEpochBlocks != 0 {
		e.next()
	}
	// a and b each run a lease from the epoch's start and heartbeat every interval.
	leaseOf := map[types.Address]uint64{}
	for _, prov := range []types.Address{a, b} {
		id := uint64(len(leaseOf) + 1)
		e.must(&MsgCreateOrder{Owner: e.tenant, Kind: KindService, Groups: []Group{{Name: "m", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi}},
			MaxPrice: 10, Deposit: types.NewCoin(types.NativeDenom, 100_000)})
		e.next()
		e.must(&MsgCreateBid{Provider: prov, OrderID: id, Price: 1})
		e.next()
		e.must(&MsgStartLease{Provider: prov, LeaseID: id})
		leaseOf[prov] = id
	}
	before := map[types.Address]uint64{}
	for _, x := range []types.Address{a, b, idle} {
		before[x] = bank.Balance(e.ctx, x, types.NativeDenom)
	}
	for e.ctx.Height%p.StakeEpochBlocks != p.StakeEpochBlocks-1 {
		if e.ctx.Height%p.HeartbeatIntervalBlocks == 0 {
			for prov, id := range leaseOf {
				e.must(&MsgHeartbeat{Provider: prov, LeaseID: id})
			}
		}
		e.next()
	}
	pool0 := bank.Balance(e.ctx, bank.CommunityPool, types.NativeDenom)
	e.next() // the epoch's last block pays
	r, ok := LastEpochReward(e.ctx)
	if !ok || r.Pool != p.StakePoolPerEpoch || len(r.Providers) != 2 {
		t.Fatalf("epoch reward = %+v %v", r, ok)
	}
	earned := func(x types.Address) uint64 {
		for _, pr := range r.Providers {
			if pr.Provider == x {
				return pr.Reward
			}
		}
		return 0
	}
	ra, rb := earned(a), earned(b)
	if ra == 0 || rb == 0 || ra != 3*rb || earned(idle) != 0 {
		t.Fatalf("rewards a %d b %d idle %d: want 3:1 by stake at equal uptime, idle nothing", ra, rb, earned(idle))
	}
	if got := bank.Balance(e.ctx, idle, types.NativeDenom); got != before[idle] {
		t.Fatalf("idle provider's balance moved: %d -> %d", before[idle], got)
	}
	// NB: the pool also took this block's protocol fees (at most the leases' 2 per block).
	if pool1 := bank.Balance(e.ctx, bank.CommunityPool, types.NativeDenom); pool0-pool1 > r.Paid || pool0+2-pool1 < r.Paid || r.Paid > p.StakePoolPerEpoch {
		t.Fatalf("pool %d -> %d, paid %d", pool0, pool1, r.Paid)
	}
}

// With more fitting providers than one draw's sample, assignment walks the index from
// a random address: over many orders nearly every fitting provider gets work (a fixed
// start would keep giving it to the same few), heavier stakes get more, and a crowd
// of providers that cannot fit never gets any nor hides the ones that can.
func TestStakeSamplesFromRandomStarts(t *testing.T) {
	e := newEnv(t)
	heavy, light := map[types.Address]bool{}, map[types.Address]bool{}
	for i := range 48 {
		if i%3 == 0 {
			heavy[e.providerStake(fmt.Sprintf("heavy-%d", i), "eu-west", 4096, nil, 300_000_000)] = true
		} else {
			light[e.providerStake(fmt.Sprintf("light-%d", i), "eu-west", 4096, nil, 100_000_000)] = true
		}
	}
	for i := range 300 {
		e.providerStake(fmt.Sprintf("tiny-%d", i), "eu-west", 1, nil, 900_000_000) // never fits 2 cores
	}
	got := map[types.Address]int{}
	g := Group{Name: "main", Count: 1, CPUMilli: 2000, MemoryBytes: registry.Gi}
	const n = 300
	for i := range n {
		id := uint64(i + 1)
		e.must(&MsgCreateOrder{Owner: e.tenant, Kind: KindBatch, Groups: []Group{g}, MaxPrice: 10, Deposit: types.NewCoin(types.NativeDenom, 1000), Mode: ModeStake})
		e.next()
		l, ok := GetLease(e.ctx, id)
		if !ok || l.State != LeaseActive {
			t.Fatalf("order %d was not assigned in its block", id)
		}
		if !heavy[l.Provider] && !light[l.Provider] {
			t.Fatalf("order %d went to %s, which cannot fit it", id, l.Provider)
		}
		got[l.Provider]++
		e.must(&MsgCloseLease{Sender: e.tenant, LeaseID: id})
	}
	if len(got) < 40 {
		t.Fatalf("%d of 48 fitting providers got work: the draws do not start at random", len(got))
	}
	h := 0
	for p, c := range got {
		if heavy[p] {
			h += c
		}
	}
	// Exact stake x uptime over all 48 gives heavy 16x3 / (16x3 + 32) = 60%: 180 of
	// 300, binomial sd ~8.5; the sample's draw is close to that.
	if h < 140 || h > 220 {
		t.Fatalf("heavy providers got %d of %d, want about 180 (stake 3:1, 16 heavy vs 32 light)", h, n)
	}
}
