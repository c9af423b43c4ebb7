package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	cmtcrypto "github.com/cometbft/cometbft/proto/tendermint/crypto"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/staking"
)

// Version is reported in Info.
const Version = "0.1.0"

// AppVersion is the ABCI application protocol version.
const AppVersion uint64 = 1

var chainIDKey = []byte("app/chain_id")

var _ abcitypes.Application = (*App)(nil)

// Options configure an App.
type Options struct {
	// Logger receives the app's logs; nil discards them.
	Logger *slog.Logger
	// CheckInvariants walks all balances after every block and panics if any denom's
	// balances do not add up to its supply, if a module account (escrow, market bids,
	// bonded stake, fee collector) does not hold exactly what its module's records say,
	// or if the market's capacity accounting is off. O(accounts + orders) per block: for
	// tests, audits and the demo.
	CheckInvariants bool
	// Extend, if set, registers more hooks after the app's own wiring (market hooks,
	// close reasons, unbond guards) and before they are sealed: how a test plugs in.
	Extend func(*types.Hooks)
	// Modules run after the standard ones (Modules()), in the same ways: messages,
	// hooks, begin- and end-block, invariants, queries. Their parameters, if any, are
	// theirs to keep (GenesisParams has a field per standard module only).
	Modules []Module
	// Snapshots, if set, has the app take state-sync snapshots (see Snapshots).
	Snapshots *Snapshots
}

// App is the Kiln ABCI application.
type App struct {
	abcitypes.BaseApplication

	db      *store.DB
	l       *ledger // the module table this app runs
	reg     *tx.Registry
	log     *slog.Logger
	opts    Options
	chainID string

	deliver   *store.Cache   // the block being finalized (and genesis before block 1)
	pending   *store.Pending // its prepared commit
	checkMu   sync.Mutex     // CheckTx (mempool connection) runs beside FinalizeBlock
	check     *store.Cache   // CheckTx's scratch state, guarded by checkMu
	checkTime time.Time      // the last committed block's time (genesis time before block 1), guarded by checkMu

	sigMu    sync.Mutex
	verified map[[32]byte]struct{} // hashes of txs whose signatures verified

	hooks *types.Hooks // what modules registered with one another, sealed in New

	snaps *snapshotter // state-sync snapshots; nil when the app takes none and restores none yet
}

// New opens an App over db.
func New(db *store.DB, opts Options) *App {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &App{db: db, log: opts.Logger, opts: opts, verified: map[[32]byte]struct{}{}}
	a.l = ledgerTable
	if len(opts.Modules) > 0 {
		a.l = newLedger(append(Modules(), opts.Modules...))
	}
	a.reg = a.l.registry()
	// NB: the order below is the order hooks and guards run in, on every node.
	a.hooks = types.NewHooks()
	for _, m := range a.l.modules {
		if m.Wire != nil {
			m.Wire(a.hooks)
		}
	}
	for _, acc := range a.l.accounts {
		if acc.Owed != nil {
			bank.BlockRecipient(a.hooks, acc.Address, acc.Name)
		}
	}
	if opts.Extend != nil {
		opts.Extend(a.hooks)
	}
	a.hooks.Seal()
	a.check = store.NewCache(db)
	a.checkTime = db.BlockTime()
	if opts.Snapshots != nil && opts.Snapshots.Dir != "" {
		a.snaps = &snapshotter{cfg: *opts.Snapshots, onErr: func(err error) { a.log.Error("state-sync snapshot", "err", err) }}
	}
	if v, ok := db.Get(chainIDKey); ok {
		a.chainID = string(v)
	}
	return a
}

// NewRegistry returns the registry of every message type the app understands: the
// module table's.
func NewRegistry() *tx.Registry { return ledgerTable.registry() }

// Info reports the last committed height and app hash, so CometBFT's handshake replays
// whatever blocks the app has not committed. It runs beside Commit (RPC abci_info), so
// it reads both from one View: never a height with the next block's hash.
func (a *App) Info(context.Context, *abcitypes.RequestInfo) (*abcitypes.ResponseInfo, error) {
	view := a.db.View()
	defer view.Release()
	resp := &abcitypes.ResponseInfo{Data: "kiln", Version: Version, AppVersion: AppVersion, LastBlockHeight: view.Height()}
	if view.Height() > 0 {
		resp.LastBlockAppHash = view.AppHash()
	}
	return resp, nil
}

// InitChain writes genesis into the first block's cache (committed with block 1, so a
// crash before then simply runs InitChain again on empty state).
func (a *App) InitChain(_ context.Context, req *abcitypes.RequestInitChain) (*abcitypes.ResponseInitChain, error) {
	if a.db.Height() != 0 {
		return nil, fmt.Errorf("InitChain on a database already at height %d", a.db.Height())
	}
	g, err := ParseGenesis(req.AppStateBytes)
	if err != nil {
		return nil, err
	}
	a.chainID = req.ChainId
	a.deliver = store.NewCache(a.db)
	a.deliver.Set(chainIDKey, []byte(req.ChainId))
	ctx := &types.Context{Store: a.deliver, Height: req.InitialHeight, Time: req.Time, ChainID: req.ChainId, Logger: a.log}
	var ups []staking.Update
	if g.Exported != nil {
		ups, err = a.importState(ctx, g.Exported, req.InitialHeight)
	} else {
		a.wire(ctx, genesisBlockRand(req))
		a.deliver.Set(blockRandKey, ctx.BlockRand[:])
		ups, err = a.l.initGenesis(ctx, g)
	}
	if err != nil {
		return nil, err
	}
	if err := bank.CheckInvariants(ctx); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	// NB: CheckTx may run before block 1 commits genesis; it must see the genesis state,
	// in a copy, since FinalizeBlock goes on writing into deliver.
	a.checkMu.Lock()
	a.check = a.deliver.Clone()
	a.checkTime = req.Time
	a.checkMu.Unlock()
	p := a.db.Prepare(0, req.Time, a.deliver)
	return &abcitypes.ResponseInitChain{Validators: toABCIUpdates(ups), AppHash: p.AppHash}, nil
}

