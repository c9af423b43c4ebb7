package liveness

import (
	"fmt"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Wire registers the module with the market (its close reason, lease hooks and the
// hardware-proof bid check) and the registry (hardware challenges on registration).
func Wire(h *types.Hooks) {
	// NB: the provider is at fault: its held pay goes back to the tenant at once, and
	// an auto_redeploy order re-opens for other providers, as for a dead provider.
	market.RegisterReason(h, market.Reason{Name: ReasonLivenessFailed, Redeploy: true, RefundHeld: true})
	market.RegisterHooks(h, ModuleName, leaseHooks{})
	market.RegisterProviderCheck(h, ModuleName, CheckProvider)
	registry.RegisterInventoryHook(h, ModuleName, inventorySet)
}

type leaseHooks struct{ market.BaseHooks }

// LeaseStarted schedules the lease's first liveness challenge.
func (leaseHooks) LeaseStarted(ctx *types.Context, l market.Lease) {
	scheduleLease(ctx, GetParams(ctx), l.ID, leaseRecord{Provider: l.Provider, Attempt: l.Attempt})
}

// LeaseClosed drops the lease's schedule. A challenge still open stays open: the
// provider was challenged while the lease ran, and failing it still slashes.
func (leaseHooks) LeaseClosed(ctx *types.Context, l market.Lease, _ market.Reason) {
	r, ok := getLeaseRecord(ctx, l.ID)
	if !ok || r.Attempt != l.Attempt {
		return
	}
	if r.Next != 0 {
		ctx.Store.Delete(cat(leaseSchedPfx, heightKey(r.Next), u64(l.ID)))
	}
	ctx.Store.Delete(cat(leasePfx, u64(l.ID)))
}

// inventorySet issues a hardware challenge per claimed model when a provider registers
// or changes its inventory (and drops the schedules of models it no longer claims).
func inventorySet(ctx *types.Context, prov registry.Provider, _ bool) {
	p := GetParams(ctx)
	if !p.HardwareAtRegistration || ctx.CheckTx {
		// NB: CheckTx's view is thrown away, and its randomness is the last block's.
		return
	}
	for _, m := range models(prov.Inventory) {
		scheduleHardware(ctx, p, prov.Owner, m, 0)
		issue(ctx, p, KindHardware, prov.Owner, 0, 0, m)
	}
}

// CheckProvider is the market's hardware_proof constraint: a group that needs GPUs
// fails on a provider whose every matching GPU model is flagged, and a group without
// GPUs fails on a CPU-only provider whose CPU is flagged.
func CheckProvider(ctx *types.Context, o market.Order, prov registry.Provider) []market.Failure {
	groups := o.Groups
	flagged := map[string]Score{}
	for _, s := range ScoresOf(ctx, prov.Owner) {
		if s.Flagged {
			flagged[s.Model] = s
		}
	}
	if len(flagged) == 0 {
		return nil
	}
	var out []market.Failure
	for _, g := range groups {
		if g.GPU.Units == 0 {
			if s, ok := flagged[cpuModel]; ok && len(prov.Inventory.GPUs) == 0 {
				out = append(out, flagFailure(g.Name, s))
			}
			continue
		}
		var bad *Score
		ok := false
		for _, inv := range prov.Inventory.GPUs {
			if !matches(g.GPU, inv) {
				continue
			}
			if s, f := flagged[inv.Model]; f {
				bad = &s
			} else {
				ok = true
			}
		}
		if !ok && bad != nil {
			out = append(out, flagFailure(g.Name, *bad))
		}
	}
	return out
}

func flagFailure(group string, s Score) market.Failure {
	return market.Failure{Constraint: "hardware_proof", Group: group,
		Detail: fmt.Sprintf("the provider's %s failed its hardware proof at height %d (%s); a later passing challenge clears it", s.Model, s.FlagHeight, s.FlagReason)}
}

func matches(req market.GPURequest, g registry.GPU) bool {
	return req.Accepts(market.GPUSpec{Model: g.Model, MemoryBytes: g.MemoryBytes, Interface: g.Interface})
}
