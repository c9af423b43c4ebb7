package registry

import "github.com/kiln-network/kiln/types"

const hooksTable = ModuleName + "/hooks"

// ChangeHook is told that provider owner registered, changed its record (inventory,
// endpoint, stake) or deregistered, after the registry's own writes and inside the same
// transaction. It MUST be deterministic and cannot refuse (the market keeps its index
// of free capacity with one).
type ChangeHook func(ctx *types.Context, owner types.Address)

type hookTable struct{ hooks []ChangeHook }

// OnProviderChange adds f to the hooks the registry calls when a provider changes.
// Hooks run in the order they were added, which the app's wiring declares; it panics
// once h is sealed.
func OnProviderChange(h *types.Hooks, f ChangeHook) {
	h.MustBeOpen("registry change hook")
	t := h.Table(hooksTable, func() any { return &hookTable{} }).(*hookTable)
	t.hooks = append(t.hooks, f)
}

func changed(ctx *types.Context, owner types.Address) {
	t, ok := ctx.Hooks.Lookup(hooksTable)
	if !ok {
		return
	}
	for _, f := range t.(*hookTable).hooks {
		f(ctx, owner)
	}
}
