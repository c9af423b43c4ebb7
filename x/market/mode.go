package market

import (
	"fmt"
	"maps"
	"slices"

	"github.com/kiln-network/kiln/types"
)

// Mode is a pricing mode: how an open order finds its provider and price. The market
// core (keeper.go) keeps orders, bids, leases, capacity and settlement, whatever the
// mode; a mode decides when offers are taken and which one becomes the lease. Modes
// are siblings in this package (the reverse auction is auction.go); an order names its
// mode in Order.Mode, fixed when it is placed.
//
// Contracts: a mode MUST be deterministic like the rest of the ledger. It makes leases
// only through makeLease (capacity and escrow stay the core's), records offers only
// through placeBid (or storage of its own), and closes orders only through closeOrder.
type Mode interface {
	// Name is the mode's name in Order.Mode and MsgCreateOrder.Mode.
	Name() string
	// Open starts taking offers for order o, which the core has just marked open
	// (placed, or re-opened after an auto_redeploy close): it sets o's windows and
	// schedules its check (schedule). The core stores o afterwards.
	Open(ctx *types.Context, p Params, o *Order)
	// Bid handles provider m.Provider's MsgCreateBid on o; a mode that takes no bids
	// refuses it, saying how the order is priced.
	Bid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) error
	// Pick handles the tenant's MsgCreateLease on o (its owner, checked by the core).
	Pick(ctx *types.Context, p Params, o *Order, m *MsgCreateLease) error
	// Check runs at the end of the height o was scheduled for: it may make a lease,
	// close the order or schedule it again.
	Check(ctx *types.Context, p Params, o *Order)
}

// Pricing modes (Order.Mode).
const (
	// ModeAuction is Akash's reverse auction: providers bid under the order's max
	// price in a bid window, and the lowest fitting bid wins when it closes (or the
	// tenant picks, for a manual order).
	ModeAuction = "auction"
	// ModeMarket is the order book (io.net, Gensyn): providers post standing asks per
	// resource class, and an order fills from the cheapest fitting asks in the block
	// it is placed.
	ModeMarket = "market"
	// ModeSealed is sealed bidding (Aethir): providers commit hidden bids, reveal
	// them in the next block, and the lowest revealed bid wins.
	ModeSealed = "sealed"
	// ModePerformance is performance-based pricing (Render): bids are per benchmark
	// TFLOP-hour, and a lease bills the work its GPUs' scores say they do.
	ModePerformance = "performance"
	// ModeStake is stake-proportional work and rewards (Phala): orders are assigned
	// by stake x uptime, and an epoch's reward pool is split the same way.
	ModeStake = "stake"
)

// modes are the pricing modes, by name; an order's mode is looked up here.
var modes = map[string]Mode{ModeAuction: auction{}, ModeMarket: book{}, ModeSealed: sealed{}, ModePerformance: performance{}, ModeStake: stakeMode{}}

// placer is a Mode with rules of its own on the orders it takes, checked before the
// order's deposit is escrowed.
type placer interface {
	validateOrder(m *MsgCreateOrder) error
}

// closer is a Mode that keeps records of its own on open orders, dropped when the
// core closes one.
type closer interface {
	orderClosed(ctx *types.Context, o *Order)
}

// leasePricer is a Mode whose leases are priced from more than the winning bid.
type leasePricer interface {
	// priceLease sets the price of lease l, just made from its winning bid.
	priceLease(ctx *types.Context, p Params, l *Lease)
	// reprice updates l's price before a settlement; true if it changed.
	reprice(ctx *types.Context, p Params, l *Lease) bool
}

// ModeNames lists the pricing modes, sorted.
func ModeNames() []string { return slices.Sorted(maps.Keys(modes)) }

// ValidMode reports whether name is a pricing mode an order may name ("" means the
// auction).
func ValidMode(name string) bool {
	_, ok := modes[name]
	return ok || name == ""
}

// modeOf returns order o's pricing mode. An order's mode was checked when it was
// placed, so an unknown one here means corrupt state.
func modeOf(o *Order) Mode {
	name := o.Mode
	if name == "" {
		name = ModeAuction
	}
	m, ok := modes[name]
	if !ok {
		panic(fmt.Sprintf("market: order %d has unknown pricing mode %q", o.ID, o.Mode))
	}
	return m
}
