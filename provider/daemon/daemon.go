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
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/docker"
	"github.com/kiln-network/kiln/provider/executor/process"
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
	// Executor, if set, replaces the one Config.Executor names (tests); WorkDirs must
	// then say where it keeps a lease's in/ and out/.
	Executor executor.Executor
	// WorkDirs goes with Executor (see lease.Config.WorkDirs).
	WorkDirs func(execLeaseID string) (inDir, outDir string)
}

// Daemon is one provider daemon. Create it with New, run it with Run.
type Daemon struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	self types.Address

	ready       chan struct{}
	endpoint    string
	metricsAddr string
	certPEM     []byte
	inv         registry.Inventory

	snd     *sender
	chain   *chainSource
	mgr     *lease.Manager
	every   int64 // heartbeat interval in blocks
	metrics *metrics
	gpus    *gpuPool
	wg      sync.WaitGroup // stops in flight

	mu       sync.Mutex
	height   int64
	st       persisted
	closed   map[uint64]bool        // leases seen closed (or stopped)
	kinds    map[uint64]string      // tracked leases' kinds
	lastHB   map[uint64]int64       // height a heartbeat was last sent
	compSent map[uint64]int64       // height a completion was last sent
	bidSent  map[uint64]int64       // height a bid was sent, by order
	noBid    map[uint64]bool        // orders this provider will never bid on
	locks    map[uint64]*sync.Mutex // per lease: Deploy vs Stop
	ctx      context.Context
}

