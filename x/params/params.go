// Package params stores each module's on-chain parameters under its own key, with the
// defaults taken from genesis.
package params

import (
	"encoding/json"
	"fmt"

	"github.com/kiln-network/kiln/types"
)

// Prefix is the params module's state prefix.
const Prefix = "params/"

// Validator is a module's parameter struct.
type Validator interface{ Validate() error }

// Get loads module's parameters into p. Missing parameters are a broken invariant
// (genesis always writes them), so it panics.
func Get(ctx *types.Context, module string, p any) {
	v, ok := ctx.Store.Get([]byte(Prefix + module))
	if !ok {
		panic(fmt.Sprintf("params: %s parameters missing from state", module))
	}
	if err := json.Unmarshal(v, p); err != nil {
		panic(fmt.Sprintf("params: decode %s: %v", module, err))
	}
}

// Set validates and stores module's parameters.
func Set(ctx *types.Context, module string, p Validator) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("%s params: %w", module, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	ctx.Store.Set([]byte(Prefix+module), b)
	return nil
}

// All returns every module's parameters as raw JSON, keyed by module name.
func All(ctx *types.Context) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	ctx.Store.Iterate([]byte(Prefix), func(k, v []byte) bool {
		out[string(k[len(Prefix):])] = json.RawMessage(v)
		return true
	})
	return out
}
