package app

import (
	"fmt"
	"strings"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
)

// Ledger runs the module table on a KV without consensus, signatures or fees: the
// market simulator and benchmarks drive the chain's own message handlers, hooks and
// end-block through it, on an in-memory store. What it executes is what FinalizeBlock
// executes — the same table, wiring and order — minus the ante handler (accounts,
// sequences, fees) and the app hash.
//
// A Ledger is not safe for concurrent use.
type Ledger struct {
	l     *ledger
	hooks *types.Hooks
	state store.KV
	block *store.Cache // the block being executed; nil between blocks
	ctx   *types.Context
	rand  types.BlockRand
}

// NewLedger writes genesis g into state (which should be empty) and returns a Ledger
// over it, wired like an App with opts (Modules, Extend; the rest is ignored).
func NewLedger(state store.KV, g GenesisState, opts Options) (*Ledger, error) {
	l := ledgerTable
	if len(opts.Modules) > 0 {
		l = newLedger(append(Modules(), opts.Modules...))
	}
	hooks := types.NewHooks()
	for _, m := range l.modules {
		if m.Wire != nil {
			m.Wire(hooks)
		}
	}
	if opts.Extend != nil {
		opts.Extend(hooks)
	}
	hooks.Seal()
	lg := &Ledger{l: l, hooks: hooks, state: state}
	c := store.NewCache(state)
	ctx := &types.Context{Store: c, Hooks: hooks}
	if _, err := l.initGenesis(ctx, g); err != nil {
		return nil, err
	}
	c.Write()
	return lg, nil
}

// Begin starts block height at time t and runs every module's BeginBlock (no evidence,
// every validator signed). It returns the block's context: Deliver and End take it.
func (lg *Ledger) Begin(height int64, t time.Time) *types.Context {
	if lg.block != nil {
		panic("app: Ledger.Begin before the previous block's End")
	}
	lg.block = store.NewCache(lg.state)
	// NB: the simulator's blocks have no header to draw from; each block's randomness
	// is derived like a real block's from the previous one and the height alone.
	lg.rand = deriveBlockRand(lg.rand, &abcitypes.RequestFinalizeBlock{Height: height})
	lg.ctx = &types.Context{Store: lg.block, Height: height, Time: t, ChainID: "kiln-sim", Hooks: lg.hooks, BlockRand: lg.rand}
	lg.l.beginBlock(lg.ctx, BlockInfo{})
	return lg.ctx
}

// Deliver executes msg in the current block as its own transaction: checked with
// ValidateBasic, routed to its module, and its writes kept only if it succeeds.
func (lg *Ledger) Deliver(msg types.Msg) error {
	if lg.block == nil {
		panic("app: Ledger.Deliver outside a block")
	}
	if err := msg.ValidateBasic(); err != nil {
		return err
	}
	exec := store.NewCache(lg.block)
	if err := lg.l.route(lg.ctx.WithStore(exec), msg); err != nil {
		return err
	}
	exec.Write()
	return nil
}

// End runs every module's EndBlock in table order and commits the block to the
// Ledger's state.
func (lg *Ledger) End() {
	if lg.block == nil {
		panic("app: Ledger.End outside a block")
	}
	lg.l.endBlock(lg.ctx.WithStore(lg.block))
	lg.block.Write()
	lg.block, lg.ctx = nil, nil
}

// CheckInvariants runs the books and every module's invariants on the committed
// state, as the app does after every block with Options.CheckInvariants.
func (lg *Ledger) CheckInvariants(height int64) error {
	if err := lg.l.checkInvariants(lg.Context(height)); err != nil {
		return fmt.Errorf("invariant broken at height %d: %w", height, err)
	}
	return nil
}

// Query answers a query path against the committed state at height, as the app's
// ABCI Query does.
func (lg *Ledger) Query(height int64, path string) (any, error) {
	ctx := &types.Context{Store: lg.state, Height: height, Hooks: lg.hooks, BlockRand: lg.rand}
	root, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	root, _, _ = strings.Cut(root, "?")
	if q, ok := lg.l.queries[root]; ok && strings.HasPrefix(path, "/") {
		return q(ctx, path)
	}
	return nil, unknownPath(path)
}

// Context returns a read context over the committed state (for the modules' own
// read functions).
func (lg *Ledger) Context(height int64) *types.Context {
	return &types.Context{Store: lg.state, Height: height, Hooks: lg.hooks, BlockRand: lg.rand}
}