// New checks cfg and deps; Run does the work.
func New(cfg Config, deps Deps) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Client == nil || len(deps.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("provider daemon: client and key must be set")
	}
	if deps.Executor != nil && deps.WorkDirs == nil {
		return nil, errors.New("provider daemon: an executor given in deps needs its work dirs")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	self := types.AddressFromPubKey(deps.Key.Public().(ed25519.PublicKey))
	return &Daemon{cfg: cfg, deps: deps, log: log.With("component", "provider", "provider", self.String()), self: self,
		ready: make(chan struct{}), closed: map[uint64]bool{}, kinds: map[uint64]string{}, lastHB: map[uint64]int64{},
		compSent: map[uint64]int64{}, bidSent: map[uint64]int64{}, noBid: map[uint64]bool{}, locks: map[uint64]*sync.Mutex{},
		metrics: newMetrics()}, nil
}

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
	d.inv = inv
	d.gpus = newGPUPool(inv, uuids)
	if d.st, err = loadState(dir); err != nil {
		return err
	}
	d.gpus.restore(d.st.GPUs)
	if d.snd, err = newSender(ctx, d.deps.Client, d.deps.Key, d.log); err != nil {
		return fmt.Errorf("connect to node: %w", err)
	}
	mp, err := d.deps.Client.MarketParams(ctx)
	if err != nil {
		return fmt.Errorf("market params: %w", err)
	}
	d.every = d.cfg.HeartbeatEvery
	if d.every == 0 {
		d.every = mp.HeartbeatIntervalBlocks
	}

	ex, workDirs, err := d.executor()
	if err != nil {
		return err
	}
	v, err := vault.Open(vault.Config{Dir: filepath.Join(dir, "vault"), Logger: d.log})
	if err != nil {
		return err
	}
	lc := lease.DefaultConfig()
	lc.Dir, lc.WorkDirs, lc.Logger = filepath.Join(dir, "leases"), workDirs, d.log
	lc.OnComplete = d.onComplete
	lc.AssignGPUs = d.assignGPUs
	if d.mgr, err = lease.New(lc, ex, v); err != nil {
		return err
	}
	defer d.mgr.Close()

	// NB: both listeners are bound before the provider registers, so that a taken
	// port fails the start before anything goes on chain; port 0 gets a free port,
	// and the endpoint registered names the one the API got.
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for the tenant API on %s (listen): %w", d.cfg.Listen, err)
	}
	defer ln.Close()
	d.endpoint = d.cfg.endpointFor(ln.Addr())
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
	d.chain = newChainSource(d.deps.Client, d.self, d.isClosed)

	known, err := d.mgr.Recover(ctx)
	if err != nil {
		return err
	}
	d.reconcile(ctx, known, v)

	ac := api.DefaultConfig()
	ac.Certificate, ac.Logger = pair, d.log
	if n, _ := limit("max_input_bytes", d.cfg.MaxInputBytes); n > 0 {
		ac.MaxInputBytes = n // NB: Validate has checked the field
	}
	if n, _ := limit("max_image_bytes", d.cfg.MaxImageBytes); n > 0 {
		ac.MaxImageBytes = n
	}
	srv, err := api.NewServer(ac, api.Deps{Leases: d.chain, Certs: d.chain, Runner: runner{d.mgr, d}, Vault: v})
	if err != nil {
		return err
	}
	go func() {
		if err := srv.Serve(ln); err != nil {
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
	d.log.Info("provider ready", "endpoint", d.endpoint, "metrics", d.metricsAddr, "executor", d.cfg.Executor, "gpus", inv.TotalGPUs(), "heartbeat_every", d.every)
	close(d.ready)

	err = d.loop(ctx)
	d.wg.Wait()
	d.save()
	return err
}

func (d *Daemon) executor() (executor.Executor, func(string) (string, string), error) {
	if d.deps.Executor != nil {
		return d.deps.Executor, d.deps.WorkDirs, nil
	}
	switch d.cfg.Executor {
	case "docker":
		c := docker.DefaultConfig()
		c.DataDir, c.Logger = filepath.Join(d.cfg.StateDir, "docker"), d.log
		if d.cfg.DockerNamespace != "" {
			c.Namespace = d.cfg.DockerNamespace
		}
		if abs, err := filepath.Abs(c.DataDir); err == nil {
			c.DataDir = abs
		}
		ex, err := docker.New(c)
		return ex, lease.DockerWorkDirs(c.DataDir), err
	default:
		c := process.DefaultConfig()
		c.AllowUnisolated, c.Dir, c.Logger = d.cfg.AllowUnisolated, filepath.Join(d.cfg.StateDir, "exec"), d.log
		ex, err := process.New(c)
		return ex, lease.ProcessWorkDirs(c.Dir), err
	}
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
				c, err := api.ParseCertPEM(cb)
				// 7 days: renew well before tenants' clients would refuse it.
				if err == nil && time.Until(c.NotAfter) > 7*24*time.Hour && c.VerifyHostname(hosts[0]) == nil {
					d.certPEM = cb
					return pair, nil
				}
			}
		}
	}
	// 1 year: the registry record is updated with the new certificate on renewal.
	cb, kb, err := api.GenerateServerCert(hosts, 365*24*time.Hour)
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
	err := c.QueryJSON(ctx, "/registry/provider/"+d.self.String(), &prov)
	var qe *client.QueryError
	switch {
	case errors.As(err, &qe) && qe.Code == types.CodeNotFound:
		stake, _ := types.ParseCoin(d.cfg.Stake)
		msg := &registry.MsgRegisterProvider{Owner: d.self, Endpoint: d.endpoint, CertPEM: d.certPEM, Inventory: d.inv, Stake: stake}
		if _, err := c.Send(ctx, d.deps.Key, client.SignOptions{}, msg); err != nil {
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
		if _, err := c.Send(ctx, d.deps.Key, client.SignOptions{}, m); err != nil {
			return fmt.Errorf("update provider %s: %w", d.self, err)
		}
		d.log.Info("registration updated", "endpoint", d.endpoint, "cert", m.CertPEM != nil, "inventory", m.Inventory != nil)
	}
	d.snd.mu.Lock()
	d.snd.stale = true // NB: the registration tx used a sequence number behind the sender's back
	d.snd.mu.Unlock()
	return nil
}

// reconcile runs once at start: leases the manager, the vault or the saved state know
// are tracked if still active on chain for this provider, kept for retention if
// completed, and stopped and erased otherwise.
func (d *Daemon) reconcile(ctx context.Context, known []uint64, v *vault.Vault) {
	ids := map[uint64]bool{}
	for _, id := range known {
		ids[id] = true
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
			d.mu.Unlock()
			d.log.Info("lease recovered", "lease", id, "attempt", l.Attempt)
		case mine && l.Kind == market.KindBatch && retained(l.CloseReason) && d.cfg.OutputRetention > 0:
			d.mu.Lock()
			if _, ok := d.st.Retain[id]; !ok {
				d.st.Retain[id] = time.Now().Add(time.Duration(d.cfg.OutputRetention))
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
			d.log.Error("stop lease", "lease", id, "why", why, "err", err)
		} else {
			d.log.Info("lease stopped", "lease", id, "why", why)
		}
		d.gpus.release(id)
		d.mu.Lock()
		d.st.GPUs = d.gpus.held()
		d.mu.Unlock()
		d.save()
		d.metrics.stopped.Inc()
	}()
}

