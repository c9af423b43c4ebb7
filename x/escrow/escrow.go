// Package escrow holds each order's deposit and pays leases from it block by block.
//
// Contracts:
//
//   - Every order has exactly one escrow account, keyed by order ID, opened with the
//     order's deposit. Funds sit in the Escrow module account; the per-order records
//     say whose they are.
//   - Invariant: for every denom, the Escrow module account's balance MUST equal the
//     sum of the balances of all escrow accounts (closed accounts hold zero) plus the
//     pay held back from providers (Held). For every account, Deposited MUST equal
//     Balance + Paid + Fees + Refunded + Held + ClawedBack + SplitOut. CheckInvariants verifies
//     both; a mismatch is a broken node, not a user error.
//   - Pay NEVER pays more than the account holds: a short account pays what is left and
//     reports it exhausted. The protocol fee goes to the community pool, the rest to
//     the provider. Each payment owes protocol_fee_bps of itself (the rate in force
//     when it is paid). An account's Fees are always the exact sum of what its
//     payments owe, rounded up once: the fraction of a base unit taken ahead is kept
//     in FeeCredit and counts toward later payments. So no lease escapes the fee by
//     being cheap or short, and none pays more than one base unit over the rate.
//   - Held-back pay: holdback_bps of each payment's provider share (after the fee;
//     exact over the lease, rounded down once) is held in the module account, per
//     order and provider (a provider runs at most one lease of an order: the market
//     never re-leases an order to a provider that left it), until the lease's dispute
//     window closes: dispute_window_blocks after the lease closes (OpenDisputeWindow),
//     at the end of that height, EndBlock releases it to the provider. Until then the
//     verify module may ClawBack part or all of it (to the tenant, or to the community
//     pool as a slash). With the defaults (holdback_bps 0, dispute_window_blocks 0)
//     nothing is held and every payment reaches the provider at once.
//   - Close refunds whatever is left to the owner in the same block, and a closed
//     account NEVER takes deposits or pays again; pay it holds back stays held until
//     released or clawed back.
package escrow

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"math/bits"
	"slices"
	"strconv"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

// ModuleName is escrow's name in params and state.
const ModuleName = "escrow"

// Account is the module account holding every order's escrowed funds.
var Account = types.ModuleAddress("escrow")

var acctPrefix = []byte("escrow/acct/")

// Params are escrow's on-chain parameters.
type Params struct {
	// ProtocolFeeBps is the share of every lease payment sent to the community pool, in
	// basis points.
	ProtocolFeeBps uint32 `json:"protocol_fee_bps"`
	// HoldbackBps is the share of each payment's provider part (after the fee) held
	// back until the lease's dispute window closes, in basis points. Needs a dispute
	// window.
	HoldbackBps uint32 `json:"holdback_bps"`
	// DisputeWindowBlocks is how long after a lease closes it can still be disputed:
	// its held-back pay is released, and its provider's bond unlocked, at the end of
	// close height + this. 0: no window, nothing held.
	DisputeWindowBlocks int64 `json:"dispute_window_blocks,string"`
}

// DefaultParams: a 0.5% protocol fee, at the low end of the field (0.5–20%); 20% of
// each payment's provider share held back until 100 blocks after the lease closes: the
// dispute window, long enough for the verify module to sample the lease's committed
// work, hear its verifier (verdict_blocks 20) and a committee (vote_blocks 20), so a
// proven cheat's tenant gets that pay back at once (verify keeps it held longer while
// a check is still pending).
func DefaultParams() Params {
	return Params{ProtocolFeeBps: 50, HoldbackBps: 2000, DisputeWindowBlocks: 100}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case p.ProtocolFeeBps > 10000:
		return fmt.Errorf("protocol_fee_bps: must be <= 10000 (got %d)", p.ProtocolFeeBps)
	case p.HoldbackBps > 10000:
		return fmt.Errorf("holdback_bps: must be <= 10000 (got %d)", p.HoldbackBps)
	case p.DisputeWindowBlocks < 0 || p.DisputeWindowBlocks > 1_000_000:
		return fmt.Errorf("dispute_window_blocks: must be 0 to 1000000 (got %d)", p.DisputeWindowBlocks)
	case p.HoldbackBps > 0 && p.DisputeWindowBlocks == 0:
		return fmt.Errorf("holdback_bps: %d needs dispute_window_blocks > 0 (held pay is released when the window closes)", p.HoldbackBps)
	}
	return nil
}

// GetParams returns escrow's parameters.
func GetParams(ctx *types.Context) Params {
	var p Params
	params.Get(ctx, ModuleName, &p)
	return p
}

