// Package daemon is the provider daemon: it registers the provider, bids on orders by
// its price table, serves the tenant API, runs leases' workloads through an executor,
// heartbeats, reports batch completions and stops workloads when their leases close.
//
// Contracts:
//
//   - Every transaction goes through one sender that tracks the account's sequence.
//   - The daemon bids only on orders that fit its free capacity (the chain's view,
//     less its own open bids) at a price within the order's max, and names the GPU
//     model it offers per group.
//   - A lease seen closed on chain is stopped and erased at once, except a finished
//     batch lease (completed or workload_failed), whose outputs and logs stay
//     downloadable for OutputRetention first.
//   - A batch job with any task exiting non-zero is reported failed, never completed.
//   - Stopping the daemon (cancelling Run's context) never stops workloads: a daemon
//     started again on the same state_dir re-attaches to them.
package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kiln-network/kiln/tee"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/gpu"
	apiserver "github.com/kiln-network/kiln/provider/api/server"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Deps are what the daemon is given rather than builds.
type Deps struct {
	// Client reaches a node. Required.
	Client *client.Client
	// Key is the provider account's key. Required.
	Key ed25519.PrivateKey
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// Executor, if set, replaces the one Config.Executor names (tests).
	Executor executor.Executor
	// BeforeSeal goes to the lease manager (lease.Config.BeforeSeal): the demo's
	// cheating provider fakes outputs there. Real daemons leave it nil.
	BeforeSeal func(leaseID uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error)
	// Clock tells the time (output retention, caches, back-off); nil means time.Now.
	// Tests advance a fake clock instead of sleeping.
	Clock func() time.Time
	// Prover solves the chain's matmul challenges; nil means the CPUs (matmul.Solve).
	// NB: the time a challenge takes is always measured with the real clock.
	Prover Prover
	// Producer makes TEE evidence when [tee] attest is on; nil means this machine's
	// guest devices (tee.Device). Tests give a teetest.Signer, whose roots their
	// chain trusts.
	Producer tee.Producer
}

// Daemon is one provider daemon. Create it with New, run it with Run.
type Daemon struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	self types.Address
	// att keeps the provider's TEE attestation on chain ([tee] attest); nil when
	// off, and then the provider never bids on orders requiring a TEE.
	att *attestor

	ready       chan struct{}
	endpoint    string
	metricsAddr string
	certPEM     []byte
	inv         registry.Inventory

	snd     *sender
	chain   *chainSource
	mgr     *lease.Manager
	vault   *vault.Vault
	every   int64 // heartbeat interval in blocks
	metrics *metrics
	gpus    *gpuPool
	wg      sync.WaitGroup // stops and challenge solves in flight
	prover  prover

	mu        sync.Mutex
	height    int64
	st        persisted
	closed    map[uint64]bool        // leases seen closed (or stopped)
	kinds     map[uint64]string      // tracked leases' kinds
	lastHB    map[uint64]int64       // height a heartbeat was last sent
	compSent  map[uint64]int64       // height a completion was last sent
	commSent  map[uint64]int64       // height a work commitment was last sent
	startSent map[uint64]int64       // height a MsgStartLease was last sent
	running   map[uint64]bool        // leases whose workload the manager started
	bidSent   map[uint64]int64       // height a bid was sent, by order
	askedAt   int64                  // height the order book asks were last checked
	sealed    map[uint64]sealedBid   // sealed bids committed and not yet revealed, by order
	probedAt  int64                  // height RTT probes were last sent
	noBid     map[uint64]bool        // orders this provider will never bid on
	locks     map[uint64]*sync.Mutex // per lease: Deploy vs Stop
	members   map[uint64]*member     // cluster members, by lease
	ctx       context.Context

	// clusterWhy says why this provider cannot run cluster members ("" when it can):
	// it then bids on no cluster order.
	clusterWhy string
	// holdBlocks is how long a held rank waits for its cluster's next epoch: the
	// chain's heartbeat timeout (a lost provider's lease closes after it) and a margin.
	holdBlocks int64
}

// New checks cfg and deps; Run does the work.
func New(cfg Config, deps Deps) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Client == nil || len(deps.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("provider daemon: client and key must be set")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	self := types.AddressFromPubKey(deps.Key.Public().(ed25519.PublicKey))
	return &Daemon{cfg: cfg, deps: deps, log: log.With("component", "provider", "provider", self.String()), self: self,
		ready: make(chan struct{}), closed: map[uint64]bool{}, kinds: map[uint64]string{}, lastHB: map[uint64]int64{},
		compSent: map[uint64]int64{}, commSent: map[uint64]int64{}, startSent: map[uint64]int64{}, running: map[uint64]bool{}, bidSent: map[uint64]int64{}, noBid: map[uint64]bool{}, sealed: map[uint64]sealedBid{}, locks: map[uint64]*sync.Mutex{}, members: map[uint64]*member{},
		metrics: newMetrics(), prover: prover{sols: map[uint64]*solved{}}}, nil
}