// runner guards Deploy: a lease the daemon saw close never starts.
type runner struct {
	*lease.Manager
	d *Daemon
}

func (r runner) Deploy(ctx context.Context, l api.LeaseInfo, m api.Manifest) error {
	lk := r.d.leaseLock(l.ID)
	lk.Lock()
	defer lk.Unlock()
	if r.d.isClosed(l.ID) {
		return fmt.Errorf("deploy lease %d: the lease closed on chain", l.ID)
	}
	if err := r.Manager.Deploy(ctx, l, m); err != nil {
		return err
	}
	// NB: track the lease now, not only when the block loop next lists it active: a
	// lease that closes within a block or two (a short job, a quick close) would
	// otherwise never be seen, and its workload never stopped.
	if ml, err := r.d.deps.Client.Lease(ctx, l.ID); err == nil && ml.Provider == r.d.self && ml.State == market.LeaseActive {
		r.d.mu.Lock()
		r.d.trackLocked(ml)
		r.d.mu.Unlock()
		r.d.save()
	}
	r.d.metrics.deployed.Inc()
	r.d.log.Info("lease running", "lease", l.ID, "services", len(m.Services))
	return nil
}

// LoadImage refuses a lease the daemon saw close. The upload runs without the
// lease's lock, which would hold a Stop for as long as the transfer; a lease
// that closed meanwhile is stopped again, which releases the image.
func (r runner) LoadImage(ctx context.Context, id uint64, rd io.Reader, maxBytes int64, wantID string) (string, error) {
	if r.d.isClosed(id) {
		return "", fmt.Errorf("load image for lease %d: the lease closed on chain", id)
	}
	img, err := r.Manager.LoadImage(ctx, id, rd, maxBytes, wantID)
	if err != nil {
		return "", err
	}
	if r.d.isClosed(id) {
		r.d.stop(id, "closed during an image upload")
		return "", fmt.Errorf("load image for lease %d: the lease closed on chain", id)
	}
	return img, nil
}

// onComplete is the lease manager's OnComplete: it records the completion (so a
// restart resends it) and sends MsgCompleteLease at once.
func (d *Daemon) onComplete(id uint64, root [32]byte, codes map[string]int) {
	d.mu.Lock()
	// A non-zero (or unknown, -1) exit code of any task makes the job failed.
	failed := false
	for _, c := range codes {
		failed = failed || c != 0
	}
	d.st.Completions[id] = completionRecord(root, failed)
	h := d.height
	d.mu.Unlock()
	d.save()
	d.log.Info("lease completed locally", "lease", id, "outputs_root", hex.EncodeToString(root[:]), "exit_codes", codes)
	ctx := d.ctx
	if ctx == nil || ctx.Err() != nil {
		return // the next start resends it
	}
	if err := d.snd.send(ctx, &market.MsgCompleteLease{Provider: d.self, LeaseID: id, OutputHash: root[:], Failed: failed}); err != nil {
		d.log.Error("send completion; will retry", "lease", id, "err", err)
		return
	}
	d.metrics.completions.Inc()
	d.mu.Lock()
	d.compSent[id] = h
	d.mu.Unlock()
}

// loop polls the node for new blocks and runs step once per height.
func (d *Daemon) loop(ctx context.Context) error {
	t := time.NewTicker(time.Duration(d.cfg.PollInterval))
	defer t.Stop()
	var last int64
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
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("node status", "err", err)
			}
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

// step is the daemon's work for a new block h: bids first (they race the next
// block's proposal), then leases: track new ones, stop closed ones, heartbeat, retry
// completions, erase retained outputs whose time is up.
func (d *Daemon) step(ctx context.Context, h int64) {
	if err := d.bid(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("bidding", "height", h, "err", err)
	}
	if err := d.leases(ctx, h); err != nil && ctx.Err() == nil {
		d.log.Warn("lease upkeep", "height", h, "err", err)
	}
}