// Account states.
const (
	StateOpen   = "open"
	StateClosed = "closed"
)

// EscrowAccount is one order's escrow. All amounts are in Denom.
type EscrowAccount struct {
	OrderID   uint64        `json:"order_id,string"`
	Owner     types.Address `json:"owner"`
	Denom     string        `json:"denom"`
	State     string        `json:"state"`
	Balance   uint64        `json:"balance,string"`
	Deposited uint64        `json:"deposited,string"` // everything ever put in
	Paid      uint64        `json:"paid,string"`      // to providers, net of fees
	Fees      uint64        `json:"fees,string"`      // to the community pool
	Refunded  uint64        `json:"refunded,string"`  // back to the owner on close
	// Held is provider pay held back now, waiting for its lease's dispute window to
	// close; Released is what was held and then paid; ClawedBack is what was held and
	// then taken back (to the tenant or as a slash). Paid includes Released.
	Held       uint64 `json:"held,string"`
	Released   uint64 `json:"released,string"`
	ClawedBack uint64 `json:"clawed_back,string"`
	// SplitOut is what Split moved from this account into the accounts of orders split
	// off it (a partly filled order's parts); those count it in their Deposited.
	SplitOut uint64 `json:"split_out,string,omitempty"`
	// FeeCredit is protocol fee taken ahead of what the payments owe, in 1/10000
	// units (below 10000): the rounding up, credited to later payments.
	FeeCredit uint64 `json:"fee_credit,string"`
	// SettledHeight is the last height a payment was made.
	SettledHeight int64 `json:"settled_height,string"`
	CreatedHeight int64 `json:"created_height,string"`
	UpdatedHeight int64 `json:"updated_height,string"`
	ClosedHeight  int64 `json:"closed_height,string,omitempty"`
}

func key(id uint64) []byte {
	k := append([]byte{}, acctPrefix...)
	return binary.BigEndian.AppendUint64(k, id)
}

// Get returns the escrow account of order id.
func Get(ctx *types.Context, id uint64) (EscrowAccount, bool) {
	v, ok := ctx.Store.Get(key(id))
	if !ok {
		return EscrowAccount{}, false
	}
	var a EscrowAccount
	if err := json.Unmarshal(v, &a); err != nil {
		panic(fmt.Sprintf("escrow: corrupt account %d: %v", id, err))
	}
	return a, true
}

func set(ctx *types.Context, a EscrowAccount) {
	a.UpdatedHeight = ctx.Height
	b, _ := json.Marshal(a)
	ctx.Store.Set(key(a.OrderID), b)
}

// Open moves deposit from owner into a new escrow account for order id. It refuses
// with ErrInsufficientFunds if owner cannot pay and with ErrAlreadyExists if the order
// already has an account.
func Open(ctx *types.Context, id uint64, owner types.Address, deposit types.Coin) error {
	if _, exists := Get(ctx, id); exists {
		return types.Wrapf(types.ErrAlreadyExists, "escrow account for order %d", id)
	}
	if err := bank.Send(ctx, owner, Account, deposit); err != nil {
		return err
	}
	set(ctx, EscrowAccount{OrderID: id, Owner: owner, Denom: deposit.Denom, State: StateOpen,
		Balance: deposit.Amount, Deposited: deposit.Amount, CreatedHeight: ctx.Height})
	ctx.Emit("escrow_opened", "order", strconv.FormatUint(id, 10), "owner", owner.String(), "amount", deposit.String())
	return nil
}

// Deposit tops up order id's escrow from its owner.
func Deposit(ctx *types.Context, id uint64, from types.Address, amt types.Coin) error {
	a, ok := Get(ctx, id)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "escrow account for order %d", id)
	}
	if a.Owner != from {
		return types.Wrapf(types.ErrUnauthorized, "escrow of order %d belongs to %s, not %s", id, a.Owner, from)
	}
	if a.State != StateOpen {
		return types.Wrapf(types.ErrOrderClosed, "escrow of order %d closed at height %d", id, a.ClosedHeight)
	}
	if amt.Denom != a.Denom {
		return types.InvalidField("amount.denom", amt.Denom, "must be the escrow's denom "+a.Denom)
	}
	nb, ok1 := types.AddUint64(a.Balance, amt.Amount)
	nd, ok2 := types.AddUint64(a.Deposited, amt.Amount)
	if !ok1 || !ok2 {
		return types.InvalidField("amount", amt, "overflows the escrow balance")
	}
	if err := bank.Send(ctx, from, Account, amt); err != nil {
		return err
	}
	a.Balance, a.Deposited = nb, nd
	set(ctx, a)
	ctx.Emit("escrow_deposit", "order", strconv.FormatUint(id, 10), "amount", amt.String(), "balance", strconv.FormatUint(a.Balance, 10))
	return nil
}

