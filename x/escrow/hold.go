package escrow

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
)

var (
	holdPrefix    = []byte("escrow/hold/")    // order id|provider → Hold
	releasePrefix = []byte("escrow/release/") // height|order id|provider → {}: release at the end of height
)

// Hold states.
const (
	HoldRunning  = "running"  // the lease runs; its payments add to the hold
	HoldWindow   = "window"   // the lease closed; its dispute window is open
	HoldReleased = "released" // the window closed; what was left went to the provider
)

// Hold is the pay held back from one provider on one order's lease.
type Hold struct {
	OrderID  uint64        `json:"order_id,string"`
	Provider types.Address `json:"provider"`
	Denom    string        `json:"denom"`
	State    string        `json:"state"`
	// Amount is held now; Total was ever held; Released went to the provider when the
	// window closed; ClawedBack was taken back while it was open.
	Amount     uint64 `json:"amount,string"`
	Total      uint64 `json:"total,string"`
	Released   uint64 `json:"released,string"`
	ClawedBack uint64 `json:"clawed_back,string"`
	// Rem is holdback owed below one base unit, in 1/10000 units (below 10000),
	// carried to the next payment: the lease's holds add up to the exact share,
	// rounded down once.
	Rem uint64 `json:"rem,string"`
	// ReleaseHeight is the height at whose end the hold is released: 0 while the lease
	// runs.
	ReleaseHeight int64 `json:"release_height,string,omitempty"`
	// KeepUntil: verification of the running lease is pending until this height
	// (KeepHeld); its window, when it closes, ends no earlier.
	KeepUntil     int64 `json:"keep_until,string,omitempty"`
	CreatedHeight int64 `json:"created_height,string"`
	UpdatedHeight int64 `json:"updated_height,string"`
}

func holdKey(id uint64, provider types.Address) []byte {
	return append(binary.BigEndian.AppendUint64(append([]byte{}, holdPrefix...), id), provider[:]...)
}

func releaseKey(h int64, id uint64, provider types.Address) []byte {
	k := binary.BigEndian.AppendUint64(append([]byte{}, releasePrefix...), uint64(h))
	return append(binary.BigEndian.AppendUint64(k, id), provider[:]...)
}

// GetHold returns the pay held back from provider on order id's lease.
func GetHold(ctx *types.Context, id uint64, provider types.Address) (Hold, bool) {
	v, ok := ctx.Store.Get(holdKey(id, provider))
	if !ok {
		return Hold{}, false
	}
	var h Hold
	if err := json.Unmarshal(v, &h); err != nil {
		panic(fmt.Sprintf("escrow: corrupt hold of order %d, provider %s: %v", id, provider, err))
	}
	return h, true
}

func setHold(ctx *types.Context, h Hold) {
	h.UpdatedHeight = ctx.Height
	b, _ := json.Marshal(h)
	ctx.Store.Set(holdKey(h.OrderID, h.Provider), b)
}

// Holds returns the holds of order id (every order if id is 0), by order then provider.
func Holds(ctx *types.Context, id uint64) []Hold {
	prefix := holdPrefix
	if id != 0 {
		prefix = binary.BigEndian.AppendUint64(append([]byte{}, holdPrefix...), id)
	}
	var out []Hold
	ctx.Store.Iterate(prefix, func(_, v []byte) bool {
		var h Hold
		if err := json.Unmarshal(v, &h); err != nil {
			panic(fmt.Sprintf("escrow: corrupt hold: %v", err))
		}
		out = append(out, h)
		return true
	})
	return out
}

// hold adds bps of net to the hold of a's order and provider and returns what it held
// now: the exact share of the lease's payments so far, rounded down, less what earlier
// payments held.
func hold(ctx *types.Context, a *EscrowAccount, provider types.Address, net uint64, bps uint32) uint64 {
	h, ok := GetHold(ctx, a.OrderID, provider)
	if !ok {
		h = Hold{OrderID: a.OrderID, Provider: provider, Denom: a.Denom, State: HoldRunning, CreatedHeight: ctx.Height}
	}
	if h.State != HoldRunning {
		panic(fmt.Sprintf("escrow: payment to %s on order %d after its lease closed (hold %s)", provider, a.OrderID, h.State))
	}
	// NB: net×bps + rem < 10000×2^64, so the high word stays below the divisor.
	hi, lo := bits.Mul64(net, uint64(bps))
	lo, carry := bits.Add64(lo, h.Rem, 0)
	held, rem := bits.Div64(hi+carry, lo, 10000)
	h.Rem = rem
	h.Amount += held
	h.Total += held
	setHold(ctx, h)
	return held
}

