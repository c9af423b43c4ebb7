package verify

import (
	"fmt"

	"github.com/kiln-network/kiln/types"
)

// DirectCheck decides on chain whether data is an honest result for unit unit of job
// (the job description the provider committed): ok true when it is; false with why when
// it is not (a malformed job or unit the provider committed counts as not). It returns
// an error only when the chain cannot afford or does not know how to check this job (it
// then goes to a committee instead). It MUST be deterministic and cheap enough for
// FinalizeBlock (milliseconds): seed comes from the block's randomness, for checks
// (Freivalds) whose strength rests on the provider not knowing their random vector.
type DirectCheck func(p Params, job []byte, unit string, data []byte, seed int64) (ok bool, why string, err error)

const directTable = ModuleName + "/direct"

type directs struct{ byKind map[string]DirectCheck }

// RegisterDirect makes the chain check challenged units of kind itself with c, instead
// of drawing a committee. It panics if h is sealed or kind is taken: wiring bugs.
func RegisterDirect(h *types.Hooks, kind string, c DirectCheck) {
	h.MustBeOpen("direct check " + kind)
	t := h.Table(directTable, func() any { return &directs{byKind: map[string]DirectCheck{}} }).(*directs)
	if _, dup := t.byKind[kind]; dup {
		panic(fmt.Sprintf("verify: direct check for %q registered twice", kind))
	}
	t.byKind[kind] = c
}

// directOf returns the direct check of kind, if one is registered.
func directOf(ctx *types.Context, kind string) (DirectCheck, bool) {
	t, ok := ctx.Hooks.Lookup(directTable)
	if !ok {
		return nil, false
	}
	c, ok := t.(*directs).byKind[kind]
	return c, ok
}
