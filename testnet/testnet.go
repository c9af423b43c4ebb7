// Package testnet runs fault scenarios against a real multi-process Kiln network:
// N validators as separate `kiln node` processes, a load generator sending signed
// bank transfers through their RPC, a perturbation (kill -9, SIGSTOP, a 1-vs-3 or
// 2-vs-2 partition, packet loss, latency, a validator's clock off by an hour, a
// double-signing twin of a validator, a late node joining through state sync) in the
// middle of the run, or a soak cycling through them, and a history checker that
// compares what the load generator was told with what the chain holds, and verifies
// the last header with CometBFT's light client.
package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cfg "github.com/cometbft/cometbft/config"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/node"
)

// Scenarios are the perturbations Run knows, in the order `kiln testnet run` lists them.
var Scenarios = []string{"kill", "pause", "partition", "partition-2v2", "latency", "loss", "skew", "byzantine", "statesync"}

// nsScenarios need network namespaces (one per node): they shape or cut links.
var nsScenarios = map[string]bool{"partition": true, "partition-2v2": true, "loss": true, "soak": true}

// Options configure Run.
type Options struct {
	Bin        string        // the kiln binary each node runs (os.Executable)
	Dir        string        // where the nodes' homes go; empty: a temporary directory, removed after
	Scenario   string        // one of Scenarios
	Validators int           // default 4
	Duration   time.Duration // the whole load run: a third before, during and after the fault; default 30 s
	BlockTime  time.Duration // default 300 ms
	Accounts   int           // load generator accounts; default 4
	Log        io.Writer     // progress lines; nil: none
	// WatcherGrace is how long, in the byzantine scenario, the honest validators have
	// to detect and report the double-sign through gossip after it first shows in the
	// twin's WAL, before the harness's watcher reports it instead; default 30 s.
	WatcherGrace time.Duration
	// JoinHeight is, for statesync, the height the chain reaches before the load and
	// the joiner start (0: none; the joiner starts a third into the run).
	JoinHeight int64
	// Period is, in a soak, how long each perturbation lasts; a quiet half period
	// follows each. Default 15 s.
	Period time.Duration
}

