package sim

import (
	"fmt"
	"math"
	"sort"

	"github.com/kiln-network/kiln/gpu"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// driver is how simulated providers take part in one pricing mode. Tenants' orders
// are the same draw in every mode (newOrder), shaped only as far as the mode demands
// (shape); what differs is what providers send.
type driver interface {
	// setup runs once the network is registered (the order book's standing asks).
	setup(s *Sim) error
	// bids reports whether providers offer on each order (bid, commit) in its
	// window; false for modes that match or assign orders by themselves.
	bids() bool
	// bid makes the providers' offers on order o, whose bid window opens in the
	// current block.
	bid(s *Sim, ctx *types.Context, o *order)
	// due runs the providers' duties of the current block that belong to no lease
	// (sealed reveals).
	due(s *Sim)
}

// drivers are the provider behaviours the simulator has, by pricing mode: every
// mode the chain has. A mode without one is refused by Config.Validate.
var drivers = map[string]driver{
	market.ModeAuction:     auctionDriver{},
	market.ModePerformance: auctionDriver{},
	market.ModeSealed:      sealedDriver{},
	market.ModeMarket:      bookDriver{},
	market.ModeStake:       stakeDriver{},
}

func driverNames() []string {
	var out []string
	for n := range drivers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// offer has the order's candidates from the free-capacity index that are online and
// price it within its max price send their offer, until BidsPerOrder have. Like a
// daemon, a provider does not offer more in one block than it has free: what its
// offers of this block would take counts against its free capacity.
func offer(s *Sim, ctx *types.Context, o *order, send func(p *prov, price uint64) error) {
	mo, ok := market.GetOrder(ctx, o.id)
	if !ok || mo.State != market.OrderOpen {
		return
	}
	o.window, o.offered = mo.BidOpenHeight, s.height
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
		price, ok := s.price(p, c, mo.Mode)
		if !ok || price > o.maxPrice {
			continue
		}
		if err := send(p, price); err != nil {
			s.res.RefusedTxs++
			continue
		}
		s.promised[p.addr] += need
		bids++
		s.res.Bids++
	}
}

// auctionDriver (auction, performance): providers bid their price in the order's
// window, per block or per TFLOP-hour; the chain picks the winner at its close.
type auctionDriver struct{}

func (auctionDriver) setup(*Sim) error { return nil }
func (auctionDriver) bids() bool       { return true }
func (auctionDriver) due(*Sim)         {}

func (auctionDriver) bid(s *Sim, ctx *types.Context, o *order) {
	offer(s, ctx, o, func(p *prov, price uint64) error {
		return s.lg.Deliver(&market.MsgCreateBid{Provider: p.addr, OrderID: o.id, Price: price})
	})
}

// sealedDriver: providers commit a hash of their price in the commit window and
// reveal it in the block after it closes; one that is offline then does not reveal,
// and its deposit is forfeit.
type sealedDriver struct{}

// reveal is a sealed bid a provider will reveal.
type reveal struct {
	order uint64
	prov  *prov
	price uint64
	salt  []byte
}

func (sealedDriver) setup(*Sim) error { return nil }
func (sealedDriver) bids() bool       { return true }

func (sealedDriver) bid(s *Sim, ctx *types.Context, o *order) {
	mo, _ := market.GetOrder(ctx, o.id)
	offer(s, ctx, o, func(p *prov, price uint64) error {
		salt := make([]byte, market.SaltLen)
		for i := range salt {
			salt[i] = byte(s.aux.Uint32())
		}
		err := s.lg.Deliver(&market.MsgCommitBid{Provider: p.addr, OrderID: o.id, Hash: market.SealedHash(o.id, p.addr, price, salt)})
		if err == nil {
			at := mo.BidCloseHeight + 1
			s.reveals[at] = append(s.reveals[at], reveal{o.id, p, price, salt})
		}
		return err
	})
}

func (sealedDriver) due(s *Sim) {
	for _, r := range s.reveals[s.height] {
		if !s.online(r.prov) {
			s.res.Unrevealed++
			continue
		}
		if err := s.lg.Deliver(&market.MsgRevealBid{Provider: r.prov.addr, OrderID: r.order, Price: r.price, Salt: r.salt}); err != nil {
			s.res.RefusedTxs++
		}
	}
	delete(s.reveals, s.height)
}

// bookDriver: every provider posts standing asks (each GPU model it has, and its CPU
// cores) at its own price once the network is registered; orders fill from them in
// the block they are placed, or wait and are matched again by the chain.
type bookDriver struct{}

func (bookDriver) bids() bool                       { return false }
func (bookDriver) bid(*Sim, *types.Context, *order) {}
func (bookDriver) due(*Sim)                         {}

func (bookDriver) setup(s *Sim) error {
	const perBlock = 2000
	for i := 0; i < len(s.provs); i += perBlock {
		s.begin()
		for _, p := range s.provs[i:min(i+perBlock, len(s.provs))] {
			units := map[string]uint64{}
			for _, g := range p.inv.GPUs {
				units[g.Model] += uint64(g.Count)
			}
			classes := make([]string, 0, len(units))
			for c := range units {
				classes = append(classes, c)
			}
			sort.Strings(classes)
			for _, c := range classes {
				price := uint64(math.Ceil(s.ukilnPerBlock(modelPrice(c) * p.factor)))
				if err := s.lg.Deliver(&market.MsgAsk{Provider: p.addr, Class: c, Price: price, Units: units[c]}); err != nil {
					return fmt.Errorf("ask of provider %s in %s: %w", p.addr, c, err)
				}
			}
			price := uint64(math.Ceil(s.ukilnPerBlock(cpuUSDPerCoreH * p.factor)))
			if err := s.lg.Deliver(&market.MsgAsk{Provider: p.addr, Class: market.ClassCPU, Price: price, Units: p.inv.CPUCores}); err != nil {
				return fmt.Errorf("CPU ask of provider %s: %w", p.addr, err)
			}
		}
		if err := s.end(); err != nil {
			return err
		}
	}
	return nil
}

// stakeDriver: nobody offers; the chain assigns each order by stake x uptime, and
// providers prove uptime with their leases' heartbeats.
type stakeDriver struct{}

func (stakeDriver) setup(*Sim) error                 { return nil }
func (stakeDriver) bids() bool                       { return false }
func (stakeDriver) bid(*Sim, *types.Context, *order) {}
func (stakeDriver) due(*Sim)                         {}

// tflops is a GPU model's benchmark score in TFLOPS, as the chain's catalogue score
// source has it (0: none, so performance pricing cannot bill it).
func tflops(model string) float64 {
	g, ok := gpu.ExpectedMatmulGFLOPS(model)
	if !ok {
		return 0
	}
	return math.Round(g) / 1000
}
