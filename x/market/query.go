package market

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// OrderFilter selects orders; zero fields match everything.
type OrderFilter struct {
	State string
	Owner types.Address
}

// Orders returns the orders matching f in ID order. State "open" walks only the open
// index, so a provider's poll costs what is open, not all history.
func Orders(ctx *types.Context, f OrderFilter) []Order {
	var out []Order
	keep := func(o Order) {
		if (f.State == "" || o.State == f.State) && (f.Owner.IsZero() || o.Owner == f.Owner) {
			out = append(out, o)
		}
	}
	if f.State == OrderOpen {
		var ids []uint64
		ctx.Store.Iterate(openPrefix, func(k, _ []byte) bool {
			ids = append(ids, binary.BigEndian.Uint64(k[len(openPrefix):]))
			return true
		})
		for _, id := range ids {
			o, _ := GetOrder(ctx, id)
			keep(o)
		}
		return out
	}
	ctx.Store.Iterate(orderPrefix, func(_, v []byte) bool {
		var o Order
		if err := json.Unmarshal(v, &o); err != nil {
			panic(err)
		}
		keep(o)
		return true
	})
	return out
}

// Bids returns the open bids, on order id if id > 0, by provider p if p is set.
func Bids(ctx *types.Context, id uint64, p types.Address) []Bid {
	prefix := bidPrefix
	if id > 0 {
		prefix = u64key(bidPrefix, id)
	}
	var out []Bid
	for _, b := range listBids(ctx, prefix) {
		if p.IsZero() || b.Provider == p {
			out = append(out, b)
		}
	}
	return out
}

// LeaseFilter selects leases; zero fields match everything.
type LeaseFilter struct {
	State    string
	Owner    types.Address
	Provider types.Address
}

// Leases returns the leases matching f (every attempt, closed ones included), by ID
// then attempt. State "active" walks only the active index.
func Leases(ctx *types.Context, f LeaseFilter) []Lease {
	var out []Lease
	keep := func(l Lease) {
		if (f.State == "" || l.State == f.State) && (f.Owner.IsZero() || l.Owner == f.Owner) && (f.Provider.IsZero() || l.Provider == f.Provider) {
			out = append(out, l)
		}
	}
	if f.State == LeaseActive {
		var ids []uint64
		ctx.Store.Iterate(activePrefix, func(k, _ []byte) bool {
			ids = append(ids, binary.BigEndian.Uint64(k[len(activePrefix):]))
			return true
		})
		for _, id := range ids {
			l, _ := GetLease(ctx, id)
			keep(l)
		}
		return out
	}
	ctx.Store.Iterate(leasePrefix, func(_, v []byte) bool {
		var l Lease
		if err := json.Unmarshal(v, &l); err != nil {
			panic(err)
		}
		keep(l)
		return true
	})
	return out
}

// ProviderMatch explains whether one provider can take an order.
type ProviderMatch struct {
	Provider types.Address `json:"provider"`
	Fits     bool          `json:"fits"`
	// Bid is true when the provider has an open bid on the order.
	Bid bool `json:"bid"`
	// Leased is true for the provider holding the order's active lease: its bid was
	// spent on it, and its fit is not asked (the lease holds its resources).
	Leased   bool      `json:"leased,omitempty"`
	Failures []Failure `json:"failures"`
}

// LeaseRef names an order's current (or last) lease in a MatchReport.
type LeaseRef struct {
	ID            uint64        `json:"id,string"`
	Attempt       uint32        `json:"attempt"`
	Provider      types.Address `json:"provider"`
	State         string        `json:"state"`
	CreatedHeight int64         `json:"created_height,string"`
	CloseReason   string        `json:"close_reason,omitempty"`
	ClosedHeight  int64         `json:"closed_height,string,omitempty"`
}

// MatchReport explains, per registered provider, which constraints of an order it fails
// — what `kiln deploy` prints when no bid came. An order that is not open takes no
// bids: the report then says so, with its lease (if it had one) or why it closed.
type MatchReport struct {
	OrderID uint64 `json:"order_id,string"`
	State   string `json:"state"`
	Height  int64  `json:"height,string"`
	// BidCloseHeight is the last height of the open order's bid window.
	BidCloseHeight int64 `json:"bid_close_height,string,omitempty"`
	// CloseReason and ClosedHeight say why and when a closed order closed.
	CloseReason  string `json:"close_reason,omitempty"`
	ClosedHeight int64  `json:"closed_height,string,omitempty"`
	// Lease is the order's latest lease, if it ever had one.
	Lease     *LeaseRef       `json:"lease,omitempty"`
	Providers []ProviderMatch `json:"providers"`
	// Summary counts providers per failed constraint.
	Summary map[string]int `json:"summary"`
}

