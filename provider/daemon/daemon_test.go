package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Chain parameters of these tests: 200 ms blocks (the demo's), heartbeats every 2
// blocks and a lease closed after 15 silent blocks (3 s), so that liveness is
// testable in seconds yet a daemon restart (a few blocks) does not lose its lease.
const (
	blockTime        = 200 * time.Millisecond
	heartbeatEvery   = 2
	heartbeatTimeout = 15
)

// testNet is a one-validator chain with a funded provider and tenant; the tenant's
// client certificate is published.
type testNet struct {
	c          *client.Client
	provKey    ed25519.PrivateKey
	tenantKey  ed25519.PrivateKey
	prov       types.Address
	tenant     types.Address
	tenantCert tls.Certificate
	logs       *logBuf
}

// logBuf collects logs, printed only when a test fails.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newKey(t *testing.T) (ed25519.PrivateKey, types.Address) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv, types.AddressFromPubKey(pub)
}

func startNet(t *testing.T) *testNet {
	t.Helper()
	return startNetWith(t, nil)
}

// startNetWith is startNet with edit applied to the genesis state.
func startNetWith(t *testing.T, edit func(*app.GenesisState)) *testNet {
	t.Helper()
	return startNetBlocks(t, blockTime, edit)
}

// startNetBlocks is startNetWith with blocks every bt.
func startNetBlocks(t *testing.T, bt time.Duration, edit func(*app.GenesisState)) *testNet {
	t.Helper()
	n := &testNet{logs: &logBuf{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon logs:\n%s", n.logs)
		}
	})
	n.provKey, n.prov = newKey(t)
	n.tenantKey, n.tenant = newKey(t)
	home := node.TempHome(t)
	funds := types.Coins{types.NewCoin(types.NativeDenom, 1_000_000_000)}
	if _, err := node.Init(node.InitOptions{Home: home, ChainID: "kiln-daemon-test", BlockTime: bt, KeyringBackend: keyring.BackendTest,
		Accounts: []bank.GenesisBalance{{Address: n.prov, Coins: funds}, {Address: n.tenant, Coins: funds}}}); err != nil {
		t.Fatal(err)
	}
	setMarketParams(t, home, edit)
	conf, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	node.UseFreePorts(conf)
	nd, err := node.Start(conf, node.Options{CheckInvariants: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Stop() })
	if n.c, err = client.New(nd.RPCAddr()); err != nil {
		t.Fatal(err)
	}
	// 30 s covers node start-up on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.c.WaitHeight(ctx, 2); err != nil { // NB: height 2: block 1, which commits genesis, is applied
		t.Fatal(err)
	}
	certPEM, keyPEM, err := tenant.GenerateClientCert(n.tenant.String(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n.tenantCert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &cert.MsgPublishCert{Owner: n.tenant, CertPEM: certPEM}); err != nil {
		t.Fatalf("publish tenant certificate: %v", err)
	}
	return n
}

// setMarketParams shortens the heartbeat parameters in genesis.json, then applies
// edit (if any).
func setMarketParams(t *testing.T, home string, edit func(*app.GenesisState)) {
	t.Helper()
	path := filepath.Join(home, "config", "genesis.json")
	doc, err := cmttypes.GenesisDocFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := app.ParseGenesis(doc.AppState)
	if err != nil {
		t.Fatal(err)
	}
	g.Params.Market.HeartbeatIntervalBlocks = heartbeatEvery
	g.Params.Market.HeartbeatTimeoutBlocks = heartbeatTimeout
	if edit != nil {
		edit(&g)
	}
	if doc.AppState, err = json.Marshal(g); err != nil {
		t.Fatal(err)
	}
	if err := doc.SaveAs(path); err != nil {
		t.Fatal(err)
	}
}

func testConfig(stateDir string) daemon.Config {
	cfg := daemon.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.StateDir = stateDir
	cfg.Executor.Set(process.Driver, "allow_unisolated", true)
	cfg.Inventory = daemon.InventoryConfig{Region: "test-1", CPUCores: 8, Memory: "32Gi", Storage: "100Gi",
		GPUs: []daemon.GPUConfig{{Model: "h100", Memory: "80Gi", Interface: "sxm", Count: 8}}}
	cfg.Pricing.BlockTime = daemon.Duration(blockTime)
	cfg.Pricing.GPUHour["h100"] = 10_000_000 // 556 per 200 ms block: enough for a non-zero protocol fee
	cfg.OutputRetention = daemon.Duration(time.Minute)
	cfg.PollInterval = daemon.Duration(20 * time.Millisecond)
	return cfg
}

