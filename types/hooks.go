package types

import "fmt"

// Hooks is the table through which modules call into one another without importing each
// other: a module that others may extend (the market's lease hooks and close reasons,
// staking's unbonding guards) keeps its typed table here under its own name, and other
// modules add to it when the app starts.
//
// Contracts:
//
//   - The app fills one Hooks in New, in the order its wiring declares, and seals it
//     before the first block; after Seal every change panics. So every node of one
//     binary runs the same hooks in the same order, and nothing registers mid-chain.
//   - A Hooks belongs to one App: two apps in one process never share hooks, and there
//     is no package-level registry.
//   - A nil *Hooks is an empty, sealed table: modules run alone (bare unit tests).
type Hooks struct {
	tables map[string]any
	sealed bool
}

// NewHooks returns an empty, unsealed table.
func NewHooks() *Hooks { return &Hooks{tables: map[string]any{}} }

// Table returns the table kept under name, creating it with create on first use. It
// panics once the table is sealed and name has none: registering after the app started
// is a programming error.
func (h *Hooks) Table(name string, create func() any) any {
	if t, ok := h.Lookup(name); ok {
		return t
	}
	if h == nil || h.sealed {
		panic(fmt.Sprintf("types: hooks table %q created after the app sealed its hooks", name))
	}
	t := create()
	h.tables[name] = t
	return t
}

// Lookup returns the table kept under name, if any. It reads only: NEVER mutate what
// it returns unless MustBeOpen passes.
func (h *Hooks) Lookup(name string) (any, bool) {
	if h == nil {
		return nil, false
	}
	t, ok := h.tables[name]
	return t, ok
}

// MustBeOpen panics if h is sealed (or nil): modules call it before adding to their
// tables, so a registration after start fails loudly instead of changing one node.
func (h *Hooks) MustBeOpen(what string) {
	if h == nil || h.sealed {
		panic(fmt.Sprintf("types: %s registered after the app sealed its hooks", what))
	}
}

// Seal freezes h; the app calls it at the end of New.
func (h *Hooks) Seal() { h.sealed = true }