// Match builds the MatchReport of order id against every registered provider.
func Match(ctx *types.Context, id uint64) (MatchReport, error) {
	o, ok := GetOrder(ctx, id)
	if !ok {
		return MatchReport{}, types.Wrapf(types.ErrNotFound, "order %d", id)
	}
	r := MatchReport{OrderID: id, State: o.State, Height: ctx.Height, Providers: []ProviderMatch{}, Summary: map[string]int{}}
	switch o.State {
	case OrderOpen:
		r.BidCloseHeight = o.BidCloseHeight
	case OrderClosed:
		r.CloseReason, r.ClosedHeight = o.CloseReason, o.ClosedHeight
	}
	var holder types.Address
	if l, ok := GetLease(ctx, id); ok {
		r.Lease = &LeaseRef{ID: l.ID, Attempt: l.Attempt, Provider: l.Provider, State: l.State, CreatedHeight: l.CreatedHeight,
			CloseReason: l.CloseReason, ClosedHeight: l.ClosedHeight}
		if l.State == LeaseActive {
			holder = l.Provider
		}
	}
	for _, prov := range registry.List(ctx) {
		pm := ProviderMatch{Provider: prov.Owner, Failures: []Failure{}}
		if !holder.IsZero() && prov.Owner == holder {
			pm.Leased, pm.Fits = true, true
			r.Providers = append(r.Providers, pm)
			continue
		}
		_, pm.Bid = GetBid(ctx, id, prov.Owner)
		for _, x := range o.Excluded {
			if x == prov.Owner {
				pm.Failures = append(pm.Failures, Failure{Constraint: "excluded", Detail: "failed an earlier lease of this order"})
			}
		}
		_, _, static, inUse := Fit(o.Groups, nil, prov.Inventory, Used(ctx, prov.Owner))
		pm.Failures = append(append(append(pm.Failures, static...), checkProvider(ctx, o, prov)...), inUse...)
		pm.Fits = len(pm.Failures) == 0
		seen := map[string]bool{}
		for _, f := range pm.Failures {
			if !seen[f.Constraint] {
				r.Summary[f.Constraint]++
				seen[f.Constraint] = true
			}
		}
		r.Providers = append(r.Providers, pm)
	}
	return r, nil
}

// CapacityReport is a provider's inventory, what its active leases hold, and the rest.
type CapacityReport struct {
	Provider     types.Address `json:"provider"`
	Total        Usage         `json:"total"`
	Used         Usage         `json:"used"`
	Free         Usage         `json:"free"`
	ActiveLeases []uint64      `json:"active_leases"`
}

// Capacity returns provider p's CapacityReport. It walks the active leases: O(active).
func Capacity(ctx *types.Context, p types.Address) (CapacityReport, error) {
	prov, ok := registry.Get(ctx, p)
	if !ok {
		return CapacityReport{}, types.Wrapf(types.ErrNotFound, "provider %s", p)
	}
	r := CapacityReport{Provider: p, Total: Total(prov.Inventory), Used: Used(ctx, p), ActiveLeases: []uint64{}}
	r.Free = Free(r.Total, r.Used)
	for _, l := range Leases(ctx, LeaseFilter{State: LeaseActive, Provider: p}) {
		r.ActiveLeases = append(r.ActiveLeases, l.ID)
	}
	return r, nil
}

// BidDeposits returns the deposits of every open bid, per denom: what the Market module
// account must hold. O(bids).
func BidDeposits(ctx *types.Context) types.Coins {
	sums := map[string]uint64{}
	for _, b := range Bids(ctx, 0, types.Address{}) {
		s, ok := types.AddUint64(sums[b.Deposit.Denom], b.Deposit.Amount)
		if !ok {
			// NB: the deposits came out of the supply, which fits in 64 bits.
			panic(fmt.Sprintf("market: bid deposits of %s overflow: corrupt records", b.Deposit.Denom))
		}
		sums[b.Deposit.Denom] = s
	}
	return types.SortedCoins(sums)
}

