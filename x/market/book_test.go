package market

import (
	"errors"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
)

// An order-book order fills in the block it is placed, from the cheapest ask that
// fits, at the ask's price; ties go to the earlier ask; amending an ask re-queues it.
func TestBookFillsCheapestSameBlock(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 8})
	b := e.provider("b", "eu-west", 64, map[string]uint32{"h100": 8})
	c := e.provider("c", "eu-west", 64, map[string]uint32{"h100": 8, "a100": 4})
	e.must(&MsgAsk{Provider: a, Class: "h100", Price: 120, Units: 8})
	e.must(&MsgAsk{Provider: b, Class: "h100", Price: 100, Units: 8})
	e.must(&MsgAsk{Provider: c, Class: "h100", Price: 100, Units: 8}) // same price, later
	e.must(&MsgAsk{Provider: c, Class: "a100", Price: 50, Units: 4})

	id := e.order(ModeMarket, "", 1, "h100", 2, 1000)
	ls := e.leasesOf(id)
	if len(ls) != 1 || ls[0].Provider != b || ls[0].Price != 200 || ls[0].CreatedHeight != e.ctx.Height {
		t.Fatalf("leases = %s; want b's ask (the earlier at 100) x 2 GPUs = 200, made at %d", describe(ls), e.ctx.Height)
	}
	// b amends its ask down: it re-queues; c amends to the same price after it.
	e.must(&MsgAsk{Provider: c, Class: "h100", Price: 90, Units: 8})
	e.must(&MsgAsk{Provider: b, Class: "h100", Price: 90, Units: 8})
	id2 := e.order(ModeMarket, "", 1, "h100", 1, 1000)
	if ls := e.leasesOf(id2); len(ls) != 1 || ls[0].Provider != c || ls[0].Price != 90 {
		t.Fatalf("after amends: leases = %s; want c (at 90 before b's amend)", describe(ls))
	}
	// A max price under every ask leaves the order waiting; a cheaper ask posted later
	// fills it in the ask's block.
	id3 := e.order(ModeMarket, "", 1, "a100", 1, 40)
	if o, _ := GetOrder(e.ctx, id3); o.State != OrderOpen {
		t.Fatalf("order under every ask is %s, want open (waiting)", o.State)
	}
	e.next()
	e.must(&MsgAsk{Provider: c, Class: "a100", Price: 40, Units: 4})
	if ls := e.leasesOf(id3); len(ls) != 1 || ls[0].Provider != c || ls[0].Price != 40 {
		t.Fatalf("waiting order after a cheaper ask: leases = %s", describe(ls))
	}
	e.next()
	p := Prices(e.ctx)
	if len(p) != 2 || p[1].Class != "h100" || p[1].BestAsk != 90 || p[1].LastTrade != 90 || p[1].Low24h != 90 || p[1].High24h != 100 || p[1].Trades24h != 2 {
		t.Fatalf("prices = %+v", p)
	}
}