// now is the daemon's clock.
func (d *Daemon) now() time.Time { return d.deps.Clock() }

// Ready is closed once the daemon is registered and serves the tenant API.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Address returns the provider's account address.
func (d *Daemon) Address() types.Address { return d.self }

// Endpoint returns the https URL registered on chain; valid once Ready.
func (d *Daemon) Endpoint() string { return d.endpoint }

// MetricsAddr returns the HOST:PORT the Prometheus metrics are served on, with the
// port it got when metrics_listen asked for port 0; "" when metrics are off. Valid
// once Ready.
func (d *Daemon) MetricsAddr() string { return d.metricsAddr }

// ProviderCertPEM returns the TLS certificate registered on chain, which tenants pin;
// valid once Ready.
func (d *Daemon) ProviderCertPEM() []byte { return d.certPEM }

// Run starts the daemon and runs it until ctx ends. It returns an error if start-up
// fails; cancelling ctx returns nil and leaves workloads running for the next start.
func (d *Daemon) Run(ctx context.Context) error {
	d.ctx = ctx
	dir := d.cfg.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	inv, uuids, err := d.cfg.buildInventory(ctx)
	if err != nil {
		return err
	}
	ex, err := d.executor()
	if err != nil {
		return err
	}
	fp, err := ex.Fingerprint(ctx)
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	// NB: measured, never declared: the market leases this provider only what its
	// executor can run.
	inv.Runtime = registry.Runtime{Executor: fp.Driver, Containers: fp.Containers, GPUs: fp.GPUs}
	if len(inv.GPUs) > 0 && !fp.GPUs {
		d.log.Warn("the executor cannot attach GPUs to workloads: this provider will not be leased GPU orders", "executor", fp.Driver, "attributes", fp.Attributes)
	}
	d.inv = inv
	d.gpus = newGPUPool(inv, uuids)
	if d.st, err = loadState(dir); err != nil {
		return err
	}
	d.gpus.restore(d.st.GPUs)
	if d.snd, err = newSender(ctx, d.deps.Client, d.deps.Key, d.log); err != nil {
		return fmt.Errorf("connect to node: %w", err)
	}
	if d.cfg.TEE.Attest {
		prod := d.deps.Producer
		if prod == nil {
			prod = tee.Device{}
		}
		// NB: before registering: a machine that cannot produce evidence fails the
		// start before anything goes on chain.
		if d.att, err = newAttestor(d.cfg.TEE, prod, dir, d); err != nil {
			return err
		}
	} else {
		d.log.Info("confidential compute: not attesting ([tee] attest = false): no TEE orders are taken", "evidence", tee.Probe().Message)
	}
	mp, err := d.deps.Client.MarketParams(ctx)
	if err != nil {
		return fmt.Errorf("market params: %w", err)
	}
	d.every = d.cfg.HeartbeatEvery
	if d.every == 0 {
		d.every = mp.HeartbeatIntervalBlocks
	}
	// 10 blocks past the timeout: the close lands, the order re-opens and the next
	// epoch begins within a few blocks of it.
	d.holdBlocks = mp.HeartbeatTimeoutBlocks + 10
	if d.clusterWhy = d.clusterSupport(ex); d.clusterWhy != "" {
		d.log.Info("cluster orders: not bidding", "why", d.clusterWhy)
	}

	v, err := vault.Open(vault.Config{Dir: filepath.Join(dir, "vault"), Logger: d.log})
	if err != nil {
		return err
	}
	lc := lease.DefaultConfig()
	lc.Dir, lc.Logger = filepath.Join(dir, "leases"), d.log
	lc.OnComplete = d.onComplete
	lc.OnStart = d.onStart
	lc.Hold = d.holdMember
	lc.BeforeSeal = d.deps.BeforeSeal
	if d.att != nil {
		lc.Unseal = d.att.id
	}
	d.vault = v
	lc.AssignGPUs = d.assignGPUs
	lc.Images, _ = d.cfg.imagePolicy() // NB: Validate has checked it
	if d.mgr, err = lease.New(lc, ex, v); err != nil {
		return err
	}
	defer d.mgr.Close()
	defer d.closeMembers()
	// NB: Register, not MustRegister: a daemon run again keeps its first collectors.
	d.metrics.reg.Register(newWorkloadCollector(d.mgr))
	if d.cfg.Inventory.Detect {
		d.metrics.reg.Register(newGPUCollector(gpu.Options{DiskPath: d.cfg.StateDir}))
	}

	// NB: both listeners are bound before the provider registers, so that a taken
	// port fails the start before anything goes on chain; port 0 gets a free port,
	// and the endpoint registered names the one the API got.
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for the tenant API on %s (listen): %w", d.cfg.Listen, err)
	}
	defer ln.Close()
	d.endpoint = d.cfg.endpointFor(ln.Addr())
	apiLn := net.Listener(countingListener{Listener: ln, m: d.metrics})
	var mln net.Listener
	if d.cfg.MetricsListen != "" {
		if mln, err = net.Listen("tcp", d.cfg.MetricsListen); err != nil {
			return fmt.Errorf("listen for metrics on %s (metrics_listen): %w", d.cfg.MetricsListen, err)
		}
		defer mln.Close()
		d.metricsAddr = mln.Addr().String()
	}
	pair, err := d.loadOrCreateCert()
	if err != nil {
		return err
	}
	if err := d.register(ctx); err != nil {
		return err
	}
	d.chain = newChainSource(d.deps.Client, d.self, d.isClosed, d.now)

	known, err := d.mgr.Recover(ctx)
	if err != nil {
		return err
	}
	d.reconcile(ctx, known, v)
	d.reattachMembers(ctx)

	ac := apiserver.DefaultConfig()
	ac.Certificate, ac.Logger = pair, d.log
	if n, _ := limit("max_input_bytes", d.cfg.MaxInputBytes); n > 0 {
		ac.MaxInputBytes = n // NB: Validate has checked the field
	}
	if n, _ := limit("max_image_bytes", d.cfg.MaxImageBytes); n > 0 {
		ac.MaxImageBytes = n
	}
	srv, err := apiserver.NewServer(ac, apiserver.Deps{Leases: d.chain, Certs: d.chain, Runner: runner{d.mgr, d}, Vault: v, Verifiers: d.chain})
	if err != nil {
		return err
	}
	go func() {
		if err := srv.Serve(apiLn); err != nil {
			d.log.Error("tenant API stopped", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if mln != nil {
		ms := &http.Server{Handler: promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := ms.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				d.log.Error("metrics server stopped", "err", err)
			}
		}()
		defer ms.Close()
	}
	d.log.Info("provider ready", "endpoint", d.endpoint, "metrics", d.metricsAddr, "executor", fp.Driver, "gpus", inv.TotalGPUs(), "heartbeat_every", d.every)
	close(d.ready)

	err = d.loop(ctx)
	d.wg.Wait()
	d.save()
	return err
}

// executor builds the executor Config.Executor names from its registered
// factory, or returns the one Deps gives.
func (d *Daemon) executor() (executor.Executor, error) {
	if d.deps.Executor != nil {
		return d.deps.Executor, nil
	}
	images, _ := d.cfg.imagePolicy() // NB: Validate has checked it
	kind := d.cfg.Executor.Kind
	ex, err := executor.New(kind, executor.Params{
		StateDir: d.cfg.StateDir, Settings: d.cfg.Executor.Settings(kind), Images: images, Logger: d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("executor %s: %w", kind, err)
	}
	return ex, nil
}

// loadOrCreateCert loads the provider's TLS pair from state_dir/tls, or makes a new one
// when there is none, it expires within a week or it does not name the endpoint's host.
func (d *Daemon) loadOrCreateCert() (tls.Certificate, error) {
	dir := filepath.Join(d.cfg.StateDir, "tls")
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	hosts := certHosts(d.endpoint, d.cfg.Listen)
	if cb, err := os.ReadFile(cf); err == nil {
		if kb, err := os.ReadFile(kf); err == nil {
			if pair, err := tls.X509KeyPair(cb, kb); err == nil {
				c, err := certpem.Parse(cb)
				// 7 days: renew well before tenants' clients would refuse it.
				if err == nil && c.NotAfter.Sub(d.now()) > 7*24*time.Hour && c.VerifyHostname(hosts[0]) == nil {
					d.certPEM = cb
					return pair, nil
				}
			}
		}
	}
	// 1 year: the registry record is updated with the new certificate on renewal.
	cb, kb, err := certpem.Generate(hosts[0], hosts, 365*24*time.Hour, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.WriteFile(kf, kb, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("write TLS key: %w", err)
	}
	if err := os.WriteFile(cf, cb, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("write TLS certificate: %w", err)
	}
	d.certPEM = cb
	return tls.X509KeyPair(cb, kb)
}

// register registers the provider, or updates its record where the endpoint,
// certificate or inventory changed.
func (d *Daemon) register(ctx context.Context) error {
	c := d.deps.Client
	var prov registry.Provider
	err := c.QueryJSON(ctx, client.PathProvider(d.self), &prov)
	var qe *client.QueryError
	switch {
	case errors.As(err, &qe) && qe.Code == types.CodeNotFound:
		stake, _ := types.ParseCoin(d.cfg.Stake)
		msg := &registry.MsgRegisterProvider{Owner: d.self, Endpoint: d.endpoint, CertPEM: d.certPEM, Inventory: d.inv, Stake: stake}
		if _, err := d.snd.sendCommit(ctx, msg); err != nil {
			return fmt.Errorf("register provider %s: %w", d.self, err)
		}
		d.log.Info("registered", "endpoint", d.endpoint, "stake", stake)
	case err != nil:
		return fmt.Errorf("look up provider %s: %w", d.self, err)
	default:
		m := &registry.MsgUpdateProvider{Owner: d.self}
		if prov.Endpoint != d.endpoint {
			m.Endpoint = d.endpoint
		}
		if prov.CertPEM != string(d.certPEM) {
			m.CertPEM = d.certPEM
		}
		a, _ := json.Marshal(prov.Inventory)
		b, _ := json.Marshal(d.inv)
		if string(a) != string(b) {
			m.Inventory = &d.inv
		}
		if m.Endpoint == "" && m.CertPEM == nil && m.Inventory == nil {
			d.log.Info("registration reused", "endpoint", d.endpoint)
			break
		}
		if _, err := d.snd.sendCommit(ctx, m); err != nil {
			return fmt.Errorf("update provider %s: %w", d.self, err)
		}
		d.log.Info("registration updated", "endpoint", d.endpoint, "cert", m.CertPEM != nil, "inventory", m.Inventory != nil)
	}
	return nil
}

// reconcile runs once at start: leases the manager, the vault or the saved state know
// are tracked if still active on chain for this provider, kept for retention if
// completed, and stopped and erased otherwise.
func (d *Daemon) reconcile(ctx context.Context, known []uint64, v *vault.Vault) {
	ids := map[uint64]bool{}
	deployed := map[uint64]bool{}
	for _, id := range known {
		ids[id] = true
		deployed[id] = true
	}
	if vl, err := v.Leases(); err == nil {
		for _, id := range vl {
			ids[id] = true
		}
	}
	d.mu.Lock()
	for id := range d.st.Leases {
		ids[id] = true
	}
	for id := range d.st.Retain {
		ids[id] = true
	}
	for id := range d.st.Completions {
		ids[id] = true
	}
	d.mu.Unlock()
	for id := range ids {
		l, err := d.deps.Client.Lease(ctx, id)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			d.log.Error("reconcile: look up lease; keeping it for now", "lease", id, "err", err)
			continue
		}
		mine := err == nil && l.Provider == d.self
		switch {
		case mine && l.State == market.LeaseActive:
			d.mu.Lock()
			d.st.Leases[id] = l.Attempt
			d.kinds[id] = l.Kind
			d.running[id] = deployed[id]
			d.mu.Unlock()
			d.log.Info("lease recovered", "lease", id, "attempt", l.Attempt, "running", deployed[id])
		case mine && l.Kind == market.KindBatch && retained(l.CloseReason) && d.cfg.OutputRetention > 0:
			d.mu.Lock()
			if _, ok := d.st.Retain[id]; !ok {
				d.st.Retain[id] = d.now().Add(time.Duration(d.cfg.OutputRetention))
			}
			delete(d.st.Leases, id)
			delete(d.st.Completions, id)
			d.closed[id] = true
			d.mu.Unlock()
		default:
			reason := "not found on chain"
			if err == nil {
				reason = l.CloseReason
			}
			d.mu.Lock()
			delete(d.st.Leases, id)
			delete(d.st.Completions, id)
			delete(d.st.Retain, id)
			d.closed[id] = true
			d.mu.Unlock()
			d.stop(id, "reconcile: "+reason)
		}
	}
	d.save()
}

func (d *Daemon) save() {
	d.mu.Lock()
	b, _ := json.Marshal(d.st)
	d.mu.Unlock()
	var cp persisted
	json.Unmarshal(b, &cp)
	if err := saveState(d.cfg.StateDir, cp); err != nil {
		d.log.Error("save state", "err", err)
	}
}

func (d *Daemon) isClosed(id uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed[id]
}

func (d *Daemon) leaseLock(id uint64) *sync.Mutex {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.locks[id]
	if !ok {
		l = &sync.Mutex{}
		d.locks[id] = l
	}
	return l
}

// stop stops and erases a lease's workload and data in the background.
func (d *Daemon) stop(id uint64, why string) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		l := d.leaseLock(id)
		l.Lock()
		defer l.Unlock()
		// NB: not the daemon's context: a stop begun must finish even while the
		// daemon shuts down, or a closed lease's workload would run on.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.mgr.Stop(ctx, id); err != nil {
			d.metrics.executorErrors.WithLabelValues("stop").Inc()
			d.log.Error("stop lease", "lease", id, "why", why, "err", err)
		} else {
			d.log.Info("lease stopped", "lease", id, "why", why)
		}
		d.dropMember(id)
		d.freeGPUs(id)
		d.metrics.stopped.Inc()
	}()
}

