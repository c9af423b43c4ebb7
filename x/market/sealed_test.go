package market

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

func salt(b byte) []byte { return bytes.Repeat([]byte{b}, SaltLen) }

// sealedOrder places a sealed session order for one H100 in e's block.
func (e *env) sealedOrder(maxPrice uint64, s *Session) uint64 {
	e.t.Helper()
	g := Group{Name: "main", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi, GPU: GPURequest{Units: 1, Models: []GPUFilter{{Model: "h100"}}}}
	dep := maxPrice * 1000
	if s != nil {
		dep = maxPrice * max(1000, s.Blocks)
	}
	id := uint64(1)
	if os := Orders(e.ctx, OrderFilter{}); len(os) > 0 {
		id = os[len(os)-1].ID + 1
	}
	e.must(&MsgCreateOrder{Owner: e.tenant, Kind: KindService, Groups: []Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, dep), Mode: ModeSealed, Session: s})
	return id
}

func commit(p types.Address, id, price uint64, s []byte) *MsgCommitBid {
	return &MsgCommitBid{Provider: p, OrderID: id, Hash: SealedHash(id, p, price, s)}
}

// Commit-reveal: the lowest revealed bid wins at the end of the reveal window; a
// reveal that does not match its commitment is refused and the commitment, never
// revealed, forfeits its deposit to the community pool; a provider cannot reveal a
// bid it did not commit, nor replay another provider's commitment.
func TestSealedCommitReveal(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 8})
	b := e.provider("b", "eu-west", 64, map[string]uint32{"h100": 8})
	c := e.provider("c", "eu-west", 64, map[string]uint32{"h100": 8})
	d := e.provider("d", "eu-west", 64, map[string]uint32{"h100": 8})
	id := e.sealedOrder(500, nil)
	// Commitments are taken from the next block only.
	if err := e.do(commit(a, id, 300, salt(1))); err == nil {
		t.Fatal("commitment in the order's own block accepted")
	}
	e.next()
	e.must(commit(a, id, 300, salt(1)))
	e.must(commit(b, id, 200, salt(2)))
	e.must(commit(c, id, 100, salt(3)))
	// d copies b's commitment: it cannot reveal b's price and salt as its own.
	e.must(&MsgCommitBid{Provider: d, OrderID: id, Hash: SealedHash(id, b, 200, salt(2))})
	if err := e.do(&MsgRevealBid{Provider: a, OrderID: id, Price: 300, Salt: salt(1)}); err == nil {
		t.Fatal("reveal inside the commit window accepted")
	}
	pool0 := bank.Balance(e.ctx, bank.CommunityPool, types.NativeDenom)
	e.next()
	if err := e.do(commit(a, id, 1, salt(9))); err == nil {
		t.Fatal("commitment after the commit window accepted")
	}
	e.must(&MsgRevealBid{Provider: a, OrderID: id, Price: 300, Salt: salt(1)})
	e.must(&MsgRevealBid{Provider: b, OrderID: id, Price: 200, Salt: salt(2)})
	// c reveals a price it did not commit to: refused; c's commitment stays sealed.
	if err := e.do(&MsgRevealBid{Provider: c, OrderID: id, Price: 90, Salt: salt(3)}); !errors.Is(err, types.ErrBidReveal) {
		t.Fatalf("mismatched reveal: %v", err)
	}
	if err := e.do(&MsgRevealBid{Provider: d, OrderID: id, Price: 200, Salt: salt(2)}); !errors.Is(err, types.ErrBidReveal) {
		t.Fatalf("reveal of another provider's commitment: %v", err)
	}
	tenant := types.ModuleAddress("test-provider-none")
	if err := e.do(&MsgRevealBid{Provider: tenant, OrderID: id, Price: 200, Salt: salt(2)}); !errors.Is(err, types.ErrNotFound) {
		t.Fatalf("reveal without a commitment: %v", err)
	}
	e.next()
	e.next() // end of the reveal window (2 blocks)
	l, ok := GetLease(e.ctx, id)
	if !ok || l.Provider != b || l.Price != 200 {
		t.Fatalf("lease = %+v %v, want b at 200 (lowest revealed)", l, ok)
	}
	dep := DefaultParams().BidDeposit
	if got := bank.Balance(e.ctx, bank.CommunityPool, types.NativeDenom) - pool0; got != 2*dep {
		t.Fatalf("community pool got %d, want the 2 unrevealed deposits (c, d) of %d", got, dep)
	}
	if len(BidsOf(e.ctx, id)) != 0 {
		t.Fatal("bids left after the pick")
	}
	for _, p := range []types.Address{a, b} {
		if got := bank.Balance(e.ctx, p, types.NativeDenom); got != envFunds-100_000_000 {
			t.Fatalf("revealed bidder %s has %d, its deposit not returned", p, got)
		}
	}
}

