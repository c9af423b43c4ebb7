package market

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// State layout. IDs and heights are 8-byte big-endian so keys sort numerically.
var (
	orderSeqKey  = []byte("market/seq/order")
	bidSeqKey    = []byte("market/seq/bid")
	orderPrefix  = []byte("market/order/")  // id → Order
	openPrefix   = []byte("market/open/")   // id → {} for orders in state open
	bidPrefix    = []byte("market/bid/")    // id|provider → Bid
	leasePrefix  = []byte("market/lease/")  // id|attempt(4) → Lease
	activePrefix = []byte("market/active/") // id → {} for orders with an active lease
	queuePrefix  = []byte("market/queue/")  // height|id → {}: look at order id at the end of height
	usedPrefix   = []byte("market/used/")   // provider → Usage of its active leases
)

var present = []byte{1}

func u64key(prefix []byte, vs ...uint64) []byte {
	k := append([]byte{}, prefix...)
	for _, v := range vs {
		k = binary.BigEndian.AppendUint64(k, v)
	}
	return k
}

func getJSON(ctx *types.Context, k []byte, out any) bool {
	v, ok := ctx.Store.Get(k)
	if !ok {
		return false
	}
	if err := json.Unmarshal(v, out); err != nil {
		panic(fmt.Sprintf("market: corrupt record at %q: %v", k, err))
	}
	return true
}

func setJSON(ctx *types.Context, k []byte, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	ctx.Store.Set(k, b)
}

