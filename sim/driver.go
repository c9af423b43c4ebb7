package sim

import (
	"sort"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// driver is how simulated providers take part in one pricing mode.
type driver interface {
	// bid makes the providers' offers on order o, whose bid window opens in the
	// current block.
	bid(s *Sim, ctx *types.Context, o *order)
}

// drivers are the provider behaviours the simulator has, by pricing mode. A mode the
// chain has and the simulator does not is refused by Config.Validate.
var drivers = map[string]driver{market.ModeAuction: auctionDriver{}}

func driverNames() []string {
	var out []string
	for n := range drivers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// auctionDriver: the order's candidates from the free-capacity index that are online
// bid their own price, if it is within the order's max price, until BidsPerOrder
// have bid; the chain picks the winner at the window's close. Like a daemon, a
// provider does not bid for more in one block than it has free: what its open bids
// of this block would take counts against its free capacity.
type auctionDriver struct{}

func (auctionDriver) bid(s *Sim, ctx *types.Context, o *order) {
	mo, ok := market.GetOrder(ctx, o.id)
	if !ok || mo.State != market.OrderOpen {
		return
	}
	o.window = mo.BidOpenHeight
	cands, err := market.Candidates(ctx, o.id, 4*s.cfg.BidsPerOrder)
	if err != nil {
		return
	}
	s.res.Candidates += len(cands)
	bids := 0
	for _, c := range cands {
		if bids == s.cfg.BidsPerOrder {
			break
		}
		p := s.byAddr[c.Provider]
		need := o.gpus
		if need == 0 {
			need = c.Usage.CPUMilli
		}
		if !s.online(p) || s.promised[p.addr]+need > c.Free {
			continue
		}
		price := s.price(p, c)
		if price > o.maxPrice {
			continue
		}
		if err := s.lg.Deliver(&market.MsgCreateBid{Provider: p.addr, OrderID: o.id, Price: price}); err != nil {
			s.res.RefusedTxs++
			continue
		}
		s.promised[p.addr] += need
		bids++
		s.res.Bids++
	}
}