// A sealed order nobody reveals runs further rounds and closes at expiry (no_bids),
// its escrow refunded.
func TestSealedExpiry(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 8})
	before := bank.Balance(e.ctx, e.tenant, types.NativeDenom)
	id := e.sealedOrder(500, nil)
	e.next()
	e.must(commit(a, id, 300, salt(1)))
	for i := 0; i < 3; i++ {
		e.next()
	}
	o, _ := GetOrder(e.ctx, id)
	if o.State != OrderOpen || o.BidOpenHeight != e.ctx.Height {
		t.Fatalf("after an unrevealed round: %s, commit window from %d (now %d); want a fresh round", o.State, o.BidOpenHeight, e.ctx.Height)
	}
	for e.ctx.Height <= o.ExpireHeight {
		e.next()
	}
	if o, _ = GetOrder(e.ctx, id); o.State != OrderClosed || o.CloseReason != ReasonNoBids {
		t.Fatalf("expired sealed order = %s/%s", o.State, o.CloseReason)
	}
	if got := bank.Balance(e.ctx, e.tenant, types.NativeDenom); got != before {
		t.Fatalf("tenant has %d, had %d", got, before)
	}
}

// A session goes only to a provider with a fresh RTT probe inside the tenant's limit,
// bills as a session (its deposit covers it all) and ends after its blocks.
func TestSessionPlacement(t *testing.T) {
	e := newEnv(t)
	near := e.provider("near", "eu-west", 64, map[string]uint32{"h100": 8})
	far := e.provider("far", "eu-west", 64, map[string]uint32{"h100": 8})
	silent := e.provider("silent", "eu-west", 64, map[string]uint32{"h100": 8})
	e.must(&MsgRTTProbe{Provider: near, Location: "fra-edge", RTTMicros: 8_000})
	e.must(&MsgRTTProbe{Provider: far, Location: "fra-edge", RTTMicros: 95_000})
	s := &Session{Blocks: 20, Location: "fra-edge", MaxRTTMs: 30}
	short := &MsgCreateOrder{Owner: e.tenant, Kind: KindService, MaxPrice: 500, Deposit: types.NewCoin(types.NativeDenom, 500*19), Mode: ModeSealed, Session: s,
		Groups: []Group{{Name: "main", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi}}}
	if err := e.do(short); !errors.Is(err, types.ErrInsufficientDeposit) {
		t.Fatalf("session deposit short of the session: %v", err)
	}
	id := e.sealedOrder(500, s)
	e.next()
	if err := e.do(commit(far, id, 10, salt(1))); !errors.Is(err, types.ErrRequirementsUnmet) {
		t.Fatalf("commitment from 95 ms away: %v", err)
	}
	if err := e.do(commit(silent, id, 10, salt(1))); !errors.Is(err, types.ErrRequirementsUnmet) {
		t.Fatalf("commitment without a probe: %v", err)
	}
	e.must(commit(near, id, 400, salt(2)))
	e.next()
	e.must(&MsgRevealBid{Provider: near, OrderID: id, Price: 400, Salt: salt(2)})
	e.next()
	e.next()
	l, ok := GetLease(e.ctx, id)
	if !ok || l.Provider != near {
		t.Fatalf("session lease = %+v %v", l, ok)
	}
	e.must(&MsgStartLease{Provider: near, LeaseID: id})
	started := e.ctx.Height
	for i := 0; i < 25; i++ {
		if i%5 == 0 {
			if l, _ := GetLease(e.ctx, id); l.State == LeaseActive {
				e.must(&MsgHeartbeat{Provider: near, LeaseID: id})
			}
		}
		e.next()
	}
	l, _ = GetLease(e.ctx, id)
	if l.State != LeaseClosed || l.CloseReason != ReasonSessionEnded || l.ClosedHeight != started+20 {
		t.Fatalf("session lease = %s/%s at %d, want session_ended at %d", l.State, l.CloseReason, l.ClosedHeight, started+20)
	}
	if got := bank.Balance(e.ctx, near, types.NativeDenom); got != envFunds-100_000_000+20*400*9950/10000 {
		t.Fatalf("near earned %d, want 20 blocks at 400 less the 0.5%% fee", got-(envFunds-100_000_000))
	}
}

func FuzzDecodeSealed(f *testing.F) {
	f.Add(encode(commit(types.Address{1}, 7, 5, salt(1))))
	f.Add(encode(&MsgRevealBid{Provider: types.Address{1}, OrderID: 7, Price: 5, Salt: salt(1)}))
	f.Add(encode(&MsgRTTProbe{Provider: types.Address{1}, Location: "fra-edge", RTTMicros: 900}))
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, DecodeCommitBid, b)
		roundTrip(t, DecodeRevealBid, b)
		roundTrip(t, DecodeRTTProbe, b)
	})
}