func nextSeq(ctx *types.Context, k []byte) uint64 {
	var n uint64
	if v, ok := ctx.Store.Get(k); ok {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	ctx.Store.Set(k, binary.BigEndian.AppendUint64(nil, n))
	return n
}

// GetParams returns the market's parameters.
func GetParams(ctx *types.Context) Params {
	var p Params
	params.Get(ctx, ModuleName, &p)
	return p
}

// GetOrder returns order id.
func GetOrder(ctx *types.Context, id uint64) (Order, bool) {
	var o Order
	return o, getJSON(ctx, u64key(orderPrefix, id), &o)
}

func setOrder(ctx *types.Context, o *Order) {
	o.UpdatedHeight = ctx.Height
	setJSON(ctx, u64key(orderPrefix, o.ID), o)
}

func bidKey(id uint64, p types.Address) []byte { return append(u64key(bidPrefix, id), p[:]...) }

// GetBid returns provider p's bid on order id.
func GetBid(ctx *types.Context, id uint64, p types.Address) (Bid, bool) {
	var b Bid
	return b, getJSON(ctx, bidKey(id, p), &b)
}

// BidsOf returns the open bids on order id, by provider address.
func BidsOf(ctx *types.Context, id uint64) []Bid {
	return listBids(ctx, u64key(bidPrefix, id))
}

func listBids(ctx *types.Context, prefix []byte) []Bid {
	var out []Bid
	ctx.Store.Iterate(prefix, func(_, v []byte) bool {
		var b Bid
		if err := json.Unmarshal(v, &b); err != nil {
			panic(err)
		}
		out = append(out, b)
		return true
	})
	return out
}

func leaseKey(id uint64, attempt uint32) []byte {
	return binary.BigEndian.AppendUint32(u64key(leasePrefix, id), attempt)
}

// GetLease returns the latest lease of order id (the active one, if any).
func GetLease(ctx *types.Context, id uint64) (Lease, bool) {
	o, ok := GetOrder(ctx, id)
	if !ok || o.Attempts == 0 {
		return Lease{}, false
	}
	var l Lease
	if !getJSON(ctx, leaseKey(id, o.Attempts), &l) {
		panic(fmt.Sprintf("market: order %d has %d leases but the last is missing", id, o.Attempts))
	}
	return l, true
}

func setLease(ctx *types.Context, l *Lease) {
	l.UpdatedHeight = ctx.Height
	setJSON(ctx, leaseKey(l.ID, l.Attempt), l)
}

// Used returns the resources provider p's active leases hold.
func Used(ctx *types.Context, p types.Address) Usage {
	var u Usage
	getJSON(ctx, append(append([]byte{}, usedPrefix...), p[:]...), &u)
	return u
}

// setUsed records provider p's usage and rewrites its entries in the free-capacity
// index.
func setUsed(ctx *types.Context, p types.Address, u Usage) {
	k := append(append([]byte{}, usedPrefix...), p[:]...)
	if u.IsZero() {
		ctx.Store.Delete(k)
	} else {
		setJSON(ctx, k, u)
	}
	reindex(ctx, p)
	refileAsks(ctx, p, u)
}

// schedule makes order o due at the end of height h (0: never), replacing its previous
// queue entry.
func schedule(ctx *types.Context, o *Order, h int64) {
	if o.NextCheck != 0 {
		ctx.Store.Delete(u64key(queuePrefix, uint64(o.NextCheck), o.ID))
	}
	o.NextCheck = h
	if h != 0 {
		ctx.Store.Set(u64key(queuePrefix, uint64(h), o.ID), present)
	}
}

func idStr(id uint64) string { return strconv.FormatUint(id, 10) }

// Handle executes a market message.
func Handle(ctx *types.Context, msg types.Msg) error {
	p := GetParams(ctx)
	switch m := msg.(type) {
	case *MsgCreateOrder:
		return createOrder(ctx, p, m)
	case *MsgAsk:
		return postAsk(ctx, p, m)
	case *MsgCancelAsk:
		return cancelAsk(ctx, m)
	case *MsgCommitBid:
		o, ok := GetOrder(ctx, m.OrderID)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "order %d", m.OrderID)
		}
		return commitBid(ctx, p, &o, m)
	case *MsgRevealBid:
		o, ok := GetOrder(ctx, m.OrderID)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "order %d", m.OrderID)
		}
		return revealBid(ctx, p, &o, m)
	case *MsgRTTProbe:
		return recordProbe(ctx, m)
	case *MsgReclaimLease:
		return startReclaim(ctx, m)
	case *MsgMemberReady:
		return memberReady(ctx, m)
	case *MsgMemberRunning:
		return memberRunning(ctx, m)
	case *MsgCloseOrder:
		o, ok := GetOrder(ctx, m.OrderID)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "order %d", m.OrderID)
		}
		if o.Owner != m.Owner {
			return types.Wrapf(types.ErrUnauthorized, "order %d belongs to %s, not %s", o.ID, o.Owner, m.Owner)
		}
		switch o.State {
		case OrderClosed:
			return types.Wrapf(types.ErrOrderClosed, "order %d closed at height %d (%s)", o.ID, o.ClosedHeight, o.CloseReason)
		case OrderActive:
			if o.Cluster != nil {
				closeCluster(ctx, &o, ReasonTenantClosed)
				return nil
			}
			l, _ := GetLease(ctx, o.ID)
			closeLease(ctx, p, &o, &l, ReasonTenantClosed, "")
		default:
			closeOrder(ctx, &o, ReasonTenantClosed)
		}
		return nil
	case *MsgCreateBid:
		o, ok := GetOrder(ctx, m.OrderID)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "order %d", m.OrderID)
		}
		if m.Members != 0 && o.Cluster == nil {
			return types.InvalidField("members", m.Members, fmt.Sprintf("order %d is not a cluster order; bid without members", o.ID))
		}
		return modeOf(&o).Bid(ctx, p, &o, m)
	case *MsgCloseBid:
		b, ok := GetBid(ctx, m.OrderID, m.Provider)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "no open bid by %s on order %d", m.Provider, m.OrderID)
		}
		releaseBid(ctx, b, bidWithdrawn)
		return nil
	case *MsgCreateLease:
		o, ok := GetOrder(ctx, m.OrderID)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "order %d", m.OrderID)
		}
		if o.Owner != m.Owner {
			return types.Wrapf(types.ErrUnauthorized, "order %d belongs to %s, not %s", o.ID, o.Owner, m.Owner)
		}
		return modeOf(&o).Pick(ctx, p, &o, m)
	case *MsgCloseLease:
		o, l, err := activeLease(ctx, m.LeaseID)
		if err != nil {
			return err
		}
		switch m.Sender {
		case l.Owner:
			closeLease(ctx, p, &o, &l, ReasonTenantClosed, "")
		case l.Provider:
			closeLease(ctx, p, &o, &l, ReasonProviderClosed, "")
		default:
			return types.Wrapf(types.ErrUnauthorized, "lease %d is between tenant %s and provider %s; %s may not close it", l.ID, l.Owner, l.Provider, m.Sender)
		}
		return nil
	case *MsgHeartbeat:
		_, l, err := activeLease(ctx, m.LeaseID)
		if err != nil {
			return err
		}
		if m.Provider != l.Provider {
			return types.Wrapf(types.ErrUnauthorized, "lease %d is run by %s; only it may heartbeat (got %s)", l.ID, l.Provider, m.Provider)
		}
		l.LastHeartbeat = ctx.Height
		setLease(ctx, &l)
		noteUptime(ctx, p, l.Provider)
		return nil
	case *MsgStartLease:
		o, l, err := activeLease(ctx, m.LeaseID)
		if err != nil {
			return err
		}
		if m.Provider != l.Provider {
			return types.Wrapf(types.ErrUnauthorized, "lease %d is run by %s; only it may report it started (got %s)", l.ID, l.Provider, m.Provider)
		}
		if l.StartedHeight != 0 {
			return types.Wrapf(types.ErrAlreadyExists, "lease %d started at height %d", l.ID, l.StartedHeight)
		}
		if o.MemberOf != 0 {
			return types.Wrapf(types.ErrInvalidRequest, "lease %d is rank %d of cluster %d: it starts with the cluster (member-running), once every member is ready", l.ID, o.Rank, o.MemberOf)
		}
		startLease(ctx, p, &o, &l)
		return nil
	case *MsgCompleteLease:
		o, l, err := activeLease(ctx, m.LeaseID)
		if err != nil {
			return err
		}
		if m.Provider != l.Provider {
			return types.Wrapf(types.ErrUnauthorized, "lease %d is run by %s; only it may complete it (got %s)", l.ID, l.Provider, m.Provider)
		}
		if o.Kind != KindBatch && !m.Failed {
			return types.Wrapf(types.ErrInvalidRequest, "lease %d is a %s lease; only batch leases complete (services end with close-lease, or are reported failed)", l.ID, o.Kind)
		}
		reason := ReasonCompleted
		if m.Failed {
			reason = ReasonWorkloadFailed
		}
		closeLease(ctx, p, &o, &l, reason, hex.EncodeToString(m.OutputHash))
		return nil
	}
	return types.Wrapf(types.ErrUnknownMsgType, "market cannot handle %T", msg)
}