// bid sends one bid per open order that fits and pays.
func (d *Daemon) bid(ctx context.Context, h int64) error {
	c := d.deps.Client
	orders, err := c.Orders(ctx, market.OrderOpen, types.Address{})
	if err != nil {
		return err
	}
	open := map[uint64]bool{}
	var cands []market.Order
	d.mu.Lock()
	for _, o := range orders {
		open[o.ID] = true
		// NB: CheckTx runs at h+1, the first height an order placed at h takes bids.
		if d.noBid[o.ID] || o.BidOpenHeight > h+1 {
			continue
		}
		if s, ok := d.bidSent[o.ID]; ok && h-s < 3 {
			continue // sent recently: it is on chain or about to be
		}
		cands = append(cands, o)
	}
	for id := range d.bidSent {
		if !open[id] {
			delete(d.bidSent, id)
		}
	}
	for id := range d.noBid {
		if !open[id] {
			delete(d.noBid, id)
		}
	}
	d.mu.Unlock()
	if len(cands) == 0 {
		return nil
	}
	mine, err := c.Bids(ctx, 0, d.self)
	if err != nil {
		return err
	}
	capr, err := c.ProviderCapacity(ctx, d.self)
	if err != nil {
		return err
	}
	// NB: capacity held by our open bids counts as used, so every bid we make can be
	// honoured if it wins.
	used := capr.Used
	have := map[uint64]bool{}
	for _, b := range mine {
		have[b.OrderID] = true
		used = used.Add(b.Usage)
	}
	var msgs []types.Msg
	var ids []uint64
	for _, o := range cands {
		if have[o.ID] {
			continue
		}
		never := func(why string, args ...any) {
			d.log.Debug("no bid", append([]any{"order", o.ID, "why", why}, args...)...)
			d.mu.Lock()
			d.noBid[o.ID] = true
			d.mu.Unlock()
			d.metrics.skipped.Inc()
		}
		if excluded(o, d.self) {
			never("excluded after an earlier lease of this order")
			continue
		}
		need, choices, static, inUse := market.Fit(o.Groups, nil, d.inv, used)
		if len(static) > 0 {
			never("does not fit the inventory", "constraint", static[0].String())
			continue
		}
		if len(inUse) > 0 {
			d.log.Debug("no bid this block", "order", o.ID, "why", inUse[0].String())
			continue
		}
		price, err := d.cfg.Pricing.Price(o.Groups, choices)
		if err != nil {
			never(err.Error())
			continue
		}
		if price > o.MaxPrice {
			never("max price below ours", "price", price, "max_price", o.MaxPrice)
			continue
		}
		models := make([]string, len(choices))
		for i, ch := range choices {
			models[i] = ch.Model
		}
		msgs = append(msgs, &market.MsgCreateBid{Provider: d.self, OrderID: o.ID, Price: price, GPUModels: models})
		ids = append(ids, o.ID)
		used = used.Add(need)
		d.log.Info("bid", "order", o.ID, "price", price, "gpus", models, "height", h)
	}
	if len(msgs) == 0 {
		return nil
	}
	d.mu.Lock()
	for _, id := range ids {
		d.bidSent[id] = h
	}
	d.mu.Unlock()
	errs := d.snd.sendEach(ctx, msgs)
	d.metrics.bids.Add(float64(len(msgs) - len(errs)))
	for i, err := range errs {
		d.log.Warn("bid refused", "order", ids[i], "err", err)
	}
	return nil
}

func excluded(o market.Order, p types.Address) bool {
	for _, x := range o.Excluded {
		if x == p {
			return true
		}
	}
	return false
}

