package node

import (
	"log/slog"
	"path/filepath"
	"sync"

	dbm "github.com/cometbft/cometbft-db"

	cfg "github.com/cometbft/cometbft/config"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/proxy"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/store"
)

// Options configure a running node.
type Options struct {
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// CometLevel is the least level of CometBFT's own logs passed on (it is chatty at info).
	CometLevel slog.Level
	// CheckInvariants makes the app check money conservation after every block.
	CheckInvariants bool
}

// Node is a running validator: CometBFT with the Kiln app, in-process.
type Node struct {
	comet *Comet
	App   *app.App
	db    *store.DB
}

// dbTracker remembers every database CometBFT opens: its Stop leaves the tx and block
// indexer databases open (v0.38), and their file locks would stop a restart in the same
// process.
type dbTracker struct {
	mu  sync.Mutex
	dbs []dbm.DB
}

func (t *dbTracker) provide(ctx *cfg.DBContext) (dbm.DB, error) {
	db, err := cfg.DefaultDBProvider(ctx)
	if err == nil {
		t.mu.Lock()
		t.dbs = append(t.dbs, db)
		t.mu.Unlock()
	}
	return db, err
}

func (t *dbTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, db := range t.dbs {
		db.Close() // NB: closing a database CometBFT already closed is harmless
	}
	t.dbs = nil
}

// StateDir is where the app keeps its pebble database inside a home.
func StateDir(conf *cfg.Config) string { return filepath.Join(conf.DBDir(), "kiln-state.db") }

// Start opens the app state and starts CometBFT on it (see StartComet for how the
// listen addresses are bound: RPC port 0 gets a free port that RPCAddr reports).
// CometBFT's handshake replays any block the app has not committed, so a node killed
// at any moment resumes where its last durable commit left off.
func Start(conf *cfg.Config, o Options) (*Node, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := store.Open(StateDir(conf))
	if err != nil {
		return nil, err
	}
	a := app.New(db, app.Options{Logger: o.Logger, CheckInvariants: o.CheckInvariants})
	// NB: one lock per ABCI connection, so CheckTx (mempool) runs beside FinalizeBlock
	// (consensus) and queries; the App guards the state they share.
	c, err := StartComet(conf, proxy.NewConnSyncLocalClientCreator(a), NewCometLogger(o.Logger, o.CometLevel))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Node{comet: c, App: a, db: db}, nil
}

// Stop stops consensus and closes the state database.
func (n *Node) Stop() error {
	if err := n.comet.Stop(); err != nil {
		return err
	}
	return n.db.Close()
}

// RPCAddr returns the address the RPC server listens on (tcp://host:port), with the
// port it got when rpc.laddr asked for port 0.
func (n *Node) RPCAddr() string { return n.comet.RPCAddr() }

// CometBFT returns the embedded CometBFT node.
func (n *Node) CometBFT() *nm.Node { return n.comet.Node() }