// Capacity is never sold twice: an ask offers up to its units, leases in any mode count
// against them, and the core's capacity check holds.
func TestBookNeverOversells(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 4})
	e.must(&MsgAsk{Provider: a, Class: "h100", Price: 10, Units: 3})
	first := e.order(ModeMarket, FillAllNow, 1, "h100", 2, 1000)
	if len(e.leasesOf(first)) != 1 {
		t.Fatal("first order did not fill")
	}
	// 1 unit of the ask left: a 2-GPU order does not fill and, all_now, closes.
	second := e.order(ModeMarket, FillAllNow, 1, "h100", 2, 1000)
	if o, _ := GetOrder(e.ctx, second); o.State != OrderClosed || o.CloseReason != ReasonUnfilled {
		t.Fatalf("second order = %s/%s, want closed/unfilled", o.State, o.CloseReason)
	}
	// The provider raises its ask to all 4 GPUs: 2 are free, an order for 2 fills.
	e.must(&MsgAsk{Provider: a, Class: "h100", Price: 10, Units: 4})
	third := e.order(ModeMarket, FillAllNow, 1, "h100", 2, 1000)
	if len(e.leasesOf(third)) != 1 {
		t.Fatal("third order did not fill")
	}
	fourth := e.order(ModeMarket, FillAllNow, 1, "h100", 1, 1000)
	if o, _ := GetOrder(e.ctx, fourth); o.State != OrderClosed {
		t.Fatalf("a fifth GPU was sold: order %+v", o)
	}
	if u := Used(e.ctx, a); classUsed(u, "h100") != 4 {
		t.Fatalf("used = %+v", u)
	}
	e.next()
	// An ask for more than the inventory holds is refused.
	if err := e.do(&MsgAsk{Provider: a, Class: "h100", Price: 10, Units: 5}); !errors.Is(err, types.ErrRequirementsUnmet) {
		t.Fatalf("ask beyond the inventory: %v", err)
	}
	if err := e.do(&MsgAsk{Provider: a, Class: "a100", Price: 10, Units: 1}); !errors.Is(err, types.ErrRequirementsUnmet) {
		t.Fatalf("ask for a model the provider lacks: %v", err)
	}
	if err := e.do(&MsgAsk{Provider: e.tenant, Class: "cpu", Price: 10, Units: 1}); !errors.Is(err, types.ErrNotProvider) {
		t.Fatalf("ask by a non-provider: %v", err)
	}
	if err := e.do(&MsgCancelAsk{Provider: a, Class: "a100"}); !errors.Is(err, types.ErrNotFound) {
		t.Fatalf("cancel of a missing ask: %v", err)
	}
	e.must(&MsgCancelAsk{Provider: a, Class: "h100"})
	if len(Asks(e.ctx, "h100", 0)) != 0 {
		t.Fatal("cancelled ask still in the book")
	}
}

// A partial fill leases each provider its part (one lease per provider), funded
// from the order's deposit; the rest waits or is refused as the tenant chose.
func TestBookPartialFills(t *testing.T) {
	for _, tt := range []struct {
		fill      string
		wantParts int
		wantState string // of the parent order after the block
	}{
		{FillPartial, 2, OrderOpen},      // 3+2 of 8 leased, 3 wait
		{FillPartialNow, 2, OrderActive}, // the last part leases on the order itself
		{FillAll, 0, OrderOpen},          // nobody has 8: waits
		{FillAllNow, 0, OrderClosed},     // nobody has 8: closes unfilled
	} {
		t.Run(tt.fill, func(t *testing.T) {
			e := newEnv(t)
			a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 3})
			b := e.provider("b", "eu-west", 64, map[string]uint32{"h100": 2})
			e.must(&MsgAsk{Provider: a, Class: "h100", Price: 10, Units: 3})
			e.must(&MsgAsk{Provider: b, Class: "h100", Price: 11, Units: 2})
			before := bank.Balance(e.ctx, e.tenant, types.NativeDenom)
			id := e.order(ModeMarket, tt.fill, 8, "h100", 1, 8*11)
			ls := e.leasesOf(id)
			if len(ls) != tt.wantParts {
				t.Fatalf("leases = %s, want %d parts", describe(ls), tt.wantParts)
			}
			price := map[types.Address]uint64{}
			for _, l := range ls {
				price[l.Provider] = l.Price
			}
			if tt.wantParts == 2 && (price[a] != 30 || price[b] != 22) {
				t.Fatalf("parts = %s, want a 3x10 and b 2x11", describe(ls))
			}
			e.next()
			o, _ := GetOrder(e.ctx, id)
			if o.State != tt.wantState {
				t.Fatalf("order = %s (%s), want %s", o.State, o.CloseReason, tt.wantState)
			}
			if tt.fill == FillPartial && o.Groups[0].Count != 3 {
				t.Fatalf("waiting rest = %d instances, want 3", o.Groups[0].Count)
			}
			// The rest fills when a provider with room asks.
			if tt.fill == FillPartial {
				c := e.provider("c", "eu-west", 64, map[string]uint32{"h100": 8})
				e.must(&MsgAsk{Provider: c, Class: "h100", Price: 9, Units: 8})
				if l, ok := GetLease(e.ctx, id); !ok || l.Provider != c || l.Price != 27 {
					t.Fatalf("rest after c's ask: %+v %v", l, ok)
				}
			}
			// Close everything: the tenant gets back all it did not pay.
			for _, l := range Leases(e.ctx, LeaseFilter{State: LeaseActive}) {
				e.must(&MsgCloseLease{Sender: e.tenant, LeaseID: l.ID})
			}
			if o, _ := GetOrder(e.ctx, id); o.State == OrderOpen {
				e.must(&MsgCloseOrder{Owner: e.tenant, OrderID: id})
			}
			e.next()
			var paid uint64
			for _, a := range escrow.List(e.ctx) {
				paid += a.Paid + a.Fees
				if a.State != escrow.StateClosed {
					t.Fatalf("escrow of %d still %s", a.OrderID, a.State)
				}
			}
			if after := bank.Balance(e.ctx, e.tenant, types.NativeDenom); after+paid != before {
				t.Fatalf("tenant had %d, has %d, paid %d: %d lost", before, after, paid, before-after-paid)
			}
		})
	}
}

