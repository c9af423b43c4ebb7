package app

import (
	"bytes"
	"fmt"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/staking"
)

// ExportedState is a chain's whole state at one committed height, carried in a
// genesis (app_state.exported) to start a new chain from it: a chain upgrade, the
// Cosmos convention of `appd export`. Every module's records go as they are, key by
// key, so nothing a module keeps is lost or re-encoded; the new chain continues at
// Height+1 (genesis initial_height), so that every height a record notes (unbonding
// ends, jail terms, lease settlement, bid windows) keeps its meaning.
type ExportedState struct {
	// ChainID and Height are the chain and height it was exported from; AppHash is
	// that height's app hash, which the next block's header (signed by the validators)
	// commits to. The pairs must hash to it: a changed or truncated export is refused.
	ChainID string         `json:"chain_id"`
	Height  int64          `json:"height,string"`
	AppHash store.HexBytes `json:"app_hash"`
	// Pairs are every key and value of the hashed state, keys in increasing order.
	Pairs []ExportedPair `json:"pairs"`
}

// ExportedPair is one key and its value.
type ExportedPair struct {
	Key   store.HexBytes `json:"k"`
	Value store.HexBytes `json:"v"`
}

// Export reads the whole committed state of db.
func Export(db *store.DB) (ExportedState, error) {
	view := db.View()
	defer view.Release()
	if view.Height() == 0 {
		return ExportedState{}, fmt.Errorf("the state database in %s has no committed block to export", db.Dir())
	}
	e := ExportedState{Height: view.Height(), AppHash: view.AppHash()}
	if v, ok := view.Get(chainIDKey); ok {
		e.ChainID = string(v)
	}
	view.Iterate(nil, func(k, v []byte) bool {
		e.Pairs = append(e.Pairs, ExportedPair{Key: k, Value: v})
		return true
	})
	return e, nil
}

// validate checks that the pairs are in order, hold no bookkeeping key and hash to
// AppHash.
func (e *ExportedState) validate() error {
	if e.Height < 1 {
		return fmt.Errorf("app_state.exported.height %d: must be a committed height (>= 1)", e.Height)
	}
	var acc store.LtHash
	for i, p := range e.Pairs {
		switch {
		case bytes.HasPrefix(p.Key, store.MetaPrefix):
			return fmt.Errorf("app_state.exported.pairs[%d]: key %x is the store's bookkeeping, not state", i, []byte(p.Key))
		case i > 0 && bytes.Compare(e.Pairs[i-1].Key, p.Key) >= 0:
			return fmt.Errorf("app_state.exported.pairs[%d]: key %x is not after the one before it", i, []byte(p.Key))
		case len(p.Value) == 0:
			return fmt.Errorf("app_state.exported.pairs[%d]: key %x has an empty value", i, []byte(p.Key))
		}
		acc.Add(p.Key, p.Value)
	}
	if got := acc.Sum(); !bytes.Equal(got, e.AppHash) {
		return fmt.Errorf("app_state.exported: the %d pairs hash to %X, not to the app hash %X of %s at height %d (changed or truncated)",
			len(e.Pairs), got, []byte(e.AppHash), e.ChainID, e.Height)
	}
	return nil
}

// importState writes an exported state into ctx's store for a chain that starts at
// initialHeight under ctx.ChainID, and returns its validator set: the one the old
// chain's staking module last gave CometBFT.
func (a *App) importState(ctx *types.Context, e *ExportedState, initialHeight int64) ([]staking.Update, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	if initialHeight != e.Height+1 {
		return nil, fmt.Errorf("genesis initial_height %d: a state exported at height %d continues at height %d", initialHeight, e.Height, e.Height+1)
	}
	for _, p := range e.Pairs {
		ctx.Store.Set(p.Key, p.Value)
	}
	ctx.Store.Set(chainIDKey, []byte(ctx.ChainID))
	// NB: the state holds the randomness of its last block, which the first block of
	// the new chain derives its own from.
	a.wire(ctx, storedBlockRand(ctx.Store))
	if err := bank.CheckInvariants(ctx); err != nil {
		return nil, fmt.Errorf("exported state: %w", err)
	}
	if err := a.l.checkInvariants(ctx); err != nil {
		return nil, fmt.Errorf("exported state: %w", err)
	}
	ups := staking.CurrentSet(ctx)
	if len(ups) == 0 {
		return nil, fmt.Errorf("exported state of %s at height %d has no validator with voting power", e.ChainID, e.Height)
	}
	return ups, nil
}