// startLease records that lease l's workload runs: it bills from the next block.
func startLease(ctx *types.Context, p Params, _ *Order, l *Lease) {
	l.StartedHeight = ctx.Height
	l.LastHeartbeat = ctx.Height
	setLease(ctx, l)
	noteUptime(ctx, p, l.Provider)
	ctx.Emit("lease_started", "lease", idStr(l.ID), "attempt", strconv.FormatUint(uint64(l.Attempt), 10),
		"provider", l.Provider.String(), "height", strconv.FormatInt(ctx.Height, 10))
	started := *l
	fire(ctx, func(h Hooks) { h.LeaseStarted(ctx, started) })
}

func activeLease(ctx *types.Context, id uint64) (Order, Lease, error) {
	o, ok := GetOrder(ctx, id)
	if !ok || o.Attempts == 0 {
		return o, Lease{}, types.Wrapf(types.ErrNotFound, "lease %d", id)
	}
	var l Lease
	if !getJSON(ctx, leaseKey(id, o.Attempts), &l) {
		panic(fmt.Sprintf("market: order %d has %d leases but the last is missing", id, o.Attempts))
	}
	if l.State != LeaseActive {
		return o, l, types.Wrapf(types.ErrLeaseClosed, "lease %d closed at height %d (%s)", id, l.ClosedHeight, l.CloseReason)
	}
	return o, l, nil
}