// The order book takes neither bids nor picks, and refuses orders it cannot match.
func TestBookRefusals(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu-west", 64, map[string]uint32{"h100": 8})
	id := e.order(ModeMarket, "", 1, "h100", 1, 10)
	if err := e.do(&MsgCreateBid{Provider: a, OrderID: id, Price: 5}); !errors.Is(err, types.ErrModeMismatch) {
		t.Fatalf("bid on a book order: %v", err)
	}
	g := Group{Name: "main", Count: 2, CPUMilli: 1000, MemoryBytes: 1 << 30, GPU: GPURequest{Units: 1}}
	for name, m := range map[string]*MsgCreateOrder{
		"any gpu":         {Kind: KindBatch, Groups: []Group{g}, Mode: ModeMarket},
		"bad fill":        {Kind: KindBatch, Groups: []Group{{Name: "m", Count: 1, CPUMilli: 1, MemoryBytes: 1}}, Mode: ModeMarket, Fill: "some"},
		"fill in auction": {Kind: KindBatch, Groups: []Group{{Name: "m", Count: 1, CPUMilli: 1, MemoryBytes: 1}}, Fill: FillAll},
		"manual":          {Kind: KindBatch, Groups: []Group{{Name: "m", Count: 1, CPUMilli: 1, MemoryBytes: 1}}, Mode: ModeMarket, Manual: true},
	} {
		m.Owner, m.MaxPrice, m.Deposit = e.tenant, 10, types.NewCoin(types.NativeDenom, 1000)
		if err := m.ValidateBasic(); !errors.Is(err, types.ErrInvalidMsg) {
			t.Errorf("%s: ValidateBasic = %v, want invalid", name, err)
		}
	}
	for _, m := range []*MsgAsk{{Class: "H100", Price: 1, Units: 1}, {Class: "cpu", Price: 0, Units: 1}, {Class: "cpu", Price: 1, Units: 0}} {
		if err := m.ValidateBasic(); !errors.Is(err, types.ErrInvalidMsg) {
			t.Errorf("ask %+v: ValidateBasic = %v", m, err)
		}
	}
	// A waiting order expires unfilled, refunded.
	for e.ctx.Height <= 10+DefaultParams().OrderTTLBlocks {
		e.next()
	}
	if o, _ := GetOrder(e.ctx, id); o.State != OrderClosed || o.CloseReason != ReasonUnfilled {
		t.Fatalf("expired book order = %s/%s", o.State, o.CloseReason)
	}
}

func FuzzDecodeAsk(f *testing.F) {
	f.Add(encode(&MsgAsk{Provider: types.Address{1}, Class: "h100", Price: 5, Units: 8}))
	f.Add(encode(&MsgCancelAsk{Provider: types.Address{1}, Class: "cpu"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		roundTrip(t, DecodeAsk, b)
		roundTrip(t, DecodeCancelAsk, b)
	})
}
