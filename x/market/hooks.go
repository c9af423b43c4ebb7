package market

import (
	"fmt"
	"regexp"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/registry"
)

// Hooks is how another module (verify) follows the market's leases without the market
// importing it: the app registers it with RegisterHooks when it starts.
//
// Hooks run inside the transaction or EndBlock that caused them, on the same state
// view, after the market's own writes for that step: what a hook writes commits or
// rolls back with it. They run in CheckTx too, so a transaction's fate is the same
// there. A hook cannot refuse (a broken invariant panics) and MUST be deterministic.
// It may call CloseLease, including on the lease it is told about (which then returns
// ErrLeaseClosed).
type Hooks interface {
	// LeaseCreated: a bid won and became lease l.
	LeaseCreated(ctx *types.Context, l Lease)
	// LeaseStarted: l's provider reported its workload running (MsgStartLease).
	LeaseStarted(ctx *types.Context, l Lease)
	// LeaseClosed: l closed for reason (l.CloseReason); its order is closed or re-opened
	// and its dispute window open.
	LeaseClosed(ctx *types.Context, l Lease, reason Reason)
	// PaymentMade: l's escrow paid p for one block (p.Gross > 0). The last payment of a
	// lease closed by a transaction is made once l is marked closed (l.State closed,
	// l.CloseReason set); LeaseClosed follows.
	PaymentMade(ctx *types.Context, l Lease, p escrow.Payment)
}

// BaseHooks does nothing; embed it to implement only the hooks a module needs.
type BaseHooks struct{}

func (BaseHooks) LeaseCreated(*types.Context, Lease)                {}
func (BaseHooks) LeaseStarted(*types.Context, Lease)                {}
func (BaseHooks) LeaseClosed(*types.Context, Lease, Reason)         {}
func (BaseHooks) PaymentMade(*types.Context, Lease, escrow.Payment) {}

// Reason is a close reason and how closing a lease for it settles. The market's own are
// built in; other modules register theirs with RegisterReason. The unused escrow is
// always refunded to the tenant when the order closes.
type Reason struct {
	// Name is recorded on the lease and its order (close_reason) and in events.
	Name string
	// PaysThisBlock: the close comes before this block's settlement (a transaction, or
	// a module acting before the market's EndBlock), and the work ran in this block, so
	// a lease that is billing pays for it here. Otherwise the block is not paid.
	PaysThisBlock bool
	// Redeploy: an auto_redeploy order with escrow left re-opens for other providers
	// (this one excluded) instead of closing.
	Redeploy bool
	// RefundHeld: the pay held back from the provider on this lease goes back to the
	// tenant at once rather than waiting out the dispute window: the provider is at
	// fault.
	RefundHeld bool
}

// builtinReasons are the market's own close reasons. Read-only.
var builtinReasons = map[string]Reason{
	ReasonTenantClosed:         {Name: ReasonTenantClosed, PaysThisBlock: true},
	ReasonProviderClosed:       {Name: ReasonProviderClosed, PaysThisBlock: true},
	ReasonCompleted:            {Name: ReasonCompleted, PaysThisBlock: true},
	ReasonWorkloadFailed:       {Name: ReasonWorkloadFailed, PaysThisBlock: true},
	ReasonStartTimeout:         {Name: ReasonStartTimeout},
	ReasonEscrowExhausted:      {Name: ReasonEscrowExhausted},
	ReasonProviderUnresponsive: {Name: ReasonProviderUnresponsive, Redeploy: true},
	ReasonProviderDeregistered: {Name: ReasonProviderDeregistered},
	// NB: no_bids and not_picked close orders that never had a lease.
	ReasonNoBids:    {Name: ReasonNoBids},
	ReasonNotPicked: {Name: ReasonNotPicked},
	ReasonUnfilled:  {Name: ReasonUnfilled},
	// NB: settled for the block before it closes (EndBlock), so it pays nothing more.
	ReasonSessionEnded: {Name: ReasonSessionEnded},
	// NB: closed at its deadline before the block's settlement, so it pays the
	// block it ran in; an auto_redeploy order is placed again elsewhere.
	ReasonReclaimed: {Name: ReasonReclaimed, PaysThisBlock: true, Redeploy: true},
	// NB: a cluster order that never had its members closes with this.
	ReasonClusterUnplaced: {Name: ReasonClusterUnplaced},
	// NB: the other members ran until now and are paid the block (settlement
	// never pays a block twice).
	ReasonClusterMemberFailed: {Name: ReasonClusterMemberFailed, PaysThisBlock: true},
}

var reasonRe = regexp.MustCompile(`^[a-z][a-z0-9_]{1,47}$`)

const hooksTable = ModuleName + "/hooks"

// table is the market's table in types.Hooks.
type table struct {
	hooks   []namedHooks
	reasons map[string]Reason
	checks  []namedCheck
}

type namedCheck struct {
	name  string
	check ProviderCheck
}

type namedHooks struct {
	name string
	h    Hooks
}

func tableOf(h *types.Hooks) *table {
	return h.Table(hooksTable, func() any { return &table{reasons: map[string]Reason{}} }).(*table)
}