// loop polls the node for new blocks and runs step once per height.
func (d *Daemon) loop(ctx context.Context) error {
	poll := time.Duration(d.cfg.PollInterval)
	t := time.NewTimer(poll)
	defer t.Stop()
	var last int64
	down := nodeDown{poll: poll, now: d.now}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// NB: the app's committed height, not CometBFT's latest block: the latter can
		// name a block the app has not applied yet, and a step run then would miss
		// that block's orders (and their one-block bid window).
		h, err := d.deps.Client.AppHeight(ctx)
		if ctx.Err() != nil {
			return nil
		}
		t.Reset(down.next(d.log, err))
		if err != nil {
			continue
		}
		if h <= last {
			continue
		}
		last = h
		d.mu.Lock()
		d.height = h
		d.mu.Unlock()
		d.step(ctx, h)
	}
}

// nodeDown backs off polling while the node does not answer, and logs the outage
// once when it starts, once a minute while it lasts, and once when it ends, rather
// than every poll.
type nodeDown struct {
	poll   time.Duration
	now    func() time.Time
	since  time.Time // zero while the node answers
	logged time.Time
	wait   time.Duration
}

// maxNodeBackoff bounds the wait between polls of a node that does not answer: a
// node back within it is seen within a couple of seconds.
const maxNodeBackoff = 2 * time.Second