// CheckInvariants returns an error if the per-provider usage records differ from the
// sum of active leases, an index disagrees with the records, or the Market module
// account does not hold exactly the open bids' deposits. O(orders + bids): for tests
// and audits.
func CheckInvariants(ctx *types.Context) error {
	sums := map[types.Address]Usage{}
	var provs []types.Address
	for _, l := range Leases(ctx, LeaseFilter{State: LeaseActive}) {
		if l.State != LeaseActive {
			return fmt.Errorf("market: active index names lease %d in state %s", l.ID, l.State)
		}
		if _, seen := sums[l.Provider]; !seen {
			provs = append(provs, l.Provider)
		}
		sums[l.Provider] = sums[l.Provider].Add(l.Usage)
	}
	ctx.Store.Iterate(usedPrefix, func(k, _ []byte) bool {
		var a types.Address
		copy(a[:], k[len(usedPrefix):])
		if _, seen := sums[a]; !seen {
			provs = append(provs, a)
		}
		return true
	})
	for _, p := range provs {
		if got, want := Used(ctx, p), sums[p]; fmt.Sprint(got) != fmt.Sprint(want.Add(Usage{})) {
			return fmt.Errorf("market: provider %s usage record %+v, active leases add up to %+v", p, got, want)
		}
	}
	for _, o := range Orders(ctx, OrderFilter{}) {
		_, open := ctx.Store.Get(u64key(openPrefix, o.ID))
		_, active := ctx.Store.Get(u64key(activePrefix, o.ID))
		// NB: a placed cluster order is active through its members' leases, not one
		// of its own.
		if open != (o.State == OrderOpen) || active != (o.State == OrderActive && o.Cluster == nil) {
			return fmt.Errorf("market: order %d in state %s but open index %v, active index %v", o.ID, o.State, open, active)
		}
		if o.State != OrderOpen && len(BidsOf(ctx, o.ID)) > 0 {
			return fmt.Errorf("market: order %d is %s but has open bids", o.ID, o.State)
		}
	}
	if err := checkIndex(ctx); err != nil {
		return err
	}
	deposits := map[string]uint64{}
	for _, c := range BidDeposits(ctx) {
		deposits[c.Denom] = c.Amount
	}
	for _, c := range bank.Balances(ctx, Account) {
		if deposits[c.Denom] != c.Amount {
			return fmt.Errorf("market: module account holds %s, open bids' deposits add up to %d", c, deposits[c.Denom])
		}
		delete(deposits, c.Denom)
	}
	// NB: sorted, so every node reports the same denom first.
	for _, d := range slices.Sorted(maps.Keys(deposits)) {
		if s := deposits[d]; s != 0 {
			return fmt.Errorf("market: open bids' deposits of %d%s are not in the module account", s, d)
		}
	}
	if err := checkReclaims(ctx); err != nil {
		return err
	}
	return checkBook(ctx)
}

// ShownGPUs is a lease's or bid's GPU per order group as queries show it. State keeps
// one GPUSpec per group, the zero one for a group without GPUs; shown, such a group is
// null (so positions still match the groups), and a list with no GPU at all — a
// CPU-only lease — is left out instead of showing a phantom {"model":""}.
type ShownGPUs []GPUSpec

// MarshalJSON writes the zero GPUSpec as null.
func (g ShownGPUs) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, s := range g {
		if i > 0 {
			b = append(b, ',')
		}
		if s == (GPUSpec{}) {
			b = append(b, "null"...)
			continue
		}
		e, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		b = append(b, e...)
	}
	return append(b, ']'), nil
}

// showGPUs returns gs for display: nil when no group has a GPU.
func showGPUs(gs []GPUSpec) ShownGPUs {
	for _, s := range gs {
		if s != (GPUSpec{}) {
			return ShownGPUs(gs)
		}
	}
	return nil
}

// LeaseView is a Lease as queries and the CLI show it (see ShownGPUs). It decodes
// back into a Lease.
type LeaseView struct {
	Lease
	GPUs ShownGPUs `json:"gpus,omitempty"`
}

// BidView is a Bid as queries and the CLI show it (see ShownGPUs).
type BidView struct {
	Bid
	GPUs ShownGPUs `json:"gpus,omitempty"`
}

// ShowLease returns l's LeaseView.
func ShowLease(l Lease) LeaseView { return LeaseView{Lease: l, GPUs: showGPUs(l.GPUs)} }

// ShowLeases returns the LeaseView of each lease (never nil).
func ShowLeases(ls []Lease) []LeaseView {
	out := make([]LeaseView, len(ls))
	for i, l := range ls {
		out[i] = ShowLease(l)
	}
	return out
}

// ShowBids returns the BidView of each bid (never nil).
func ShowBids(bs []Bid) []BidView {
	out := make([]BidView, len(bs))
	for i, b := range bs {
		out[i] = BidView{Bid: b, GPUs: showGPUs(b.GPUs)}
	}
	return out
}