// runningDaemon is a daemon running in the background.
type runningDaemon struct {
	*daemon.Daemon
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop cancels the daemon's context (a kill, as far as the chain can tell: it sends
// nothing more) and waits for Run to return.
func (r *runningDaemon) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("daemon Run: %v", err)
		}
	})
}

func (n *testNet) startDaemon(t *testing.T, stateDir string) *runningDaemon {
	t.Helper()
	return n.startDaemonWith(t, testConfig(stateDir))
}

func (n *testNet) startDaemonWith(t *testing.T, cfg daemon.Config) *runningDaemon {
	t.Helper()
	return n.startDaemonDeps(t, cfg, daemon.Deps{})
}

// startDaemonDeps starts a daemon with cfg and deps, whose client, key and logger
// are the test network's.
func (n *testNet) startDaemonDeps(t *testing.T, cfg daemon.Config, deps daemon.Deps) *runningDaemon {
	t.Helper()
	deps.Client, deps.Key = n.c, n.provKey
	deps.Logger = slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := daemon.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningDaemon{Daemon: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-d.Ready():
	case err := <-r.done:
		r.done <- nil // NB: for the cleanup's stop, which waits for Run's return
		t.Fatalf("daemon Run: %v", err)
	case <-time.After(30 * time.Second): // registration: a tx and a few queries
		t.Fatal("daemon not ready after 30 s")
	}
	return r
}