func createOrder(ctx *types.Context, p Params, m *MsgCreateOrder) error {
	blocks := p.MinDepositBlocks
	if m.Session != nil {
		// NB: a session is billed as a whole: its deposit covers all of it.
		blocks = max(blocks, m.Session.Blocks)
	}
	min := blocks * m.MaxPrice
	if !mulOK(blocks, m.MaxPrice, 1<<63) {
		return types.InvalidField("max_price", m.MaxPrice, "times min_deposit_blocks (or the session's blocks) overflows")
	}
	if m.Deposit.Amount == 0 {
		return types.Wrapf(types.ErrInsufficientDeposit, "deposit: an order must escrow at least %d%s (min_deposit_blocks %d x max_price %d) (got none)", min, p.Denom, p.MinDepositBlocks, m.MaxPrice)
	}
	if m.Deposit.Denom != p.Denom {
		return types.InvalidField("deposit.denom", m.Deposit.Denom, "must be "+p.Denom)
	}
	if m.Deposit.Amount < min {
		if m.Session != nil && blocks > p.MinDepositBlocks {
			return types.Wrapf(types.ErrInsufficientDeposit, "deposit: a session is paid as a whole: must cover its %d blocks at max_price %d, i.e. >= %d%s (got %s)", blocks, m.MaxPrice, min, p.Denom, m.Deposit)
		}
		return types.Wrapf(types.ErrInsufficientDeposit, "deposit: must cover min_deposit_blocks %d at max_price %d, i.e. >= %d%s (got %s)", p.MinDepositBlocks, m.MaxPrice, min, p.Denom, m.Deposit)
	}
	id := nextSeq(ctx, orderSeqKey)
	if err := escrow.Open(ctx, id, m.Owner, m.Deposit); err != nil {
		return err
	}
	mode := m.Mode
	if mode == "" {
		mode = ModeAuction
	}
	o := Order{ID: id, Owner: m.Owner, Kind: m.Kind, Groups: m.Groups, MaxPrice: m.MaxPrice, Denom: p.Denom,
		Manual: m.Manual, AutoRedeploy: m.AutoRedeploy, Mode: mode, Fill: m.Fill, Session: m.Session,
		TEE: m.TEE, AllowedMeasurements: m.AllowedMeasurements, ReclaimWindowSeconds: m.ReclaimWindowSeconds, Cluster: m.Cluster, CreatedHeight: ctx.Height}
	openOrder(ctx, p, &o)
	ctx.Emit("order_created", "order", idStr(id), "owner", m.Owner.String(), "kind", m.Kind, "mode", mode,
		"max_price", idStr(m.MaxPrice), "deposit", m.Deposit.String(), "bid_close_height", strconv.FormatInt(o.BidCloseHeight, 10))
	return nil
}

// openOrder opens order o for offers (placed, or re-opened after an auto_redeploy
// close): the core marks it open, its pricing mode sets its windows and schedules its
// check.
func openOrder(ctx *types.Context, p Params, o *Order) {
	o.State = OrderOpen
	ctx.Store.Set(u64key(openPrefix, o.ID), present)
	modeOf(o).Open(ctx, p, o)
	setOrder(ctx, o)
}

// placeBid checks provider m.Provider's offer on open order o against everything the
// core enforces whatever the pricing mode (a registered provider with its minimum
// stake, not excluded from o, one bid each, within the max price, fitting its
// inventory, runtime and free capacity), locks its bid deposit and records the bid.
// The mode decides when bids are taken and what wins.
func placeBid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) (Bid, error) {
	need, choices, err := vetBid(ctx, o, m.Provider, m.GPUModels, func() error { return withinMax(o, m.Price) })
	if err != nil {
		return Bid{}, err
	}
	return lockBid(ctx, p, Bid{OrderID: o.ID, Provider: m.Provider, Price: m.Price, GPUs: choices, Usage: need})
}