// Pay pays amount for one block of order id's lease to provider: Settle, reporting
// only the gross amount paid and whether the account ran dry.
func Pay(ctx *types.Context, id uint64, provider types.Address, amount uint64) (paid uint64, exhausted bool) {
	r := Settle(ctx, id, provider, amount)
	return r.Gross, r.Exhausted
}

// Payment is one settlement of a lease from its escrow.
type Payment struct {
	OrderID  uint64        `json:"order_id,string"`
	Provider types.Address `json:"provider"`
	Denom    string        `json:"denom"`
	// Gross is what left the escrow balance: Fee + Held + ToProvider.
	Gross      uint64 `json:"gross,string"`
	Fee        uint64 `json:"fee,string"`
	Held       uint64 `json:"held,string"`
	ToProvider uint64 `json:"to_provider,string"`
	// Exhausted is true when the account held less than was asked.
	Exhausted bool `json:"exhausted"`
}

// Settle pays amount for one block of order id's lease to provider, less the protocol
// fee and less the held-back share, and returns the split. If the account holds less
// than amount it pays what is left and reports it exhausted. It panics on a missing or
// closed account, or on a provider whose dispute window is already open: the market
// settles only active leases.
func Settle(ctx *types.Context, id uint64, provider types.Address, amount uint64) Payment {
	return SettleAt(ctx, id, provider, amount, GetParams(ctx).ProtocolFeeBps)
}

// SettleAt is Settle at protocol fee feeBps (<= 10000) instead of protocol_fee_bps:
// for a market whose pricing modes each set their own fee.
func SettleAt(ctx *types.Context, id uint64, provider types.Address, amount uint64, feeBps uint32) Payment {
	if feeBps > 10000 {
		panic(fmt.Sprintf("escrow: fee of %d bps is above 100%%", feeBps))
	}
	a, ok := Get(ctx, id)
	if !ok || a.State != StateOpen {
		panic(fmt.Sprintf("escrow: pay from missing or closed account of order %d", id))
	}
	r := Payment{OrderID: id, Provider: provider, Denom: a.Denom, Gross: amount}
	if a.Balance < amount {
		r.Gross, r.Exhausted = a.Balance, true
	}
	if r.Gross > 0 {
		p := GetParams(ctx)
		// NB: rounding each payment instead took up to one unit per block: at 112
		// ukiln/block, 0.9% for a 0.5% rate, and a 1 ukiln/block lease paid its
		// provider nothing.
		r.Fee, a.FeeCredit = feeOf(r.Gross, feeBps, a.FeeCredit)
		net := r.Gross - r.Fee
		if p.HoldbackBps > 0 {
			r.Held = hold(ctx, &a, provider, net, p.HoldbackBps)
		}
		r.ToProvider = net - r.Held
		mustSend(ctx, bank.CommunityPool, types.NewCoin(a.Denom, r.Fee))
		mustSend(ctx, provider, types.NewCoin(a.Denom, r.ToProvider))
		auth.Ensure(ctx, provider)
		a.Balance -= r.Gross
		a.Paid += r.ToProvider
		a.Fees += r.Fee
		a.Held += r.Held
	}
	a.SettledHeight = ctx.Height
	set(ctx, a)
	return r
}

// Split moves amount of order from's escrow balance into a new escrow account for
// order to, with the same owner and denom: an order split into parts funds each part
// from its own deposit. No coin moves (both sit in the module account). It refuses
// with ErrNotFound for a missing account, ErrOrderClosed for a closed one,
// ErrAlreadyExists if to has an account and ErrInsufficientFunds if from holds less
// than amount, changing nothing.
func Split(ctx *types.Context, from, to uint64, amount uint64) error {
	a, ok := Get(ctx, from)
	switch {
	case !ok:
		return types.Wrapf(types.ErrNotFound, "escrow account for order %d", from)
	case a.State != StateOpen:
		return types.Wrapf(types.ErrOrderClosed, "escrow of order %d closed at height %d", from, a.ClosedHeight)
	case a.Balance < amount:
		return types.Wrapf(types.ErrInsufficientFunds, "escrow of order %d holds %d%s, cannot split off %d", from, a.Balance, a.Denom, amount)
	}
	if _, exists := Get(ctx, to); exists {
		return types.Wrapf(types.ErrAlreadyExists, "escrow account for order %d", to)
	}
	a.Balance -= amount
	a.SplitOut += amount
	set(ctx, a)
	set(ctx, EscrowAccount{OrderID: to, Owner: a.Owner, Denom: a.Denom, State: StateOpen, Balance: amount, Deposited: amount, CreatedHeight: ctx.Height})
	ctx.Emit("escrow_split", "order", strconv.FormatUint(from, 10), "to", strconv.FormatUint(to, 10), "amount", types.NewCoin(a.Denom, amount).String())
	return nil
}

