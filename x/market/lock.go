package market

import (
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// windowPrefix: provider → the disputeWindow of its lease that closed last, written
// only when escrow's dispute_window_blocks is above 0.
var windowPrefix = []byte("market/window/")

// disputeWindow is the dispute window of a provider's last closed lease: open through
// the end of height End.
type disputeWindow struct {
	LeaseID      uint64 `json:"lease_id,string"`
	Attempt      uint32 `json:"attempt"`
	ClosedHeight int64  `json:"closed_height,string"`
	End          int64  `json:"end,string"`
}

// Wire registers what the market adds to other modules at app start: the guard that
// locks a provider's bond while its leases may still be disputed, and the registry
// change hook that keeps the free-capacity index (index.go) current.
func Wire(h *types.Hooks) {
	staking.RegisterUnbondGuard(h, registry.BondPurpose, ModuleName, providerBondGuard)
	registry.OnProviderChange(h, reindex)
}

// providerBondGuard refuses to let a provider's bond fall below min_provider_stake (or
// leave entirely) while it has an active lease, or a closed lease whose dispute window
// is open: the stake a verdict would slash must still be there.
func providerBondGuard(ctx *types.Context, owner types.Address, remaining uint64) error {
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	if remaining > 0 && remaining >= rp.MinProviderStake {
		return nil
	}
	window := escrow.GetParams(ctx).DisputeWindowBlocks
	if l, ok := activeLeaseOf(ctx, owner); ok {
		return types.Wrapf(types.ErrBondLocked, "provider %s runs lease %d (attempt %d); its bond cannot fall below min_provider_stake %d until that lease closes and its dispute window of %d blocks ends",
			owner, l.ID, l.Attempt, rp.MinProviderStake, window)
	}
	var w disputeWindow
	if getJSON(ctx, append(append([]byte{}, windowPrefix...), owner[:]...), &w) && w.End >= ctx.Height {
		return types.Wrapf(types.ErrBondLocked, "provider %s's lease %d (attempt %d) closed at height %d and may be disputed until height %d; its bond cannot fall below min_provider_stake %d before height %d",
			owner, w.LeaseID, w.Attempt, w.ClosedHeight, w.End, rp.MinProviderStake, w.End+1)
	}
	return nil
}

// activeLeaseOf returns an active lease of provider p (the lowest ID), if any. It walks
// the active index only when p's usage record says it has one.
func activeLeaseOf(ctx *types.Context, p types.Address) (Lease, bool) {
	if Used(ctx, p).IsZero() {
		return Lease{}, false
	}
	if ls := Leases(ctx, LeaseFilter{State: LeaseActive, Provider: p}); len(ls) > 0 {
		return ls[0], true
	}
	return Lease{}, false
}

// noteWindow records the dispute window that lease l's close opened, ending at end,
// when there is one.
func noteWindow(ctx *types.Context, l *Lease, end int64) {
	if end <= ctx.Height {
		return
	}
	setJSON(ctx, append(append([]byte{}, windowPrefix...), l.Provider[:]...),
		disputeWindow{LeaseID: l.ID, Attempt: l.Attempt, ClosedHeight: ctx.Height, End: end})
}