// providerClient connects to the provider as the tenant would: endpoint and pinned
// certificate from the registry record.
func (n *testNet) providerClient(t *testing.T, ctx context.Context) *apiclient.Client {
	t.Helper()
	var prov registry.Provider
	if err := n.c.QueryJSON(ctx, client.PathProvider(n.prov), &prov); err != nil {
		t.Fatal(err)
	}
	pc, err := apiclient.NewClient(prov.Endpoint, n.tenantCert, []byte(prov.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	return pc
}

// createOrder sends the order and returns its ID, the height it was placed at and
// the tx fee the tenant paid.
func (n *testNet) createOrder(t *testing.T, ctx context.Context, kind string, g market.Group, maxPrice uint64) (uint64, int64, uint64) {
	t.Helper()
	m := &market.MsgCreateOrder{Owner: n.tenant, Kind: kind, Groups: []market.Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, 20*maxPrice)}
	raw, err := n.c.SignTx(ctx, n.tenantKey, client.SignOptions{}, m)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := tx.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.c.BroadcastCommit(ctx, raw)
	if err != nil {
		t.Fatalf("create order: %v", err)
	}
	orders, err := n.c.Orders(ctx, "", n.tenant)
	if err != nil || len(orders) == 0 {
		t.Fatalf("orders of tenant: %v, %v", orders, err)
	}
	return orders[len(orders)-1].ID, res.Height, dec.Body.Fee.Amount
}

func (n *testNet) balance(t *testing.T, ctx context.Context, a types.Address) uint64 {
	t.Helper()
	bals, err := n.c.Balances(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bals {
		if b.Denom == types.NativeDenom {
			return b.Amount
		}
	}
	return 0
}

// waitLease polls until lease id satisfies ok.
func (n *testNet) waitLease(t *testing.T, ctx context.Context, id uint64, what string, ok func(market.Lease) bool) market.Lease {
	t.Helper()
	for {
		l, err := n.c.Lease(ctx, id)
		if err == nil && ok(l) {
			return l
		}
		select {
		case <-ctx.Done():
			t.Fatalf("lease %d: %s: %v (last %+v, %v)", id, what, ctx.Err(), l, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func closed(l market.Lease) bool { return l.State == market.LeaseClosed }

var batchGroup = market.Group{Name: "job", Count: 1, CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, StorageBytes: registry.Gi,
	GPU: market.GPURequest{Units: 1, Models: []market.GPUFilter{{Model: "h100"}}}}

// The provider daemon end to end on a real chain, with the process executor and the
// tenant API over mutual TLS. The steps share one chain and one provider and run in
// order: a batch lease from order to refund, no bid beyond capacity, a restart that
// keeps a service lease, and a killed daemon whose lease the chain closes.
func TestProviderDaemon(t *testing.T) {
	n := startNet(t)
	stateDir := filepath.Join(t.TempDir(), "provider")
	d := n.startDaemon(t, stateDir)

	t.Run("batch lease end to end", func(t *testing.T) {
		// 30 s: an order, a lease, a job of milliseconds and the completion, at 200 ms
		// blocks, with room for a slow machine.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		supply0, err := n.c.Supply(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pool0 := n.balance(t, ctx, bank.CommunityPool)
		tenant0 := n.balance(t, ctx, n.tenant)

		t0 := time.Now()
		id, placed, fee := n.createOrder(t, ctx, market.KindBatch, batchGroup, 5000)
		out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil)
		if err != nil || out.Lease == nil {
			t.Fatalf("no lease for order %d: %+v, %v", id, out.Order, err)
		}
		l := *out.Lease
		if l.Provider != n.prov || len(l.GPUs) != 1 || l.GPUs[0].Model != "h100" {
			t.Fatalf("lease = %+v, want provider %s with an h100", l, n.prov)
		}
		blocks := l.CreatedHeight - placed
		t.Logf("order placed at height %d, leased at %d: %d blocks", placed, l.CreatedHeight, blocks)
		if blocks > 2 {
			t.Errorf("order -> lease took %d blocks, want <= 2", blocks)
		}

		pc := n.providerClient(t, ctx)
		in := "hello kiln\n"
		if _, err := pc.UploadInput(ctx, id, "in.txt", strings.NewReader(in), int64(len(in))); err != nil {
			t.Fatal(err)
		}
		// NB: the job sleeps 0.5 s: billing starts the block after the lease is made, so a
		// job done within one block would cost nothing and leave no payment to check.
		st, err := pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{{
			Name: "job", Count: 1, Command: []string{"sh", "-c", `sleep 0.5; tr a-z A-Z < "$KILN_IN/in.txt" > "$KILN_OUT/out.txt"`},
			Resources: api.ServiceResources{CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, GPUUnits: 1},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("order -> running: %d ms (state %s)", time.Since(t0).Milliseconds(), st.State)
		if st.State != api.StateRunning && st.State != api.StateCompleted {
			t.Fatalf("after the manifest the lease is %s", st.State)
		}

		l = n.waitLease(t, ctx, id, "closed", closed)
		if l.CloseReason != market.ReasonCompleted {
			t.Fatalf("lease closed with %s, want completed", l.CloseReason)
		}
		st, err = pc.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != api.StateCompleted || st.OutputsRoot != l.OutputHash {
			t.Fatalf("status %s root %s, chain's output hash %s", st.State, st.OutputsRoot, l.OutputHash)
		}
		var got bytes.Buffer
		fi, err := pc.DownloadOutput(ctx, id, "out.txt", &got)
		if err != nil {
			t.Fatalf("download within retention: %v", err)
		}
		sum := sha256.Sum256(got.Bytes())
		if got.String() != "HELLO KILN\n" || fi.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("output %q (sha256 %s), want HELLO KILN (listed %s)", got.String(), hex.EncodeToString(sum[:]), fi.SHA256)
		}

		acct, err := n.c.Escrow(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// NB: with the default escrow parameters part of the provider's pay is held
		// back until the lease's dispute window ends (Held), the rest paid (Paid).
		if acct.State != "closed" || acct.Paid == 0 || acct.Fees == 0 || acct.Paid+acct.Fees+acct.Held+acct.Refunded != acct.Deposited {
			t.Fatalf("escrow %+v: want closed, provider paid (some held back), fee taken, the rest refunded", acct)
		}
		if (acct.Paid+acct.Fees+acct.Held)%l.Price != 0 {
			t.Errorf("escrow paid %d + held %d + fees %d is not a whole number of blocks at %d", acct.Paid, acct.Held, acct.Fees, l.Price)
		}
		if got, want := n.balance(t, ctx, n.tenant), tenant0-fee-acct.Paid-acct.Held-acct.Fees; got != want {
			t.Errorf("tenant balance %d, want %d (start %d - tx fee %d - paid %d - held %d - protocol fee %d)", got, want, tenant0, fee, acct.Paid, acct.Held, acct.Fees)
		}
		if pool := n.balance(t, ctx, bank.CommunityPool); pool-pool0 < acct.Fees {
			t.Errorf("community pool grew by %d, less than the protocol fee %d", pool-pool0, acct.Fees)
		}
		if supply1, err := n.c.Supply(ctx); err != nil || supply1.String() != supply0.String() {
			t.Errorf("supply %v -> %v (%v): money not conserved", supply0, supply1, err)
		}
	})

	t.Run("a workload that fails to start is reported and costs nothing", func(t *testing.T) {
		// 30 s: an order, a lease, a refused start and the close, at 200 ms blocks.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		id, _, _ := n.createOrder(t, ctx, market.KindBatch, batchGroup, 5000)
		out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil)
		if err != nil || out.Lease == nil {
			t.Fatalf("no lease for order %d: %+v, %v", id, out.Order, err)
		}
		pc := n.providerClient(t, ctx)
		_, err = pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{{
			Name: "job", Count: 1, Command: []string{"/nonexistent/kiln-no-such-program"},
			Resources: api.ServiceResources{CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, GPUUnits: 1},
		}}})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeStartFailed || !strings.Contains(ae.Message, "workload_failed") {
			t.Fatalf("SendManifest(program that cannot start) = %v, want %s saying the lease closes workload_failed", err, api.CodeStartFailed)
		}
		l := n.waitLease(t, ctx, id, "closed", closed)
		// NB: the report is sent while the manifest request is answered; it lands in
		// the next block or the one after.
		if l.CloseReason != market.ReasonWorkloadFailed || l.StartedHeight != 0 || l.ClosedHeight-out.Lease.CreatedHeight > 4 {
			t.Fatalf("lease = %+v, want closed workload_failed within a few blocks, never started", l)
		}
		acct, err := n.c.Escrow(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if acct.Paid != 0 || acct.Fees != 0 || acct.Refunded != acct.Deposited {
			t.Fatalf("escrow = %+v, want nothing paid and all refunded", acct)
		}
	})

	t.Run("no bid on container images from a process provider", func(t *testing.T) {
		// 20 s: a few blocks of watching.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		g := batchGroup
		g.Name, g.Containers = "web", true
		id, placed, _ := n.createOrder(t, ctx, market.KindBatch, g, 50_000)
		if err := n.c.WaitHeight(ctx, placed+4); err != nil {
			t.Fatal(err)
		}
		if o, err := n.c.Order(ctx, id); err != nil || o.State != market.OrderOpen || o.Attempts != 0 {
			t.Fatalf("container order on a process provider: %+v, %v; want open without a lease", o, err)
		}
		rep, err := n.c.WhyNoBids(ctx, id)
		if err != nil || len(rep.Providers) != 1 || rep.Summary["runtime"] != 1 {
			t.Fatalf("why-no-bids = %+v, %v; want the provider failing runtime", rep, err)
		}
		if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &market.MsgCloseOrder{Owner: n.tenant, OrderID: id}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no bid beyond capacity or below price", func(t *testing.T) {
		// 20 s: a few blocks of watching.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		big := batchGroup
		big.Name, big.GPU.Units = "big", 16
		id, placed, _ := n.createOrder(t, ctx, market.KindBatch, big, 50_000)
		// An order that fits but pays less than the price table asks gets no bid either.
		cheap, _, _ := n.createOrder(t, ctx, market.KindBatch, batchGroup, 10)
		if err := n.c.WaitHeight(ctx, placed+4); err != nil {
			t.Fatal(err)
		}
		if o, err := n.c.Order(ctx, cheap); err != nil || o.State != market.OrderOpen || o.Attempts != 0 {
			t.Fatalf("order paying 10 per block for an H100: %+v, %v; want open without a lease", o, err)
		}
		o, err := n.c.Order(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if o.State != market.OrderOpen || o.Attempts != 0 {
			t.Fatalf("order asking 16 GPUs of an 8-GPU provider is %s with %d leases", o.State, o.Attempts)
		}
		if bids, err := n.c.Bids(ctx, id, n.prov); err != nil || len(bids) != 0 {
			t.Fatalf("bids = %v, %v; want none", bids, err)
		}
		rep, err := n.c.WhyNoBids(ctx, id)
		if err != nil || len(rep.Providers) != 1 || rep.Providers[0].Fits || rep.Providers[0].Bid {
			t.Fatalf("match report %+v, %v", rep, err)
		}
		for _, o := range []uint64{id, cheap} {
			if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &market.MsgCloseOrder{Owner: n.tenant, OrderID: o}); err != nil {
				t.Fatal(err)
			}
		}
	})

	var svcID uint64
	var svcStarted time.Time
	t.Run("restart keeps the lease", func(t *testing.T) {
		// 30 s: a lease, a restart and heartbeat_timeout blocks of watching.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g := market.Group{Name: "web", Count: 1, CPUMilli: 500, MemoryBytes: 256 * registry.Mi}
		id, _, _ := n.createOrder(t, ctx, market.KindService, g, 1000)
		svcID = id
		out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil)
		if err != nil || out.Lease == nil {
			t.Fatalf("no lease for order %d: %+v, %v", id, out.Order, err)
		}
		pc := n.providerClient(t, ctx)
		st, err := pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{{
			Name: "web", Count: 1, Command: []string{"sleep", "30"},
			Resources: api.ServiceResources{CPUMilli: 500, MemoryBytes: 256 * registry.Mi},
		}}})
		if err != nil || st.State != api.StateRunning || len(st.Tasks) != 1 {
			t.Fatalf("manifest: %+v, %v", st, err)
		}
		svcStarted = st.Tasks[0].StartedAt

		d.stop(t)
		down, _ := n.c.Status(ctx)
		if err := n.c.WaitHeight(ctx, down.Height+3); err != nil {
			t.Fatal(err)
		}
		d = n.startDaemon(t, stateDir)
		up, _ := n.c.Status(ctx)

		pc = n.providerClient(t, ctx) // NB: a new port: the daemon updated its endpoint
		st, err = pc.Status(ctx, id)
		if err != nil || st.State != api.StateRunning || len(st.Tasks) != 1 || !st.Tasks[0].StartedAt.Equal(svcStarted) {
			t.Fatalf("after restart status %+v, %v; want the same task running (started %s)", st, err, svcStarted)
		}
		if err := n.c.WaitHeight(ctx, up.Height+heartbeatTimeout+2); err != nil {
			t.Fatal(err)
		}
		l, err := n.c.Lease(ctx, id)
		if err != nil || l.State != market.LeaseActive || l.LastHeartbeat <= up.Height {
			t.Fatalf("lease after restart: %+v, %v; want active with heartbeats after height %d", l, err, up.Height)
		}
	})

	t.Run("killed daemon loses the lease", func(t *testing.T) {
		if svcID == 0 {
			t.Skip("no service lease")
		}
		// 30 s: heartbeat_timeout blocks (3 s) and a restart.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d.stop(t)
		l := n.waitLease(t, ctx, svcID, "closed", closed)
		if l.CloseReason != market.ReasonProviderUnresponsive || l.ClosedHeight-l.LastHeartbeat != heartbeatTimeout+1 {
			t.Fatalf("lease closed %+v; want provider_unresponsive %d blocks after the last heartbeat", l, heartbeatTimeout+1)
		}
		// A daemon started again finds the workload of a closed lease and stops it.
		d = n.startDaemon(t, stateDir)
		task := filepath.Join(stateDir, "exec", "tasks", fmt.Sprintf("%d-web-0", svcID))
		for {
			_, err := os.Stat(task)
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("task of a closed lease still there: %s (%v)", task, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		pc := n.providerClient(t, ctx)
		if st, err := pc.Status(ctx, svcID); err == nil && (st.State == api.StateRunning || len(st.Tasks) > 0) {
			t.Fatalf("status of a stopped lease: %+v", st)
		}
		d.stop(t)
	})
}

// timeLeft is how long ctx has before its deadline, for poll.WaitFor; a
// context without one gets a minute.
func timeLeft(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return time.Minute
}