// feeOf returns the fee on a payment of paid at bps basis points, given credit
// (1/10000 units, below 10000) taken ahead by earlier payments, and the credit
// after it: the payment's exact fee less the credit, rounded up. The fee never
// exceeds paid, as bps <= 10000.
func feeOf(paid uint64, bps uint32, credit uint64) (fee, left uint64) {
	hi, lo := bits.Mul64(paid, uint64(bps))
	if hi == 0 && lo <= credit {
		return 0, credit - lo
	}
	lo, borrow := bits.Sub64(lo, credit, 0)
	hi -= borrow
	fee, rem := bits.Div64(hi, lo, 10000)
	if rem == 0 {
		return fee, 0
	}
	return fee + 1, 10000 - rem
}

func mustSend(ctx *types.Context, to types.Address, c types.Coin) {
	if c.Amount == 0 {
		return
	}
	if err := bank.Send(ctx, Account, to, c); err != nil {
		// NB: the invariant says the module account holds every open balance.
		panic(fmt.Sprintf("escrow: module account cannot pay %s: %v", c, err))
	}
}

// Close refunds what is left to the owner and closes the account. It returns the
// refund. Closing a closed account is a no-op returning 0.
func Close(ctx *types.Context, id uint64) uint64 {
	a, ok := Get(ctx, id)
	if !ok || a.State != StateOpen {
		return 0
	}
	refund := a.Balance
	mustSend(ctx, a.Owner, types.NewCoin(a.Denom, refund))
	a.Refunded += refund
	a.Balance = 0
	a.State = StateClosed
	a.ClosedHeight = ctx.Height
	set(ctx, a)
	ctx.Emit("escrow_closed", "order", strconv.FormatUint(id, 10), "refund", types.NewCoin(a.Denom, refund).String(),
		"paid", strconv.FormatUint(a.Paid, 10), "fees", strconv.FormatUint(a.Fees, 10))
	return refund
}

// List returns every escrow account in order-ID order.
func List(ctx *types.Context) []EscrowAccount {
	var out []EscrowAccount
	ctx.Store.Iterate(acctPrefix, func(_, v []byte) bool {
		var a EscrowAccount
		if err := json.Unmarshal(v, &a); err != nil {
			panic(err)
		}
		out = append(out, a)
		return true
	})
	return out
}

// Owed returns what the escrow accounts hold in all, per denom, balances and held-back
// pay together: what the Escrow module account must hold. O(accounts).
func Owed(ctx *types.Context) types.Coins {
	sums := map[string]uint64{}
	for _, a := range List(ctx) {
		for _, v := range []uint64{a.Balance, a.Held} {
			s, ok := types.AddUint64(sums[a.Denom], v)
			if !ok {
				// NB: the balances came out of the supply, which fits in 64 bits.
				panic(fmt.Sprintf("escrow: balances of %s overflow: corrupt records", a.Denom))
			}
			sums[a.Denom] = s
		}
	}
	return types.SortedCoins(sums)
}