func withinMax(o *Order, price uint64) error {
	if price > o.MaxPrice {
		per := "per block"
		if o.Mode == ModePerformance {
			per = "per TFLOP-hour"
		}
		return types.Wrapf(types.ErrInvalidRequest, "price: %d%s %s is above order %d's max price %d", price, o.Denom, per, o.ID, o.MaxPrice)
	}
	return nil
}

// vetBid checks provider prov's offer on open order o against everything the core
// enforces whatever the price: a registered provider with its minimum stake, not
// excluded from o, one bid each, fitting its inventory, runtime and free capacity.
// It returns what the lease would reserve and the GPU chosen per group.
func vetBid(ctx *types.Context, o *Order, provider types.Address, models []string, price func() error) (Usage, []GPUSpec, error) {
	fail := func(err error) (Usage, []GPUSpec, error) { return Usage{}, nil, err }
	if o.State != OrderOpen {
		return fail(types.Wrapf(types.ErrOrderClosed, "order %d is %s, not open for bids", o.ID, o.State))
	}
	prov, ok := registry.Get(ctx, provider)
	if !ok {
		return fail(types.Wrapf(types.ErrNotProvider, "%s is not a registered provider; register with kiln tx registry register-provider", provider))
	}
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	if prov.Stake < rp.MinProviderStake {
		return fail(types.Wrapf(types.ErrNotProvider, "provider %s has %d bonded, below min_provider_stake %d (it was slashed); add stake with kiln tx registry update-provider", provider, prov.Stake, rp.MinProviderStake))
	}
	for _, x := range o.Excluded {
		if x == provider {
			return fail(types.Wrapf(types.ErrUnauthorized, "provider %s failed an earlier lease of order %d and may not bid on it again", provider, o.ID))
		}
	}
	if _, dup := GetBid(ctx, o.ID, provider); dup {
		return fail(types.Wrapf(types.ErrAlreadyExists, "provider %s already bid on order %d; close-bid first to change it", provider, o.ID))
	}
	if err := price(); err != nil {
		return fail(err)
	}
	if len(models) != 0 && len(models) != len(o.Groups) {
		return fail(types.InvalidField("gpu_models", len(models), fmt.Sprintf("must be empty or one per group (%d)", len(o.Groups))))
	}
	need, choices, static, inUse := Fit(o.Groups, models, prov.Inventory, Used(ctx, provider))
	static = append(static, checkProvider(ctx, *o, prov)...)
	if len(static) > 0 {
		return fail(types.Wrapf(types.ErrRequirementsUnmet, "provider %s for order %d: %s", provider, o.ID, static[0]))
	}
	if len(inUse) > 0 {
		return fail(types.Wrapf(types.ErrInsufficientCapacity, "provider %s for order %d: %s", provider, o.ID, inUse[0]))
	}
	return need, choices, nil
}

// lockBid locks b's provider's bid deposit and records b (a price, or a sealed
// commitment).
func lockBid(ctx *types.Context, p Params, b Bid) (Bid, error) {
	dep := types.NewCoin(p.Denom, p.BidDeposit)
	if err := bank.Send(ctx, b.Provider, Account, dep); err != nil {
		return Bid{}, types.Wrapf(types.ErrInsufficientFunds, "bid deposit %s: %v", dep, err)
	}
	b.Deposit, b.Seq, b.CreatedHeight, b.UpdatedHeight = dep, nextSeq(ctx, bidSeqKey), ctx.Height, ctx.Height
	setJSON(ctx, bidKey(b.OrderID, b.Provider), b)
	price := idStr(b.Price)
	if b.Sealed != "" {
		price = "sealed"
	}
	ctx.Emit("bid_created", "order", idStr(b.OrderID), "provider", b.Provider.String(), "price", price, "gpus", describeGPUs(b.Usage))
	return b, nil
}

