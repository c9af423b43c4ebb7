package node

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/prometheus/client_golang/prometheus"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	cfg "github.com/cometbft/cometbft/config"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/proxy"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/node/pidfile"
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
	// StateSync sets the snapshots the node takes for peers joining through state
	// sync (HOME/config/app.toml; LoadAppConfig). Zero takes none.
	StateSync StateSyncConfig
}

// Node is a running validator: CometBFT with the Kiln app, in-process.
type Node struct {
	comet   *Comet
	metrics *metricsServer // nil unless instrumentation.prometheus is on
	App     *app.App
	db      *store.DB
	pid     *pidfile.File

	stopOnce sync.Once
	stopErr  error
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

// PIDFile is the name, in a home, of the file a running node holds (locked) with its
// pid in it; it is removed when the node stops.
const PIDFile = "node.pid"

// PIDPath returns the pid file of the node whose home is home.
func PIDPath(home string) string { return filepath.Join(home, PIDFile) }

// ErrHomeInUse is matched (errors.Is) by Start's error when another node runs on the
// same home.
var ErrHomeInUse = errors.New("home in use by another node")

// HomeInUseError says which home is taken and by which process.
type HomeInUseError struct {
	Home string
	// PID of the node holding it; 0 if unknown.
	PID int
}

func (e *HomeInUseError) Error() string {
	by, stop := "another process (its pid is not written yet)", "stop it first"
	if e.PID != 0 {
		by, stop = fmt.Sprintf("another kiln node, pid %d", e.PID), fmt.Sprintf("stop it first (kill %d)", e.PID)
	}
	return fmt.Sprintf("home %s is in use by %s, which holds %s: %s, or give this node another --home", e.Home, by, PIDPath(e.Home), stop)
}

// Is makes errors.Is(err, ErrHomeInUse) true.
func (e *HomeInUseError) Is(target error) bool { return target == ErrHomeInUse }

// lockHome claims home for this process: two nodes on one home would fight over its
// databases, and pebble's own lock says only "resource temporarily unavailable".
func lockHome(home string) (*pidfile.File, error) {
	p, err := pidfile.Acquire(PIDPath(home))
	var le *pidfile.LockedError
	if errors.As(err, &le) {
		return nil, &HomeInUseError{Home: home, PID: le.PID}
	}
	if err != nil {
		return nil, fmt.Errorf("claim home %s: %w", home, err)
	}
	return p, nil
}

// Start claims the home (HOME/node.pid, see PIDPath; a *HomeInUseError if another node
// holds it), opens the app state and starts CometBFT on it (see StartComet for how the
// listen addresses are bound: RPC port 0 gets a free port that RPCAddr reports).
// CometBFT's handshake replays any block the app has not committed, so a node killed
// at any moment resumes where its last durable commit left off.
func Start(conf *cfg.Config, o Options) (n *Node, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pid, err := lockHome(conf.RootDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pid.Release()
		}
	}()
	db, err := store.Open(StateDir(conf))
	if err != nil {
		return nil, err
	}
	a := app.New(db, app.Options{Logger: o.Logger, CheckInvariants: o.CheckInvariants, Snapshots: &app.Snapshots{
		Dir: SnapshotDir(conf.RootDir), Interval: o.StateSync.SnapshotInterval, Keep: o.StateSync.SnapshotKeepRecent,
	}})
	var abci abcitypes.Application = a
	var ms *metricsServer
	var reg *prometheus.Registry
	var metrics nm.MetricsProvider
	if conf.Instrumentation.IsPrometheusEnabled() {
		// NB: bound before consensus starts, so a taken port stops the start with
		// nothing running.
		if ms, err = listenMetrics(conf.Instrumentation.PrometheusListenAddr); err != nil {
			db.Close()
			return nil, err
		}
		reg = newRegistry()
		reg.MustRegister(newStateCollector(a))
		abci = observedApp{App: a, m: newAppMetrics(reg)}
		metrics = cometMetrics(reg)
	}
	// NB: one lock per ABCI connection, so CheckTx (mempool) runs beside FinalizeBlock
	// (consensus) and queries; the App guards the state they share.
	c, err := startComet(conf, proxy.NewConnSyncLocalClientCreator(abci), NewCometLogger(o.Logger, o.CometLevel), metrics)
	if err != nil {
		if ms != nil {
			ms.close()
		}
		db.Close()
		return nil, err
	}
	if ms != nil {
		ms.serve(reg)
	}
	return &Node{comet: c, metrics: ms, App: a, db: db, pid: pid}, nil
}

// MetricsAddr returns the HOST:PORT the node serves Prometheus metrics on (/metrics),
// with the port it got when prometheus_listen_addr asked for port 0; "" when
// instrumentation.prometheus is off.
func (n *Node) MetricsAddr() string {
	if n.metrics == nil {
		return ""
	}
	return n.metrics.ln.Addr().String()
}

// MetricsURL returns the URL of the node's metrics, or "" when they are off.
func (n *Node) MetricsURL() string {
	if n.metrics == nil {
		return ""
	}
	return "http://" + n.MetricsAddr() + "/metrics"
}

// Stop stops consensus, closes the state database and gives the home back (its pid
// file is removed). Calls after the first return the first one's result.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() { n.stopErr = n.stop() })
	return n.stopErr
}

func (n *Node) stop() error {
	if err := n.comet.Stop(); err != nil {
		return err
	}
	n.App.WaitSnapshots()
	if n.metrics != nil {
		n.metrics.close()
	}
	err := n.db.Close()
	if perr := n.pid.Release(); err == nil {
		err = perr
	}
	return err
}

// RPCAddr returns the address the RPC server listens on (tcp://host:port), with the
// port it got when rpc.laddr asked for port 0.
func (n *Node) RPCAddr() string { return n.comet.RPCAddr() }

// CometBFT returns the embedded CometBFT node.
func (n *Node) CometBFT() *nm.Node { return n.comet.Node() }
