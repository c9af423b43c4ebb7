package registry

import (
	"fmt"

	"github.com/kiln-network/kiln/types"
)

// InventoryHook is told that provider p registered (registered true) or changed its
// inventory with MsgUpdateProvider. It runs inside that transaction, after the
// registry's writes, on the same state view (CheckTx included); it cannot refuse, and
// MUST be deterministic. The liveness module issues hardware challenges from it.
type InventoryHook func(ctx *types.Context, p Provider, registered bool)

const hooksTable = ModuleName + "/inventory_hooks"

type namedHook struct {
	name string
	f    InventoryHook
}

type hookList struct{ hooks []namedHook }

// RegisterInventoryHook adds f, named name, to the hooks run when a provider registers
// or changes its inventory, in registration order. It panics if h is sealed or name is
// taken: wiring bugs.
func RegisterInventoryHook(h *types.Hooks, name string, f InventoryHook) {
	h.MustBeOpen("registry inventory hook " + name)
	t := h.Table(hooksTable, func() any { return &hookList{} }).(*hookList)
	for _, x := range t.hooks {
		if x.name == name {
			panic(fmt.Sprintf("registry: inventory hook %q registered twice", name))
		}
	}
	t.hooks = append(t.hooks, namedHook{name, f})
}

func fireInventory(ctx *types.Context, p Provider, registered bool) {
	t, ok := ctx.Hooks.Lookup(hooksTable)
	if !ok {
		return
	}
	for _, x := range t.(*hookList).hooks {
		x.f(ctx, p, registered)
	}
}

const changeHooksTable = ModuleName + "/hooks"

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
	t := h.Table(changeHooksTable, func() any { return &hookTable{} }).(*hookTable)
	t.hooks = append(t.hooks, f)
}

func changed(ctx *types.Context, owner types.Address) {
	t, ok := ctx.Hooks.Lookup(changeHooksTable)
	if !ok {
		return
	}
	for _, f := range t.(*hookTable).hooks {
		f(ctx, owner)
	}
}

// ChangeHooksWired reports whether any change hook is registered in h: a module that
// keeps records from them (the market's free-capacity index) checks those records only
// where they are kept.
func ChangeHooksWired(h *types.Hooks) bool {
	t, ok := h.Lookup(changeHooksTable)
	return ok && len(t.(*hookTable).hooks) > 0
}