func releaseBid(ctx *types.Context, b Bid, reason string) {
	if b.Deposit.Amount > 0 {
		if err := bank.Send(ctx, Account, b.Provider, b.Deposit); err != nil {
			panic(fmt.Sprintf("market: module account cannot refund bid deposit %s: %v", b.Deposit, err))
		}
	}
	ctx.Store.Delete(bidKey(b.OrderID, b.Provider))
	ctx.Emit("bid_closed", "order", idStr(b.OrderID), "provider", b.Provider.String(), "reason", reason)
}

// releaseBids releases every bid on order id, the winner (if any) with reason won.
func releaseBids(ctx *types.Context, id uint64, winner *types.Address, reason string) {
	for _, b := range BidsOf(ctx, id) {
		r := reason
		if winner != nil && b.Provider == *winner {
			r = bidWon
		}
		releaseBid(ctx, b, r)
	}
}

// fits re-checks a bid against its provider's current free capacity.
func fits(ctx *types.Context, b Bid) error {
	prov, ok := registry.Get(ctx, b.Provider)
	if !ok {
		return fmt.Errorf("provider %s is no longer registered", b.Provider)
	}
	return b.Usage.FitsIn(Free(Total(prov.Inventory), Used(ctx, b.Provider)))
}

func makeLease(ctx *types.Context, p Params, o *Order, b Bid) {
	o.Attempts++
	l := Lease{ID: o.ID, Attempt: o.Attempts, Owner: o.Owner, Provider: b.Provider, Kind: o.Kind, Price: b.Price, Denom: o.Denom,
		GPUs: b.GPUs, Usage: b.Usage, State: LeaseActive, LastHeartbeat: ctx.Height, CreatedHeight: ctx.Height}
	if lp, ok := modeOf(o).(leasePricer); ok {
		lp.priceLease(ctx, p, &l)
	}
	setLease(ctx, &l)
	noteMade(ctx, &l)
	ctx.Store.Set(u64key(activePrefix, o.ID), present)
	setUsed(ctx, b.Provider, Used(ctx, b.Provider).Add(b.Usage))
	releaseBids(ctx, o.ID, &b.Provider, bidLost)
	o.State = OrderActive
	ctx.Store.Delete(u64key(openPrefix, o.ID))
	schedule(ctx, o, 0)
	setOrder(ctx, o)
	ctx.Emit("lease_created", "lease", idStr(o.ID), "order", idStr(o.ID), "attempt", strconv.FormatUint(uint64(l.Attempt), 10),
		"owner", o.Owner.String(), "provider", b.Provider.String(), "price", idStr(b.Price), "gpus", describeGPUs(b.Usage))
	if o.MemberOf != 0 {
		memberLeased(ctx, o, &l)
	}
	fire(ctx, func(h Hooks) { h.LeaseCreated(ctx, l) })
}