// RegisterHooks adds hk, named name, to the hooks the market calls. Hooks run in the
// order they were registered, which the app's wiring declares. It panics if h is sealed
// or name is taken: wiring bugs.
func RegisterHooks(h *types.Hooks, name string, hk Hooks) {
	h.MustBeOpen("market hooks " + name)
	t := tableOf(h)
	for _, x := range t.hooks {
		if x.name == name {
			panic(fmt.Sprintf("market: hooks %q registered twice", name))
		}
	}
	t.hooks = append(t.hooks, namedHooks{name, hk})
}

// RegisterReason adds a close reason another module closes leases with (CloseLease).
// It panics if h is sealed, the name is not 2-48 of [a-z0-9_] starting with a letter,
// or it is already a reason: wiring bugs.
func RegisterReason(h *types.Hooks, r Reason) {
	h.MustBeOpen("market close reason " + r.Name)
	if !reasonRe.MatchString(r.Name) {
		panic(fmt.Sprintf("market: close reason %q: must match %s", r.Name, reasonRe))
	}
	t := tableOf(h)
	if _, ok := builtinReasons[r.Name]; ok {
		panic(fmt.Sprintf("market: close reason %q is built in", r.Name))
	}
	if _, ok := t.reasons[r.Name]; ok {
		panic(fmt.Sprintf("market: close reason %q registered twice", r.Name))
	}
	t.reasons[r.Name] = r
}

// ProviderCheck lists what keeps provider prov from taking order o beyond its
// inventory, runtime and capacity: a rule another module keeps (a failed hardware
// proof, a TEE the order requires). Each Failure names its constraint and why. A bid is
// refused on the first, and why-no-bids (Match) lists them all. It MUST NOT write
// state and MUST be deterministic.
type ProviderCheck func(ctx *types.Context, o Order, prov registry.Provider) []Failure

// RegisterProviderCheck adds check, named name, to the checks every bid and match
// report runs, in registration order. It panics if h is sealed or name is taken:
// wiring bugs.
func RegisterProviderCheck(h *types.Hooks, name string, check ProviderCheck) {
	h.MustBeOpen("market provider check " + name)
	t := tableOf(h)
	for _, x := range t.checks {
		if x.name == name {
			panic(fmt.Sprintf("market: provider check %q registered twice", name))
		}
	}
	t.checks = append(t.checks, namedCheck{name, check})
}

// checkProvider runs the registered provider checks.
func checkProvider(ctx *types.Context, o Order, prov registry.Provider) []Failure {
	t, ok := ctx.Hooks.Lookup(hooksTable)
	if !ok {
		return nil
	}
	var out []Failure
	for _, x := range t.(*table).checks {
		out = append(out, x.check(ctx, o, prov)...)
	}
	return out
}

// LookupReason returns the close reason named name, built in or registered.
func LookupReason(ctx *types.Context, name string) (Reason, bool) {
	if r, ok := builtinReasons[name]; ok {
		return r, true
	}
	if t, ok := ctx.Hooks.Lookup(hooksTable); ok {
		r, ok := t.(*table).reasons[name]
		return r, ok
	}
	return Reason{}, false
}

// mustReason returns the reason named name; an unknown one is a programming error.
func mustReason(ctx *types.Context, name string) Reason {
	r, ok := LookupReason(ctx, name)
	if !ok {
		panic(fmt.Sprintf("market: close reason %q is neither built in nor registered", name))
	}
	return r
}

// fire calls f on every registered hook, in order.
func fire(ctx *types.Context, f func(Hooks)) {
	t, ok := ctx.Hooks.Lookup(hooksTable)
	if !ok {
		return
	}
	for _, x := range t.(*table).hooks {
		f(x.h)
	}
}

// CloseLease closes attempt of lease id for reason, the way the market closes its own
// leases: it pays the current block if the reason says so, releases the provider's
// capacity, opens the lease's dispute window, closes (or re-opens) the order refunding
// the unused escrow, and runs the LeaseClosed hooks. It is how another module ends a
// lease with a reason it registered. It returns ErrNotFound for an unknown lease or
// attempt and ErrLeaseClosed when that attempt is no longer active, changing nothing;
// it panics on an unknown reason (a programming error).
func CloseLease(ctx *types.Context, id uint64, attempt uint32, reason string) error {
	mustReason(ctx, reason)
	o, ok := GetOrder(ctx, id)
	if !ok || attempt == 0 || attempt > o.Attempts {
		return types.Wrapf(types.ErrNotFound, "lease %d attempt %d", id, attempt)
	}
	l, ok := GetLease(ctx, id)
	if !ok || l.Attempt != attempt || l.State != LeaseActive {
		var closed Lease
		getJSON(ctx, leaseKey(id, attempt), &closed)
		return types.Wrapf(types.ErrLeaseClosed, "lease %d attempt %d closed at height %d (%s)", id, attempt, closed.ClosedHeight, closed.CloseReason)
	}
	closeLease(ctx, GetParams(ctx), &o, &l, reason, "")
	return nil
}