// leases keeps the daemon's leases in step with the chain.
func (d *Daemon) leases(ctx context.Context, h int64) error {
	c := d.deps.Client
	active, err := c.Leases(ctx, market.LeaseFilter{State: market.LeaseActive, Provider: d.self})
	if err != nil {
		return err
	}
	now := map[uint64]market.Lease{}
	var msgs []types.Msg
	var what []string
	// A service whose workload died must not go on heartbeating (and billing): it is
	// reported failed, which closes its lease with reason workload_failed.
	failedSvc := map[uint64]bool{}
	for _, l := range active {
		if l.Kind == market.KindService && d.mgr != nil {
			if st, err := d.mgr.Status(ctx, l.ID); err == nil && st.State == api.StateFailed {
				failedSvc[l.ID] = true
			}
		}
	}
	d.mu.Lock()
	for _, l := range active {
		now[l.ID] = l
		if failedSvc[l.ID] {
			if s, sent := d.compSent[l.ID]; !sent || h-s >= 3 {
				msgs = append(msgs, &market.MsgCompleteLease{Provider: d.self, LeaseID: l.ID, Failed: true})
				what = append(what, fmt.Sprintf("service %d failed", l.ID))
				d.compSent[l.ID] = h
			}
			continue
		}
		d.trackLocked(l)
		if root, ok := d.st.Completions[l.ID]; ok {
			if s, sent := d.compSent[l.ID]; !sent || h-s >= 3 {
				b, failed := parseCompletion(root)
				msgs = append(msgs, &market.MsgCompleteLease{Provider: d.self, LeaseID: l.ID, OutputHash: b, Failed: failed})
				what = append(what, fmt.Sprintf("complete %d", l.ID))
				d.compSent[l.ID] = h
				continue // NB: the completion closes the lease; a heartbeat beside it would fail
			}
		}
		if h-max(l.LastHeartbeat, d.lastHB[l.ID]) >= d.every {
			msgs = append(msgs, &market.MsgHeartbeat{Provider: d.self, LeaseID: l.ID})
			what = append(what, fmt.Sprintf("heartbeat %d", l.ID))
			d.lastHB[l.ID] = h
		}
	}
	var gone []uint64
	for id := range d.st.Leases {
		if _, ok := now[id]; !ok {
			gone = append(gone, id)
		}
	}
	var expired []uint64
	for id, at := range d.st.Retain {
		if time.Now().After(at) {
			expired = append(expired, id)
			delete(d.st.Retain, id)
		}
	}
	d.mu.Unlock()

	if len(msgs) > 0 {
		errs := d.snd.sendEach(ctx, msgs)
		for i, err := range errs {
			d.log.Warn("tx refused", "msg", what[i], "err", err)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	changed := len(expired) > 0
	for _, id := range gone {
		l, err := c.Lease(ctx, id)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			return err
		}
		if err == nil && l.State == market.LeaseActive && l.Provider == d.self {
			continue // became active between the two queries: next block
		}
		changed = true
		d.closeLocal(id, l)
	}
	for _, id := range expired {
		d.stop(id, "output retention over")
	}
	if changed {
		d.save()
	}
	return nil
}

// closeLocal handles a tracked lease the chain closed (or gave to another attempt).
func (d *Daemon) closeLocal(id uint64, l market.Lease) {
	d.mu.Lock()
	att := d.st.Leases[id]
	delete(d.st.Leases, id)
	delete(d.st.Completions, id)
	delete(d.lastHB, id)
	delete(d.compSent, id)
	kind := d.kinds[id]
	delete(d.kinds, id)
	d.closed[id] = true
	keep := l.Attempt == att && l.Provider == d.self && kind == market.KindBatch && retained(l.CloseReason) && d.cfg.OutputRetention > 0
	if keep {
		d.st.Retain[id] = time.Now().Add(time.Duration(d.cfg.OutputRetention))
	}
	d.mu.Unlock()
	d.chain.forget(id)
	d.log.Info("lease closed on chain", "lease", id, "reason", l.CloseReason, "height", l.ClosedHeight, "outputs_kept", keep)
	if !keep {
		d.stop(id, "lease closed: "+l.CloseReason)
	}
}

// metrics are the daemon's Prometheus counters.
type metrics struct {
	reg                                                *prometheus.Registry
	bids, skipped, won, deployed, completions, stopped prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	mk := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "provider", Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.bids = mk("bids_sent_total", "Bids accepted into the mempool.")
	m.skipped = mk("orders_skipped_total", "Orders the provider will not bid on (no fit, no price, max price too low).")
	m.won = mk("leases_won_total", "Leases seen created for this provider.")
	m.deployed = mk("leases_deployed_total", "Manifests deployed.")
	m.completions = mk("completions_sent_total", "Batch completions sent.")
	m.stopped = mk("leases_stopped_total", "Leases stopped and erased.")
	return m
}

// gpuPool hands out GPU ids (detected UUIDs; "declared-MODEL-N" for a declared inventory) to
// tasks. The daemon persists the assignments (persisted.GPUs) and restores them on
// start, so recovered tasks keep their GPUs to themselves.
type gpuPool struct {
	mu    sync.Mutex
	free  map[string][]string // by model
	owner map[uint64][]gpuTaken
}

type gpuTaken = GPUAssignment

// restore marks GPUs as taken by the leases that held them before a restart.
func (p *gpuPool) restore(held map[uint64][]GPUAssignment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for lease, gs := range held {
		for _, g := range gs {
			free := p.free[g.Model]
			if i := slices.Index(free, g.ID); i >= 0 {
				p.free[g.Model] = slices.Delete(free, i, i+1)
				p.owner[lease] = append(p.owner[lease], g)
			}
		}
	}
}

// held returns a copy of the current assignments.
func (p *gpuPool) held() map[uint64][]GPUAssignment {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint64][]GPUAssignment, len(p.owner))
	for l, gs := range p.owner {
		out[l] = append([]GPUAssignment(nil), gs...)
	}
	return out
}