func toABCIUpdates(ups []staking.Update) []abcitypes.ValidatorUpdate {
	out := make([]abcitypes.ValidatorUpdate, 0, len(ups))
	for _, u := range ups {
		out = append(out, abcitypes.ValidatorUpdate{
			PubKey: cmtcrypto.PublicKey{Sum: &cmtcrypto.PublicKey_Ed25519{Ed25519: u.PubKey}},
			Power:  u.Power,
		})
	}
	return out
}

// CheckTx runs the whole transaction against CheckTx's scratch state, at the height of
// the next block and the time of the last committed one (what a time-dependent check,
// like a certificate's validity, can know before the next block's time is decided).
func (a *App) CheckTx(_ context.Context, req *abcitypes.RequestCheckTx) (*abcitypes.ResponseCheckTx, error) {
	// NB: verify the signature before taking the lock: it is the costly part, and
	// depends only on the bytes.
	a.preverify(req.Tx)
	a.checkMu.Lock()
	defer a.checkMu.Unlock()
	ctx := &types.Context{Store: a.check, Height: a.db.Height() + 1, Time: a.checkTime, ChainID: a.chainID, CheckTx: true, Logger: a.log}
	a.wire(ctx, storedBlockRand(a.check))
	res := a.runTx(ctx, req.Tx)
	return &abcitypes.ResponseCheckTx{Code: res.Code, Log: res.Log, Codespace: res.Codespace, GasWanted: 1}, nil
}

// FinalizeBlock executes a decided block: evidence and liveness, its transactions,
// fees, unbondings and validator updates, then prepares the app hash.
func (a *App) FinalizeBlock(_ context.Context, req *abcitypes.RequestFinalizeBlock) (*abcitypes.ResponseFinalizeBlock, error) {
	if a.deliver == nil {
		a.deliver = store.NewCache(a.db)
	}
	ctx := &types.Context{Store: a.deliver, Height: req.Height, Time: req.Time, ChainID: a.chainID, Proposer: req.ProposerAddress, Logger: a.log}
	a.wire(ctx, deriveBlockRand(storedBlockRand(a.deliver), req))
	a.deliver.Set(blockRandKey, ctx.BlockRand[:])

	var bi BlockInfo
	for _, m := range req.Misbehavior {
		bi.DoubleSigners = append(bi.DoubleSigners, m.Validator.Address)
	}
	for _, v := range req.DecidedLastCommit.Votes {
		bi.Votes = append(bi.Votes, Vote{Address: v.Validator.Address, Signed: v.BlockIdFlag != cmtproto.BlockIDFlagAbsent})
	}
	a.l.beginBlock(ctx, bi)
	beginEvents := toABCIEvents(ctx.Events())

	results := make([]*abcitypes.ExecTxResult, len(req.Txs))
	for i, raw := range req.Txs {
		txCtx := ctx.WithStore(ctx.Store)
		r := a.runTx(txCtx, raw)
		results[i] = &abcitypes.ExecTxResult{Code: r.Code, Log: r.Log, Codespace: r.Codespace, Events: r.Events, GasWanted: 1, GasUsed: 1}
	}

	endCtx := ctx.WithStore(ctx.Store)
	// NB: in the table's order, which Modules explains.
	ups := a.l.endBlock(endCtx)
	if a.opts.CheckInvariants {
		if err := a.l.checkInvariants(endCtx); err != nil {
			panic(fmt.Sprintf("invariant broken at height %d: %v", req.Height, err))
		}
	}
	a.pending = a.db.Prepare(req.Height, req.Time, a.deliver)
	return &abcitypes.ResponseFinalizeBlock{
		Events:           append(beginEvents, toABCIEvents(endCtx.Events())...),
		TxResults:        results,
		ValidatorUpdates: toABCIUpdates(ups),
		AppHash:          a.pending.AppHash,
	}, nil
}

// Commit persists the finalized block and resets CheckTx's state.
func (a *App) Commit(context.Context, *abcitypes.RequestCommit) (*abcitypes.ResponseCommit, error) {
	if a.pending == nil {
		return nil, errors.New("Commit without FinalizeBlock")
	}
	if err := a.db.Commit(a.pending); err != nil {
		// NB: a node that cannot persist a decided block must stop.
		panic(err)
	}
	t, h := a.pending.Time, a.pending.Height
	a.deliver, a.pending = nil, nil
	a.checkMu.Lock()
	a.check = store.NewCache(a.db)
	a.checkTime = t
	a.checkMu.Unlock()
	a.snaps.afterCommit(a.db, h)
	return &abcitypes.ResponseCommit{}, nil
}

// Height returns the last committed height.
func (a *App) Height() int64 { return a.db.Height() }

// AppHash returns the last committed app hash.
func (a *App) AppHash() []byte { return a.db.AppHash() }

// ChainID returns the chain-id from genesis.
func (a *App) ChainID() string { return a.chainID }

func toABCIEvents(evs []types.Event) []abcitypes.Event {
	out := make([]abcitypes.Event, 0, len(evs))
	for _, e := range evs {
		ae := abcitypes.Event{Type: e.Type}
		for _, kv := range e.Attrs {
			ae.Attributes = append(ae.Attributes, abcitypes.EventAttribute{Key: kv[0], Value: kv[1], Index: true})
		}
		out = append(out, ae)
	}
	return out
}