// next records the outcome of one poll and returns how long to wait for the next.
func (n *nodeDown) next(log *slog.Logger, err error) time.Duration {
	now := n.now()
	if err == nil {
		if !n.since.IsZero() {
			log.Info("node answers again", "down_for", now.Sub(n.since).Round(time.Millisecond))
		}
		n.since, n.wait = time.Time{}, 0
		return n.poll
	}
	switch {
	case n.since.IsZero():
		n.since, n.logged, n.wait = now, now, n.poll
		log.Warn("node does not answer; retrying with back-off", "err", err)
	case now.Sub(n.logged) >= time.Minute:
		n.logged = now
		log.Warn("node still does not answer", "down_for", now.Sub(n.since).Round(time.Second), "err", err)
	}
	n.wait = max(n.poll, min(2*n.wait, maxNodeBackoff))
	return n.wait
}

// step is the daemon's work for a new block h: challenges first (their deadlines are
// the chain's), the attestation, bids (they race the next block's proposal), then leases: track new
// ones, stop closed ones, heartbeat, retry completions, erase retained outputs whose
// time is up.
func (d *Daemon) step(ctx context.Context, h int64) {
	if err := d.challenges(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("challenges", "height", h, "err", err)
	}
	if err := d.probe(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("rtt probes", "height", h, "err", err)
	}
	if d.att != nil {
		// NB: before bidding: the bidder reads the attestation this reads.
		if err := d.att.step(ctx, h); err != nil && ctx.Err() == nil {
			d.log.Warn("attestation", "height", h, "err", err)
		}
	}
	if err := d.postAsks(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("order book asks", "height", h, "err", err)
	}
	if err := d.bid(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("bidding", "height", h, "err", err)
	}
	if err := d.leases(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("lease upkeep", "height", h, "err", err)
	}
	d.resendCommits(ctx, h)
	if err := d.memberStep(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("cluster members", "height", h, "err", err)
	}
}
