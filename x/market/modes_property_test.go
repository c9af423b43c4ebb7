package market

import (
	"math/rand/v2"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/registry"
)

// Money is conserved and every module's books balance after every block, whatever
// mix of pricing modes runs: random orders in every mode, asks, bids, sealed
// commitments and reveals (some wrong, some never), starts, heartbeats, closes and
// reclaims, on a few providers. env.next checks supply, the sum of balances, escrow's
// and the market's invariants (capacity, indexes, bid deposits, book, reclaims) after
// each block.
func TestModesConserveMoney(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		e := newEnv(t)
		rng := rand.New(rand.NewPCG(seed, 7))
		RegisterScores(e.ctx.Hooks, "test", Measured, func(_ *types.Context, p types.Address, _ GPUSpec) (uint64, bool) {
			return 10_000 + uint64(p[0])*100, true
		})
		provs := []types.Address{
			e.provider("a", "eu-west", 32, map[string]uint32{"h100": 4}),
			e.provider("b", "eu-west", 32, map[string]uint32{"h100": 2, "a100": 2}),
			e.provider("c", "us-east", 16, map[string]uint32{"a100": 4}),
		}
		for _, p := range provs {
			e.must(&MsgRTTProbe{Provider: p, Location: "edge", RTTMicros: 1000 + uint64(rng.IntN(40_000))})
		}
		modes := []string{ModeAuction, ModeMarket, ModeSealed, ModePerformance, ModeStake}
		salts := map[[2]uint64][]byte{}
		for block := 0; block < 150; block++ {
			// Sealed rounds are short: providers commit in the commit window and most
			// reveal in the reveal window (some never, some wrongly).
			for _, o := range Orders(e.ctx, OrderFilter{State: OrderOpen}) {
				if o.Mode != ModeSealed {
					continue
				}
				for _, p := range provs {
					k := [2]uint64{o.ID, uint64(p[0])}
					s, committed := salts[k]
					switch {
					case !committed && e.ctx.Height >= o.BidOpenHeight && e.ctx.Height <= o.BidCloseHeight && rng.IntN(2) == 0:
						s = salt(byte(rng.IntN(250)))
						if e.do(&MsgCommitBid{Provider: p, OrderID: o.ID, Hash: SealedHash(o.ID, p, uint64(s[0])+1, s)}) == nil {
							salts[k] = s
						}
					case committed && e.ctx.Height > o.BidCloseHeight && e.ctx.Height <= o.RevealCloseHeight && rng.IntN(3) > 0:
						wrong := uint64(0)
						if rng.IntN(5) == 0 {
							wrong = 1 // a reveal that does not match
						}
						_ = e.do(&MsgRevealBid{Provider: p, OrderID: o.ID, Price: uint64(s[0]) + 1 + wrong, Salt: s})
						delete(salts, k)
					}
				}
			}
			for op := 0; op < 4; op++ {
				p := provs[rng.IntN(len(provs))]
				switch rng.IntN(9) {
				case 0: // an order in a random mode
					mode := modes[rng.IntN(len(modes))]
					model := []string{"h100", "a100"}[rng.IntN(2)]
					g := Group{Name: "m", Count: uint32(1 + rng.IntN(3)), CPUMilli: 1000, MemoryBytes: registry.Gi,
						GPU: GPURequest{Units: 1, Models: []GPUFilter{{Model: model}}}}
					m := &MsgCreateOrder{Owner: e.tenant, Kind: []string{KindBatch, KindService}[rng.IntN(2)], Groups: []Group{g}, MaxPrice: 40_000,
						Deposit: types.NewCoin(types.NativeDenom, 40_000*uint64(20+rng.IntN(200))), Mode: mode, AutoRedeploy: rng.IntN(2) == 0}
					if rng.IntN(3) == 0 {
						m.ReclaimWindowSeconds = uint64(1 + rng.IntN(5))
					}
					switch mode {
					case ModeMarket:
						m.Fill = []string{FillAll, FillPartial, FillAllNow, FillPartialNow}[rng.IntN(4)]
					case ModeSealed:
						if rng.IntN(2) == 0 {
							m.Session = &Session{Blocks: uint64(5 + rng.IntN(20)), Location: "edge", MaxRTTMs: 30}
							m.Deposit.Amount = 40_000 * 50
						}
					}
					_ = e.do(m)
				case 1: // an ask
					_ = e.do(&MsgAsk{Provider: p, Class: []string{"h100", "a100"}[rng.IntN(2)], Price: uint64(1 + rng.IntN(5000)), Units: uint64(1 + rng.IntN(4))})
				case 2, 3: // a bid, commitment or reveal on an open order
					os := Orders(e.ctx, OrderFilter{State: OrderOpen})
					if len(os) == 0 {
						continue
					}
					o := os[rng.IntN(len(os))]
					price := uint64(1 + rng.IntN(45_000))
					switch o.Mode {
					case ModeSealed:
						k := [2]uint64{o.ID, uint64(p[0])}
						if s, ok := salts[k]; ok && rng.IntN(4) > 0 {
							wrong := uint64(0)
							if rng.IntN(4) == 0 {
								wrong = 1 // a reveal that does not match
							}
							_ = e.do(&MsgRevealBid{Provider: p, OrderID: o.ID, Price: uint64(s[0]) + 1 + wrong, Salt: s})
							continue
						}
						s := salt(byte(rng.IntN(250)))
						if e.do(&MsgCommitBid{Provider: p, OrderID: o.ID, Hash: SealedHash(o.ID, p, uint64(s[0])+1, s)}) == nil {
							salts[k] = s
						}
					default:
						_ = e.do(&MsgCreateBid{Provider: p, OrderID: o.ID, Price: price})
					}
				case 4: // start or heartbeat leases
					for _, l := range Leases(e.ctx, LeaseFilter{State: LeaseActive, Provider: p}) {
						if l.StartedHeight == 0 {
							_ = e.do(&MsgStartLease{Provider: p, LeaseID: l.ID})
						} else {
							_ = e.do(&MsgHeartbeat{Provider: p, LeaseID: l.ID})
						}
					}
				case 5: // a close by tenant or provider, or a completion
					ls := Leases(e.ctx, LeaseFilter{State: LeaseActive})
					if len(ls) == 0 {
						continue
					}
					l := ls[rng.IntN(len(ls))]
					switch rng.IntN(3) {
					case 0:
						_ = e.do(&MsgCloseLease{Sender: e.tenant, LeaseID: l.ID})
					case 1:
						_ = e.do(&MsgCloseLease{Sender: l.Provider, LeaseID: l.ID})
					default:
						_ = e.do(&MsgCompleteLease{Provider: l.Provider, LeaseID: l.ID, OutputHash: []byte{1}})
					}
				case 6: // a reclaim
					ls := Leases(e.ctx, LeaseFilter{State: LeaseActive})
					if len(ls) > 0 {
						l := ls[rng.IntN(len(ls))]
						_ = e.do(&MsgReclaimLease{Provider: l.Provider, LeaseID: l.ID, Reason: "maintenance", NoticeSeconds: uint64(1 + rng.IntN(6))})
					}
				case 7: // a tenant closes an open order
					os := Orders(e.ctx, OrderFilter{State: OrderOpen})
					if len(os) > 0 {
						_ = e.do(&MsgCloseOrder{Owner: e.tenant, OrderID: os[rng.IntN(len(os))].ID})
					}
				case 8:
					_ = e.do(&MsgCancelAsk{Provider: p, Class: []string{"h100", "a100"}[rng.IntN(2)]})
				}
			}
			e.next()
		}
		// Everything ran: at least one lease closed in each mode that leases.
		seen := map[string]bool{}
		for _, l := range Leases(e.ctx, LeaseFilter{}) {
			o, _ := GetOrder(e.ctx, l.ID)
			seen[o.Mode] = true
		}
		for _, m := range modes {
			if !seen[m] {
				t.Errorf("seed %d: no lease in mode %s: the property run did not exercise it", seed, m)
			}
		}
		if err := escrow.CheckInvariants(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Each pricing mode's lease pays its mode's protocol fee (market fee_bps), and the
// default take is at most 1% in every mode.
func TestFeesPerMode(t *testing.T) {
	p := DefaultParams()
	for _, m := range ModeNames() {
		if f, ok := p.FeeBps[m]; !ok || f > 100 {
			t.Errorf("mode %s: default fee %d bps (set %v), want <= 100 (1%%)", m, f, ok)
		}
	}
	e := newEnv(t)
	a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 8})
	e.must(&MsgAsk{Provider: a, Class: "h100", Price: 1000, Units: 8})
	book := e.order(ModeMarket, "", 1, "h100", 1, 1000)
	auc := e.order(ModeAuction, "", 1, "h100", 1, 1000)
	e.next()
	e.must(&MsgCreateBid{Provider: a, OrderID: auc, Price: 1000})
	e.next()
	for _, id := range []uint64{book, auc} {
		e.must(&MsgStartLease{Provider: a, LeaseID: id})
	}
	for i := 0; i < 40; i++ {
		e.next()
	}
	for _, id := range []uint64{book, auc} {
		acct, _ := escrow.Get(e.ctx, id)
		o, _ := GetOrder(e.ctx, id)
		gross := acct.Paid + acct.Fees
		if want := (gross*uint64(p.FeeBps[o.Mode]) + 9999) / 10_000; acct.Fees != want {
			t.Errorf("order %d (%s): fees %d on %d paid, want %d (%d bps)", id, o.Mode, acct.Fees, gross, want, p.FeeBps[o.Mode])
		}
	}
}