// closeLease closes an active lease for reason (built in or registered; an unknown one
// panics), releases its capacity, opens its dispute window and then closes its order
// (refunding the escrow) or, for a Redeploy reason on an auto_redeploy order, re-opens
// it; last, the LeaseClosed hooks run.
func closeLease(ctx *types.Context, p Params, o *Order, l *Lease, reason, output string) {
	r := mustReason(ctx, reason)
	// A lease pays for every block its workload ran in, from the block after it
	// started. A close by transaction (tenant, provider, completion) comes before this
	// block's settlement in EndBlock, so it pays for this block here: a batch job done
	// in the block after it started still pays for that block. A lease never started
	// pays nothing.
	acct, _ := escrow.Get(ctx, o.ID)
	paysNow := r.PaysThisBlock && acct.State == escrow.StateOpen && billable(l, ctx.Height) && acct.SettledHeight < ctx.Height
	l.State = LeaseClosed
	l.CloseReason = reason
	l.ClosedHeight = ctx.Height
	l.OutputHash = output
	setLease(ctx, l)
	ctx.Store.Delete(u64key(activePrefix, l.ID))
	if l.Reclaim != nil {
		ctx.Store.Delete(reclaimKey(l.Reclaim.Deadline, l.ID))
	}
	setUsed(ctx, l.Provider, Used(ctx, l.Provider).Sub(l.Usage))
	if paysNow {
		// NB: after the lease is marked closed, so a PaymentMade hook that tries to
		// close it too gets ErrLeaseClosed instead of closing it twice.
		settle(ctx, p, o, l)
	}
	noteWindow(ctx, l, escrow.OpenDisputeWindow(ctx, o.ID, l.Provider))
	if h, ok := escrow.GetHold(ctx, o.ID, l.Provider); r.RefundHeld && ok && h.Amount > 0 {
		if err := escrow.ClawBack(ctx, o.ID, l.Provider, h.Amount, o.Owner); err != nil {
			panic(fmt.Sprintf("market: refund held pay of lease %d: %v", l.ID, err))
		}
	}
	ev := []string{"lease", idStr(l.ID), "attempt", strconv.FormatUint(uint64(l.Attempt), 10), "owner", l.Owner.String(),
		"provider", l.Provider.String(), "reason", reason, "height", strconv.FormatInt(ctx.Height, 10)}
	if output != "" {
		ev = append(ev, "output_hash", output)
	}
	ctx.Emit("lease_closed", ev...)
	if acct, _ := escrow.Get(ctx, o.ID); r.Redeploy && o.AutoRedeploy && acct.Balance > 0 {
		o.Excluded = append(o.Excluded, l.Provider)
		openOrder(ctx, p, o)
		ctx.Emit("order_reopened", "order", idStr(o.ID), "excluded", l.Provider.String(), "bid_close_height", strconv.FormatInt(o.BidCloseHeight, 10))
		if o.MemberOf != 0 {
			memberReopened(ctx, o, l)
		}
	} else {
		closeOrder(ctx, o, reason)
	}
	closed := *l
	fire(ctx, func(h Hooks) { h.LeaseClosed(ctx, closed, r) })
}

// settle pays one block of lease l from its escrow and runs the PaymentMade hooks.
func settle(ctx *types.Context, p Params, o *Order, l *Lease) escrow.Payment {
	if lp, ok := modeOf(o).(leasePricer); ok && lp.reprice(ctx, p, l) {
		setLease(ctx, l)
	}
	pay := escrow.SettleAt(ctx, l.ID, l.Provider, l.Price, feeBps(ctx, p, o.Mode))
	if pay.Gross > 0 {
		lease := *l
		fire(ctx, func(h Hooks) { h.PaymentMade(ctx, lease, pay) })
	}
	return pay
}

// feeBps is the protocol fee of pricing mode mode: the market's fee_bps for it, or
// escrow's protocol_fee_bps.
func feeBps(ctx *types.Context, p Params, mode string) uint32 {
	if mode == "" {
		mode = ModeAuction
	}
	if f, ok := p.FeeBps[mode]; ok {
		return f
	}
	return escrow.GetParams(ctx).ProtocolFeeBps
}

// billable reports whether lease l owes block h: its workload started in an earlier
// block.
func billable(l *Lease, h int64) bool { return l.StartedHeight != 0 && h > l.StartedHeight }

// closeOrder closes an order that has no active lease: it releases its bids and
// refunds its escrow.
func closeOrder(ctx *types.Context, o *Order, reason string) {
	if c, ok := modeOf(o).(closer); ok {
		c.orderClosed(ctx, o)
	}
	releaseBids(ctx, o.ID, nil, bidOrderEnded)
	refund := escrow.Close(ctx, o.ID)
	o.State = OrderClosed
	o.CloseReason = reason
	o.ClosedHeight = ctx.Height
	ctx.Store.Delete(u64key(openPrefix, o.ID))
	schedule(ctx, o, 0)
	setOrder(ctx, o)
	ctx.Emit("order_closed", "order", idStr(o.ID), "reason", reason, "refund", types.NewCoin(o.Denom, refund).String())
	if o.MemberOf != 0 {
		memberClosed(ctx, o, reason)
	}
}