// Result is what a scenario measured.
type Result struct {
	Scenario   string `json:"scenario"`
	Network    string `json:"network"` // "loopback": 127.0.0.1, one process per node
	Validators int    `json:"validators"`
	// TxsSent counts distinct transactions the load generator broadcast; TxsAcked
	// those a node reported committed with code 0; TxsApplied those the chain holds
	// with code 0. TxsRebroadcast counts broadcasts of bytes already sent (a retry
	// signing the same sequence and amount while a node is down): each tx counts once.
	TxsSent        int `json:"txs_sent"`
	TxsAcked       int `json:"txs_acked"`
	TxsApplied     int `json:"txs_applied"`
	TxsRebroadcast int `json:"txs_rebroadcast"`
	// TxsLost counts acknowledged transactions the chain does not hold; TxsAppliedTwice
	// transactions applied more than once.
	TxsLost         int `json:"txs_lost"`
	TxsAppliedTwice int `json:"txs_applied_twice"`
	// Orders counts the market load's orders (a tenant ordering one CPU lease at a
	// time, a provider bidding, starting and heartbeating it, the tenant closing it);
	// Leases those that became leases, LeasesClosed those closed by the end.
	// LeasesOverpaid counts leases whose escrow paid more than their price for each
	// block from their start to their close (or to now): paid past their close.
	Orders         int `json:"orders"`
	Leases         int `json:"leases"`
	LeasesClosed   int `json:"leases_closed"`
	LeasesOverpaid int `json:"leases_paid_past_close"`
	// Forks counts heights at which two nodes hold different block hashes.
	Forks int `json:"forks"`
	// LightVerified: CometBFT's light client verified the last header from the load's
	// first block, skipping and sequentially, with every other node as a witness.
	LightVerified bool `json:"light_client_verified"`
	// BalancesMatch: every load account's balance equals its funding replayed with the
	// applied transactions. SupplyConserved: the chain's accounting adds up.
	BalancesMatch   bool `json:"balances_match"`
	SupplyConserved bool `json:"supply_conserved"`
	// RecoverS is the seconds from the fault's end until every node is past the height
	// the chain had then (for statesync: until the joiner follows the chain; for
	// byzantine: from the twin's start until the double-signer is out of the
	// validator set and every node, the twin too, is past the height of that moment).
	RecoverS  float64 `json:"recover_s"`
	TPSBefore float64 `json:"tps_before"`
	TPSDuring float64 `json:"tps_during"`
	TPSAfter  float64 `json:"tps_after"`
	Height    int64   `json:"height"`
	// PacketsDropped is, for loss, how many node-to-node packets were dropped.
	PacketsDropped int64 `json:"packets_dropped,omitempty"`
	// SkewedVotes is, for skew, how many of the skewed validator's commit signatures
	// in the run's blocks carry a time more than 30 minutes off their block's.
	SkewedVotes int `json:"skewed_votes_in_commits,omitempty"`
	// JoinedAt is, for statesync, the first height in the joiner's block store.
	JoinedAt int64 `json:"joined_at,omitempty"`
	// Perturbations are, for a soak, every fault in the order it ran.
	Perturbations []Perturbation `json:"perturbations,omitempty"`
	// Byzantine is, for byzantine, the double-signer's evidence and punishment.
	*Byzantine
	Problems []string `json:"problems,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// OK reports whether nothing was lost, applied twice or forked, the books add up, and
// the market load leased and no lease was paid past its close.
func (r Result) OK() bool {
	if r.Scenario == "byzantine" && r.Byzantine == nil {
		return false
	}
	return r.TxsSent > 0 && r.TxsLost == 0 && r.TxsAppliedTwice == 0 && r.Forks == 0 && r.LightVerified && r.BalancesMatch && r.SupplyConserved &&
		r.Leases > 0 && r.LeasesOverpaid == 0 && len(r.Problems) == 0
}

func (o *Options) defaults() error {
	if o.Validators == 0 {
		o.Validators = 4
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Second
	}
	if o.BlockTime == 0 {
		o.BlockTime = 300 * time.Millisecond
	}
	if o.Accounts == 0 {
		o.Accounts = 4
	}
	if o.WatcherGrace == 0 {
		o.WatcherGrace = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Period == 0 {
		o.Period = 15 * time.Second
	}
	known := o.Scenario == "soak"
	for _, s := range Scenarios {
		known = known || s == o.Scenario
	}
	minD, maxD := 6*time.Second, 10*time.Minute
	if o.Scenario == "soak" {
		minD, maxD = 2*o.Period, 24*time.Hour
	}
	switch {
	case !known:
		return fmt.Errorf("--scenario %q: want one of %v", o.Scenario, Scenarios)
	case o.Validators < 4 || o.Validators > 16:
		return fmt.Errorf("--validators %d: must be 4 to 16 (one node is faulted; the rest must keep 2/3 of the power)", o.Validators)
	case o.Period < 5*time.Second || o.Period > 5*time.Minute:
		return fmt.Errorf("--period %v: must be 5s to 5m", o.Period)
	case o.Duration < minD || o.Duration > maxD:
		return fmt.Errorf("--duration %v: must be %v to %v", o.Duration, minD, maxD)
	case o.BlockTime < time.Millisecond || o.BlockTime > 5*time.Second:
		return fmt.Errorf("--block-time %v: must be 1ms to 5s", o.BlockTime)
	case o.JoinHeight < 0 || o.JoinHeight > 10_000_000 || o.JoinHeight > 0 && o.Scenario != "statesync":
		return fmt.Errorf("--join-height %d: must be 0 to 10000000, and only for statesync", o.JoinHeight)
	case o.Accounts < 1 || o.Accounts > 64:
		return fmt.Errorf("--accounts %d: must be 1 to 64", o.Accounts)
	case o.WatcherGrace < 0 || o.WatcherGrace > 10*time.Minute:
		return fmt.Errorf("--watcher-grace %v: must be 0s to 10m", o.WatcherGrace)
	case o.Bin == "":
		return errors.New("no kiln binary to run the nodes with")
	}
	return nil
}

// net is a running network.
type net struct {
	o      Options
	dir    string
	ln     node.Localnet
	pids   map[int]int // node index -> pid
	paused map[int]bool
	cl     []*client.Client
	ns     *nsNet // nil: every node on loopback
	delay  *delayProxies
	stall  time.Duration // waitAllPast's stallLimit (tests shorten it)
	skew   *skewSigner   // the skew scenario's remote signer of the last validator
	skewed bool          // the skew was applied at some point
	began  time.Time     // when Run began: no block of the run is older
}

func (n *net) logf(format string, args ...any) {
	fmt.Fprintf(n.o.Log, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}

// start starts node i and records its pid.
func (n *net) start(ctx context.Context, i int) error {
	if n.ns != nil {
		return n.startNS(ctx, i)
	}
	s, err := node.StartLocalnetNode(ctx, n.o.Bin, n.dir, i)
	if err != nil {
		return err
	}
	n.pids[i] = s.PID
	n.logf("%s started: pid %d, rpc %s", s.Name, s.PID, s.RPC)
	return nil
}

// signal sends sig to node i's process.
func (n *net) signal(i int, sig syscall.Signal) error {
	pid, ok := n.pids[i]
	if !ok {
		return fmt.Errorf("node%d is not running", i)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %v to node%d (pid %d): %w", sig, i, pid, err)
	}
	return nil
}

// kill9 kills node i and waits until its process is gone.
func (n *net) kill9(i int) error {
	if err := n.signal(i, syscall.SIGKILL); err != nil {
		return err
	}
	waitGone(n.pids[i], 10*time.Second)
	delete(n.pids, i)
	return nil
}

// stopAll stops every node it started: SIGCONT (a paused one), SIGTERM, then SIGKILL
// after 10 s.
func (n *net) stopAll() {
	for _, pid := range n.pids {
		syscall.Kill(pid, syscall.SIGCONT)
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for i, pid := range n.pids {
		if !waitGone(pid, 10*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
		delete(n.pids, i)
	}
	if n.skew != nil {
		n.skew.stop()
	}
}

// waitGone waits until pid no longer exists (the localnet package reaps its
// children), up to d; it reports whether it is gone.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// heights is every running node's latest height (-1 for one that does not answer).
func (n *net) heights(ctx context.Context) []int64 {
	out := make([]int64, len(n.cl))
	for i, c := range n.cl {
		out[i] = -1
		if _, up := n.pids[i]; !up || n.paused[i] {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if st, err := c.Status(cctx); err == nil {
			out[i] = st.Height
		}
		cancel()
	}
	return out
}

func maxOf(hs []int64) int64 {
	var m int64
	for _, h := range hs {
		m = max(m, h)
	}
	return m
}

// stallLimit is how long waitAllPast waits without any node's height moving before it
// calls the network stuck. A busy machine slows blocks down, it does not stop them:
// at load average 17 on 2 cores the round-one start-up took over 90 s to height 2,
// but heights kept moving every few seconds.
const stallLimit = 60 * time.Second

// waitAllPast waits until every node in idx reports a height above h. It waits as
// long as the network makes progress (some node reports a height above any it
// reported before, at least every n.stall) and ctx lasts; it fails naming the heights.
func (n *net) waitAllPast(ctx context.Context, idx []int, h int64) error {
	best := map[int]int64{} // the highest height each node has reported
	moved := time.Now()
	for {
		hs := n.heights(ctx)
		ok := true
		for _, i := range idx {
			ok = ok && hs[i] > h
		}
		if ok {
			return nil
		}
		// NB: only a new highest height is progress; a node that answers, then
		// times out, then answers again at the same height is not.
		for i, hi := range hs {
			if b, seen := best[i]; hi >= 0 && (!seen || hi > b) {
				best[i], moved = hi, time.Now()
			}
		}
		if time.Since(moved) > n.stall {
			return fmt.Errorf("waiting for nodes %v to pass height %d: no node's height moved for %v (heights %v)", idx, h, n.stall, hs)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for nodes %v to pass height %d (heights %v): %w", idx, h, hs, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Run sets up a network, runs the scenario with load, checks the history and tears
// everything down. ctx bounds the whole run.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Scenario: o.Scenario, Validators: o.Validators}
	n, cleanup, err := setup(ctx, o, &res)
	defer cleanup()
	if err != nil {
		return res, err
	}
	if o.JoinHeight > 0 {
		start := time.Now()
		n.logf("building the chain to height %d", o.JoinHeight)
		if err := n.waitAllPast(ctx, n.all(), o.JoinHeight-1); err != nil {
			return res, err
		}
		n.logf("height %d after %v", o.JoinHeight, time.Since(start).Round(time.Second))
	}
	lg, err := newLoad(ctx, n, o.Accounts)
	if err != nil {
		return res, fmt.Errorf("load generator: %w", err)
	}
	faulted := len(n.ln.Nodes) - 1 // the last validator is the one perturbed
	var targets []int
	for i := 0; i < faulted; i++ {
		targets = append(targets, i)
	}
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	cls := n.clients(targets)
	go func() { lg.run(lctx, cls); close(loadDone) }()

	phase := o.Duration / 3
	t0 := time.Now()
	sleep(ctx, phase)
	t1 := time.Now()
	n.logf("fault: %s", o.Scenario)
	sc, err := n.fault(ctx, o.Scenario, faulted, phase)
	if err != nil {
		stopLoad()
		<-loadDone
		return res, err
	}
	t2 := time.Now()
	res.RecoverS = sc.recover.Seconds()
	res.JoinedAt = sc.joinedAt
	res.PacketsDropped = sc.dropped
	res.Byzantine = sc.byz
	res.Problems = append(res.Problems, sc.problems...)
	if rest := t2.Add(phase).Sub(time.Now()); rest > 0 {
		sleep(ctx, rest)
	}
	t3 := time.Now()
	stopLoad()
	<-loadDone
	n.logf("load stopped: %d txs sent", len(lg.recs))
	res.TPSBefore = rate(lg.ackedBetween(t0, t1), t1.Sub(t0))
	res.TPSDuring = rate(lg.ackedBetween(t1, t2), t2.Sub(t1))
	res.TPSAfter = rate(lg.ackedBetween(t2, t3), t3.Sub(t2))
	idx := n.all()
	if sc.extra >= 0 {
		idx = append(idx, sc.extra)
	}
	return res, n.settleAndCheck(ctx, lg, idx, &res)
}

// all is the index of every validator of the genesis.
func (n *net) all() []int {
	out := make([]int, n.o.Validators)
	for i := range out {
		out[i] = i
	}
	return out
}

// setup makes the network o asks for (its directory, namespaces, delay proxies,
// remote signer, state-sync snapshots), starts every validator and waits until they
// all produce blocks; it notes the network's kind in res. cleanup, never nil, stops
// and removes everything; call it even on error.
func setup(ctx context.Context, o Options, res *Result) (n *net, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for k := len(undo) - 1; k >= 0; k-- {
			undo[k]()
		}
	}
	res.Network = "loopback"
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kiln-testnet-")
		if err != nil {
			return nil, cleanup, err
		}
		undo = append(undo, func() { os.RemoveAll(d) })
		dir = d
	}
	dir = filepath.Join(dir, o.Scenario)
	if err := os.RemoveAll(dir); err != nil {
		return nil, cleanup, err
	}
	ln, err := node.InitLocalnet(node.LocalnetOptions{Dir: dir, Validators: o.Validators, ChainID: "kiln-testnet-" + o.Scenario, BlockTime: o.BlockTime})
	if err != nil {
		return nil, cleanup, err
	}
	if o.BlockTime < 100*time.Millisecond {
		// CometBFT's gossip routines sleep 100 ms when they have nothing to send and
		// its connections flush at most every 100 ms, so blocks (three rounds of
		// messages) come no faster than about 3 a second; a short block time (building
		// a chain to --join-height) needs both sooner.
		for _, nd := range ln.Nodes {
			conf, err := node.LoadConfig(nd.Home)
			if err != nil {
				return nil, cleanup, err
			}
			conf.Consensus.PeerGossipSleepDuration = o.BlockTime
			conf.P2P.FlushThrottleTimeout = o.BlockTime
			cfg.WriteConfigFile(filepath.Join(nd.Home, "config", "config.toml"), conf)
		}
	}
	n = &net{o: o, dir: dir, ln: ln, pids: map[int]int{}, paused: map[int]bool{}, stall: stallLimit, began: time.Now()}
	if o.Scenario == "latency" {
		dp, err := newDelayProxies(ln)
		if err != nil {
			return nil, cleanup, fmt.Errorf("delay proxies: %w", err)
		}
		undo = append(undo, dp.close)
		n.delay = dp
		res.Network = "loopback, peers through delay proxies"
	}
	if nsScenarios[o.Scenario] {
		if why := nsAvailable(o.Scenario); why != "" {
			return nil, cleanup, fmt.Errorf("scenario %s needs one network namespace per node, and %s", o.Scenario, why)
		}
		s, err := setupNS(o.Validators)
		if err != nil {
			return nil, cleanup, fmt.Errorf("network namespaces: %w", err)
		}
		undo = append(undo, s.teardown)
		n.ns = s
		res.Network = "netns"
		if err := s.place(dir, &n.ln); err != nil {
			return nil, cleanup, err
		}
		for _, nd := range n.ln.Nodes {
			c, err := client.New(nd.RPC)
			if err != nil {
				return nil, cleanup, err
			}
			n.cl = append(n.cl, c)
		}
	}
	if o.Scenario == "statesync" {
		for _, nd := range ln.Nodes {
			if err := node.WriteAppConfig(nd.Home, node.AppConfig{StateSync: node.StateSyncConfig{SnapshotInterval: 10, SnapshotKeepRecent: 100}}); err != nil {
				return nil, cleanup, err
			}
		}
	}
	undo = append(undo, n.stopAll) // stops the nodes, then the remote signer
	if o.Scenario == "skew" || o.Scenario == "soak" {
		ss, err := n.startSkewSigner(len(ln.Nodes) - 1)
		if err != nil {
			return nil, cleanup, err
		}
		n.skew = ss
		res.Network += ", the last validator signing through a remote signer"
	}
	for i := range ln.Nodes {
		if err := n.start(ctx, i); err != nil {
			return nil, cleanup, err
		}
	}
	ln, err = node.LoadLocalnet(dir) // a node moved to fresh ports at start is written there
	if err != nil {
		return nil, cleanup, err
	}
	n.ln = ln
	n.cl = nil
	for _, nd := range ln.Nodes {
		c, err := client.New(nd.RPC)
		if err != nil {
			return nil, cleanup, err
		}
		n.cl = append(n.cl, c)
	}
	// Up to 5 minutes while blocks keep coming (waitAllPast fails sooner if they stop):
	// a loaded machine starts N node processes slowly.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = n.waitAllPast(wctx, n.all(), 2)
	cancel()
	if err != nil {
		return nil, cleanup, fmt.Errorf("%w%s", err, n.logTails(4))
	}
	n.logf("%d validators producing blocks", len(ln.Nodes))
	return n, cleanup, nil
}

// logTails is the last k lines of every node's log, for an error that needs them.
func (n *net) logTails(k int) string {
	var b strings.Builder
	for _, nd := range n.ln.Nodes {
		raw, err := os.ReadFile(filepath.Join(nd.Home, "node.log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		fmt.Fprintf(&b, "\n%s (%s):", nd.Name, filepath.Join(nd.Home, "node.log"))
		for _, l := range lines[max(0, len(lines)-k):] {
			fmt.Fprintf(&b, "\n  %s", l)
		}
	}
	return b.String()
}

// settleAndCheck lets every node in idx reach one height and checks the history.
func (n *net) settleAndCheck(ctx context.Context, lg *load, idx []int, res *Result) error {
	hs := n.heights(ctx)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err := n.waitAllPast(wctx, idx, maxOf(hs)+1)
	cancel()
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	if err := check(ctx, n, lg, idx, res); err != nil {
		return fmt.Errorf("history check: %w", err)
	}
	return nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(int(float64(n)/d.Seconds()*100)) / 100
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