// CheckInvariants returns an error unless the module account's balance of every denom
// equals the sum of the escrow accounts' balances and held pay, every account's
// deposits are accounted for (Deposited = Balance + Paid + Fees + Refunded + Held +
// ClawedBack), every account's Held is the sum of its holds, and the release queue
// names exactly the holds in their dispute window. O(accounts + holds): for tests and
// audits.
func CheckInvariants(ctx *types.Context) error {
	sums := map[string]uint64{}
	add := func(denom string, v uint64) error {
		s, ok := types.AddUint64(sums[denom], v)
		if !ok {
			return fmt.Errorf("escrow: balances of %s overflow", denom)
		}
		sums[denom] = s
		return nil
	}
	held := map[uint64]uint64{}
	windows := 0
	for _, h := range Holds(ctx, 0) {
		held[h.OrderID] += h.Amount
		if h.Total != h.Amount+h.Released+h.ClawedBack {
			return fmt.Errorf("escrow: hold of order %d, provider %s: total %d != held %d + released %d + clawed back %d", h.OrderID, h.Provider, h.Total, h.Amount, h.Released, h.ClawedBack)
		}
		_, queued := ctx.Store.Get(releaseKey(h.ReleaseHeight, h.OrderID, h.Provider))
		if queued != (h.State == HoldWindow) || h.State == HoldReleased && h.Amount != 0 {
			return fmt.Errorf("escrow: hold of order %d, provider %s in state %s holds %d, release queued %v", h.OrderID, h.Provider, h.State, h.Amount, queued)
		}
		if h.State == HoldWindow {
			windows++
		}
	}
	queued := 0
	ctx.Store.Iterate(releasePrefix, func(_, _ []byte) bool { queued++; return true })
	if queued != windows {
		return fmt.Errorf("escrow: release queue holds %d entries, %d holds are in their window", queued, windows)
	}
	for _, a := range List(ctx) {
		if a.State == StateClosed && a.Balance != 0 {
			return fmt.Errorf("escrow: closed account of order %d holds %d%s", a.OrderID, a.Balance, a.Denom)
		}
		if a.Held != held[a.OrderID] {
			return fmt.Errorf("escrow: account of order %d says %d held, its holds add up to %d", a.OrderID, a.Held, held[a.OrderID])
		}
		out := new(big.Int)
		for _, v := range []uint64{a.Balance, a.Paid, a.Fees, a.Refunded, a.Held, a.ClawedBack, a.SplitOut} {
			out.Add(out, new(big.Int).SetUint64(v))
		}
		if out.Cmp(new(big.Int).SetUint64(a.Deposited)) != 0 {
			return fmt.Errorf("escrow: account of order %d: deposited %d, but balance %d + paid %d + fees %d + refunded %d + held %d + clawed back %d + split out %d = %s",
				a.OrderID, a.Deposited, a.Balance, a.Paid, a.Fees, a.Refunded, a.Held, a.ClawedBack, a.SplitOut, out)
		}
		if err := add(a.Denom, a.Balance); err != nil {
			return err
		}
		if err := add(a.Denom, a.Held); err != nil {
			return err
		}
	}
	for _, c := range bank.Balances(ctx, Account) {
		if sums[c.Denom] != c.Amount {
			return fmt.Errorf("escrow: module account holds %s but accounts and held pay add up to %d", c, sums[c.Denom])
		}
		delete(sums, c.Denom)
	}
	// NB: sorted, so every node reports the same denom first.
	for _, d := range slices.Sorted(maps.Keys(sums)) {
		if sums[d] != 0 {
			return fmt.Errorf("escrow: accounts hold %d%s the module account does not have", sums[d], d)
		}
	}
	return nil
}

// MsgDeposit tops up an order's escrow. Only the order's owner may deposit.
type MsgDeposit struct {
	Owner   types.Address `json:"owner"`
	OrderID uint64        `json:"order_id,string"`
	Amount  types.Coin    `json:"amount"`
}

// Type implements types.Msg.
func (m *MsgDeposit) Type() types.MsgType { return types.MsgTypeEscrowDeposit }

// Signer implements types.Msg.
func (m *MsgDeposit) Signer() types.Address { return m.Owner }

// ValidateBasic implements types.Msg.
func (m *MsgDeposit) ValidateBasic() error {
	if m.OrderID == 0 {
		return types.InvalidField("order_id", 0, "must be > 0")
	}
	if err := m.Amount.Validate(); err != nil {
		return types.InvalidField("amount", m.Amount, err.Error())
	}
	return nil
}

// MarshalTo implements types.Msg.
func (m *MsgDeposit) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Owner[:])
	w.Uvarint(m.OrderID)
	w.String(m.Amount.Denom)
	w.Uvarint(m.Amount.Amount)
}

// DecodeDeposit decodes a MsgDeposit body.
func DecodeDeposit(r *codec.Reader) types.Msg {
	return &MsgDeposit{Owner: bank.ReadAddress(r), OrderID: r.Uvarint(), Amount: types.Coin{Denom: r.String(128), Amount: r.Uvarint()}}
}

// Handle executes an escrow message.
func Handle(ctx *types.Context, msg types.Msg) error {
	switch m := msg.(type) {
	case *MsgDeposit:
		return Deposit(ctx, m.OrderID, m.Owner, m.Amount)
	}
	return types.Wrapf(types.ErrUnknownMsgType, "escrow cannot handle %T", msg)
}