// EndBlock settles every active lease for this block (closing those whose provider
// went silent or whose escrow ran dry) and then handles the orders due this block:
// window closes, where the best fitting bid becomes a lease, and expiries.
func EndBlock(ctx *types.Context) {
	p := GetParams(ctx)
	endReclaims(ctx, p)
	pruneMade(ctx)
	var active []uint64
	ctx.Store.Iterate(activePrefix, func(k, _ []byte) bool {
		active = append(active, binary.BigEndian.Uint64(k[len(activePrefix):]))
		return true
	})
	for _, id := range active {
		if _, still := ctx.Store.Get(u64key(activePrefix, id)); !still {
			continue // NB: a hook closed it earlier in this loop
		}
		o, l, err := activeLease(ctx, id)
		if err != nil {
			panic(fmt.Sprintf("market: active index names lease %d: %v", id, err))
		}
		if l.CreatedHeight == ctx.Height {
			continue // NB: nothing is due in the block the lease is made
		}
		if !registry.Exists(ctx, l.Provider) {
			closeLease(ctx, p, &o, &l, ReasonProviderDeregistered, "")
			continue
		}
		if ctx.Height-l.LastHeartbeat > p.HeartbeatTimeoutBlocks {
			closeLease(ctx, p, &o, &l, ReasonProviderUnresponsive, "")
			continue
		}
		if l.StartedHeight == 0 {
			if ctx.Height-l.CreatedHeight >= p.StartTimeoutBlocks {
				closeLease(ctx, p, &o, &l, ReasonStartTimeout, "")
			}
			continue // NB: a lease bills only once its workload runs
		}
		if !billable(&l, ctx.Height) {
			continue
		}
		pay := settle(ctx, p, &o, &l)
		if _, still := ctx.Store.Get(u64key(activePrefix, id)); !still {
			continue // NB: a PaymentMade hook closed it
		}
		switch {
		case pay.Exhausted:
			closeLease(ctx, p, &o, &l, ReasonEscrowExhausted, "")
		case o.Session != nil && uint64(ctx.Height-l.StartedHeight) >= o.Session.Blocks:
			closeLease(ctx, p, &o, &l, ReasonSessionEnded, "")
		}
	}

	var due []uint64
	var dueKeys [][]byte
	ctx.Store.Iterate(queuePrefix, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(queuePrefix):])) > ctx.Height {
			return false
		}
		due = append(due, binary.BigEndian.Uint64(k[len(queuePrefix)+8:]))
		dueKeys = append(dueKeys, bytes.Clone(k))
		return true
	})
	for i, id := range due {
		ctx.Store.Delete(dueKeys[i])
		o, ok := GetOrder(ctx, id)
		if !ok || o.State != OrderOpen {
			panic(fmt.Sprintf("market: queue names order %d which is not open", id))
		}
		o.NextCheck = 0 // its queue entry is gone
		modeOf(&o).Check(ctx, p, &o)
	}
	stakeRewards(ctx, p)
}

// rank orders bids best first: lowest price, then higher provider stake, then earlier.
func rank(ctx *types.Context, bids []Bid) {
	stake := map[types.Address]uint64{}
	for _, b := range bids {
		stake[b.Provider] = staking.Bonded(ctx, registry.BondPurpose, b.Provider)
	}
	sort.Slice(bids, func(i, j int) bool {
		a, b := bids[i], bids[j]
		if a.Price != b.Price {
			return a.Price < b.Price
		}
		if stake[a.Provider] != stake[b.Provider] {
			return stake[a.Provider] > stake[b.Provider]
		}
		return a.Seq < b.Seq
	})
}