func newGPUPool(inv registry.Inventory, uuids map[string][]string) *gpuPool {
	p := &gpuPool{free: map[string][]string{}, owner: map[uint64][]gpuTaken{}}
	if uuids != nil {
		for m, ids := range uuids {
			p.free[m] = append([]string(nil), ids...)
		}
		return p
	}
	for _, g := range inv.GPUs {
		for i := 0; i < int(g.Count); i++ {
			p.free[g.Model] = append(p.free[g.Model], fmt.Sprintf("%s-%s-%d", inv.Source, g.Model, len(p.free[g.Model])))
		}
	}
	return p
}

func (p *gpuPool) take(leaseID uint64, model string, n uint32) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if model == "" {
		for m, ids := range p.free {
			if len(ids) >= int(n) {
				model = m
				break
			}
		}
	}
	if len(p.free[model]) < int(n) {
		return nil, fmt.Errorf("%d %s GPUs asked, %d free", n, model, len(p.free[model]))
	}
	ids := p.free[model][:n]
	p.free[model] = p.free[model][n:]
	for _, id := range ids {
		p.owner[leaseID] = append(p.owner[leaseID], gpuTaken{Model: model, ID: id})
	}
	return append([]string(nil), ids...), nil
}

func (p *gpuPool) release(leaseID uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.owner[leaseID] {
		p.free[t.Model] = append(p.free[t.Model], t.ID)
	}
	delete(p.owner, leaseID)
}

// assignGPUs is the lease manager's AssignGPUs: GPUs of the model the lease won.
func (d *Daemon) assignGPUs(leaseID uint64, _ string, units uint32) ([]string, error) {
	model := ""
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if l, err := d.deps.Client.Lease(ctx, leaseID); err == nil {
		for _, g := range l.GPUs {
			if g.Model != "" {
				model = g.Model
				break
			}
		}
	}
	ids, err := d.gpus.take(leaseID, model, units)
	if err == nil {
		d.mu.Lock()
		d.st.GPUs = d.gpus.held()
		d.mu.Unlock()
		d.save()
	}
	return ids, err
}

// completionRecord is how a completion is persisted: the hex outputs root, with
// ":failed" when the workload failed.
func completionRecord(root [32]byte, failed bool) string {
	r := hex.EncodeToString(root[:])
	if failed {
		r += ":failed"
	}
	return r
}

// parseCompletion reads what completionRecord wrote.
func parseCompletion(rec string) (root []byte, failed bool) {
	h, flag, _ := strings.Cut(rec, ":")
	root, _ = hex.DecodeString(h)
	return root, flag == "failed"
}

// retained reports whether a batch lease closed for reason keeps its outputs (and
// logs) for OutputRetention: the tenant wants them whether the job succeeded or not.
func retained(reason string) bool {
	return reason == market.ReasonCompleted || reason == market.ReasonWorkloadFailed
}

// trackLocked records an active lease of this provider (once per attempt). d.mu held.
func (d *Daemon) trackLocked(l market.Lease) {
	if att, ok := d.st.Leases[l.ID]; ok && att == l.Attempt {
		return
	}
	d.st.Leases[l.ID] = l.Attempt
	d.kinds[l.ID] = l.Kind
	delete(d.closed, l.ID)
	d.metrics.won.Inc()
	d.log.Info("lease won", "lease", l.ID, "attempt", l.Attempt, "price", l.Price, "gpus", l.GPUs, "created", l.CreatedHeight)
}