// OpenDisputeWindow starts the dispute window of the lease that provider ran on order
// id, which closed in this block: its held pay is released to the provider at the end
// of height + dispute_window_blocks, the height it returns. The market calls it for
// every lease it closes; without a hold it only returns that height.
func OpenDisputeWindow(ctx *types.Context, id uint64, provider types.Address) int64 {
	end := ctx.Height + GetParams(ctx).DisputeWindowBlocks
	h, ok := GetHold(ctx, id, provider)
	if !ok {
		return end
	}
	end = max(end, h.KeepUntil)
	if h.State != HoldRunning {
		panic(fmt.Sprintf("escrow: dispute window of order %d, provider %s opened twice (hold %s)", id, provider, h.State))
	}
	h.State, h.ReleaseHeight = HoldWindow, end
	setHold(ctx, h)
	ctx.Store.Set(releaseKey(end, id, provider), []byte{})
	ctx.Emit("escrow_hold_window", "order", strconv.FormatUint(id, 10), "provider", provider.String(),
		"held", strconv.FormatUint(h.Amount, 10), "release_height", strconv.FormatInt(end, 10))
	return end
}

// ClawBack takes amount of the pay held back from provider on order id's lease and
// sends it to to: the tenant (the escrow's owner) for a refund, or the community pool
// for a slash. The verify module calls it on a verdict while the lease runs or its
// dispute window is open. It refuses, changing nothing, with ErrNotFound when nothing
// was ever held, ErrInvalidRequest once the window closed and the hold was released,
// and ErrInsufficientFunds for more than is held; amount 0 is refused as invalid.
func ClawBack(ctx *types.Context, id uint64, provider types.Address, amount uint64, to types.Address) error {
	h, ok := GetHold(ctx, id, provider)
	switch {
	case !ok:
		return types.Wrapf(types.ErrNotFound, "no pay held back from %s on order %d", provider, id)
	case h.State == HoldReleased:
		return types.Wrapf(types.ErrInvalidRequest, "the dispute window of order %d's lease by %s closed at height %d and its held pay went to the provider", id, provider, h.ReleaseHeight)
	case amount == 0:
		return types.InvalidField("amount", 0, "must be > 0")
	case amount > h.Amount:
		return types.Wrapf(types.ErrInsufficientFunds, "%d%s held back from %s on order %d, cannot claw back %d", h.Amount, h.Denom, provider, id, amount)
	case to.IsZero():
		return types.InvalidField("to", "", "must be an address")
	}
	a, _ := Get(ctx, id)
	mustSend(ctx, to, types.NewCoin(h.Denom, amount))
	auth.Ensure(ctx, to)
	h.Amount -= amount
	h.ClawedBack += amount
	setHold(ctx, h)
	a.Held -= amount
	a.ClawedBack += amount
	set(ctx, a)
	ctx.Emit("escrow_clawed_back", "order", strconv.FormatUint(id, 10), "provider", provider.String(),
		"amount", types.NewCoin(h.Denom, amount).String(), "to", to.String())
	return nil
}

// EndBlock releases to their providers the holds whose dispute window closes at this
// height. Its work is proportional to the holds due, never to history.
func EndBlock(ctx *types.Context) {
	var due [][]byte
	ctx.Store.Iterate(releasePrefix, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(releasePrefix):])) > ctx.Height {
			return false
		}
		due = append(due, bytes.Clone(k))
		return true
	})
	for _, k := range due {
		ctx.Store.Delete(k)
		rest := k[len(releasePrefix)+8:]
		id := binary.BigEndian.Uint64(rest)
		var provider types.Address
		copy(provider[:], rest[8:])
		h, ok := GetHold(ctx, id, provider)
		if !ok || h.State != HoldWindow {
			panic(fmt.Sprintf("escrow: release queue names order %d, provider %s, whose hold is not in its window", id, provider))
		}
		a, _ := Get(ctx, id)
		mustSend(ctx, provider, types.NewCoin(h.Denom, h.Amount))
		auth.Ensure(ctx, provider)
		a.Held -= h.Amount
		a.Released += h.Amount
		a.Paid += h.Amount
		set(ctx, a)
		h.Released += h.Amount
		ctx.Emit("escrow_released", "order", strconv.FormatUint(id, 10), "provider", provider.String(),
			"amount", types.NewCoin(h.Denom, h.Amount).String())
		h.Amount, h.State = 0, HoldReleased
		setHold(ctx, h)
	}
}

// KeepHeld keeps the pay held back from provider on order id's lease until at least
// the end of height until: the verify module calls it while a check or challenge of
// that lease is pending, so that a verdict can still claw it back. A hold in its window
// whose release comes earlier is moved to until; a running lease's hold remembers it,
// and its window, when the lease closes, ends no earlier. It never shortens a window
// and does nothing without a hold or once the hold was released.
func KeepHeld(ctx *types.Context, id uint64, provider types.Address, until int64) {
	h, ok := GetHold(ctx, id, provider)
	if !ok {
		return
	}
	switch h.State {
	case HoldRunning:
		if until > h.KeepUntil {
			h.KeepUntil = until
			setHold(ctx, h)
		}
	case HoldWindow:
		if until > h.ReleaseHeight {
			ctx.Store.Delete(releaseKey(h.ReleaseHeight, id, provider))
			h.ReleaseHeight = until
			ctx.Store.Set(releaseKey(until, id, provider), []byte{})
			setHold(ctx, h)
			ctx.Emit("escrow_hold_kept", "order", strconv.FormatUint(id, 10), "provider", provider.String(),
				"release_height", strconv.FormatInt(until, 10))
		}
	}
}
