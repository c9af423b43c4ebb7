package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand"
	"strings"
	"testing"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

const gi = registry.Gi

// mustCertPEM returns a self-signed ed25519 certificate valid from nb to na.
func mustCertPEM(tb testing.TB, nb, na time.Time) []byte {
	tb.Helper()
	return mustCertPEMFor(tb, "kiln-test", nb, na)
}

// mustCertPEMFor returns a self-signed ed25519 certificate with CommonName cn (a
// tenant's client certificate names its account) valid from nb to na.
func mustCertPEMFor(tb testing.TB, cn string, nb, na time.Time) []byte {
	tb.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// inv returns a declared inventory in region with 8 cores, 32Gi, 200Gi and gpus.
func inv(region string, gpus ...registry.GPU) registry.Inventory {
	return registry.Inventory{Source: "declared", Region: region, CPUCores: 8, MemoryBytes: 32 * gi, StorageBytes: 200 * gi, GPUs: gpus,
		Attributes: []registry.Attribute{{Key: "tier", Value: "community"}}, Runtime: registry.DefaultRuntime()}
}

func rtx4090(n uint32) registry.GPU {
	return registry.GPU{Model: "rtx4090", MemoryBytes: 24 * gi, Interface: "pcie", Count: n}
}
func a100(n uint32) registry.GPU {
	return registry.GPU{Model: "a100", MemoryBytes: 80 * gi, Interface: "sxm", Count: n}
}

// exec signs one tx per (account, msg) pair, runs them in one block, bumps the
// sequences and returns the block's results.
func (h *harness) exec(steps ...step) *abcitypes.ResponseFinalizeBlock {
	h.t.Helper()
	return h.block(h.signSteps(steps...)...)
}

// signSteps signs one tx per step, bumping the sequences.
func (h *harness) signSteps(steps ...step) [][]byte {
	var txs [][]byte
	for _, s := range steps {
		txs = append(txs, h.sign(s.from, s.from.seq, stepFee(s.msg), s.msg))
		s.from.seq++
	}
	return txs
}

// stepFee is the fee a step's tx pays: 5000, above the minimum for every small message.
var stepFee = func(types.Msg) uint64 { return 5000 }

type step struct {
	from *account
	msg  types.Msg
}

// mustExec runs steps in one block and fails unless every tx succeeded.
func (h *harness) mustExec(steps ...step) *abcitypes.ResponseFinalizeBlock {
	h.t.Helper()
	res := h.exec(steps...)
	for i, r := range res.TxResults {
		if r.Code != 0 {
			h.t.Fatalf("height %d tx %d (%T): code %d: %s", h.height, i, steps[i].msg, r.Code, r.Log)
		}
	}
	return res
}

// providerCert is one certificate for every test provider, so that two harnesses fed
// the same registrations reach the same app hash.
var providerCert []byte

func (h *harness) register(p *account, inventory registry.Inventory) step {
	if providerCert == nil {
		providerCert = mustCertPEM(h.t, time.Unix(0, 0), time.Unix(1<<31, 0))
	}
	return step{p, &registry.MsgRegisterProvider{Owner: p.addr, Endpoint: "https://p.example:8443",
		CertPEM: providerCert, Inventory: inventory, Stake: types.NewCoin("ukiln", 100_000_000)}}
}

func gpuGroup(name string, count, units uint32, models ...string) market.Group {
	g := market.Group{Name: name, Count: count, CPUMilli: 1000, MemoryBytes: 2 * gi, StorageBytes: 10 * gi, GPU: market.GPURequest{Units: units}}
	for _, m := range models {
		g.GPU.Models = append(g.GPU.Models, market.GPUFilter{Model: m})
	}
	return g
}

func order(owner *account, maxPrice, deposit uint64, groups ...market.Group) *market.MsgCreateOrder {
	return &market.MsgCreateOrder{Owner: owner.addr, Kind: market.KindBatch, Groups: groups, MaxPrice: maxPrice, Deposit: types.NewCoin("ukiln", deposit)}
}

func bid(p *account, id, price uint64) step {
	return step{p, &market.MsgCreateBid{Provider: p.addr, OrderID: id, Price: price}}
}

func start(p *account, id uint64) step {
	return step{p, &market.MsgStartLease{Provider: p.addr, LeaseID: id}}
}

func (h *harness) order(id uint64) market.Order {
	o, ok := market.GetOrder(h.ctx(), id)
	if !ok {
		h.t.Fatalf("order %d missing", id)
	}
	return o
}

func (h *harness) lease(id uint64) market.Lease {
	l, ok := market.GetLease(h.ctx(), id)
	if !ok {
		h.t.Fatalf("lease %d missing", id)
	}
	return l
}

func (h *harness) escrowOf(id uint64) escrow.EscrowAccount {
	a, _ := escrow.Get(h.ctx(), id)
	return a
}

func (h *harness) query(path string, out any) uint32 {
	res, _ := h.app.Query(context.Background(), &abcitypes.RequestQuery{Path: path})
	if res.Code == 0 && out != nil {
		if err := json.Unmarshal(res.Value, out); err != nil {
			h.t.Fatalf("Query(%s): %v", path, err)
		}
	}
	return res.Code
}

func hasEvent(res *abcitypes.ResponseFinalizeBlock, typ, key, value string) bool {
	evs := res.Events
	for _, r := range res.TxResults {
		evs = append(evs, r.Events...)
	}
	for _, e := range evs {
		if e.Type != typ {
			continue
		}
		for _, a := range e.Attributes {
			if a.Key == key && a.Value == value {
				return true
			}
		}
	}
	return false
}

// marketHarness has a validator (0), providers 1 (2x rtx4090, eu-west) and 2 (4x a100,
// us-east), tenant 3 and stranger 4, with the providers registered.
func marketHarness(t *testing.T, edit func(*GenesisState)) (h *harness, p1, p2, tenant, stranger *account) {
	h = newHarnessWith(t, 5, edit)
	p1, p2, tenant, stranger = h.accs[1], h.accs[2], h.accs[3], h.accs[4]
	h.mustExec(h.register(p1, inv("eu-west", rtx4090(2))), h.register(p2, inv("us-east", a100(4))))
	return
}

// The happy path: order at H, bids at H+1, lease at the end of H+1, billed per block,
// completed by the provider; the provider is paid, the fee goes to the community
// pool and the rest is refunded to the tenant.
func TestOrderBidLeaseSettleComplete(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	res := h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("train", 1, 1))})
	H := h.height
	if !hasEvent(res, "order_created", "order", "1") {
		t.Fatal("no order_created event")
	}
	p1Before := bank.Balance(h.ctx(), p1.addr, "ukiln")
	res = h.mustExec(bid(p1, 1, 900), bid(p2, 1, 800))
	if !hasEvent(res, "lease_created", "provider", p2.addr.String()) {
		t.Fatal("no lease_created event for the cheaper bid")
	}
	l := h.lease(1)
	if l.CreatedHeight != H+1 || l.Provider != p2.addr || l.Price != 800 || l.State != market.LeaseActive {
		t.Fatalf("lease = %+v, want provider 2 at %d for 800", l, H+1)
	}
	if len(l.GPUs) != 1 || l.GPUs[0].Model != "a100" {
		t.Fatalf("lease GPUs = %+v, want a100", l.GPUs)
	}
	if got := h.order(1).State; got != market.OrderActive {
		t.Fatalf("order state %s", got)
	}
	if n := len(market.Bids(h.ctx(), 0, types.Address{})); n != 0 {
		t.Fatalf("%d bids left after the window closed", n)
	}
	// the losing bid's deposit is back: p1 only paid its tx fee
	if got := bank.Balance(h.ctx(), p1.addr, "ukiln"); got != p1Before-5000 {
		t.Fatalf("loser's balance %d, want %d (deposit refunded)", got, p1Before-5000)
	}
	// Nothing is billed before the provider reports the workload started.
	h.block()
	if e := h.escrowOf(1); e.Paid != 0 || e.Balance != 100_000 {
		t.Fatalf("escrow before the workload started = %+v, want nothing paid", e)
	}
	res = h.mustExec(start(p2, 1))
	if !hasEvent(res, "lease_started", "lease", "1") || h.lease(1).StartedHeight != h.height {
		t.Fatalf("lease after MsgStartLease = %+v, want started at %d with an event", h.lease(1), h.height)
	}
	if e := h.escrowOf(1); e.Paid != 0 {
		t.Fatalf("escrow in the block the workload started = %+v, want nothing paid yet", e)
	}
	p2Before := bank.Balance(h.ctx(), p2.addr, "ukiln")
	h.block()
	h.block()
	if got := bank.Balance(h.ctx(), p2.addr, "ukiln"); got != p2Before+2*796 {
		t.Fatalf("provider after 2 blocks: %d, want %d (800 less 0.5%%, twice)", got, p2Before+2*796)
	}
	tenantBefore := bank.Balance(h.ctx(), tenant.addr, "ukiln")
	res = h.mustExec(step{p2, &market.MsgCompleteLease{Provider: p2.addr, LeaseID: 1, OutputHash: []byte{0xab, 0xcd}}})
	if !hasEvent(res, "lease_closed", "reason", market.ReasonCompleted) {
		t.Fatal("no lease_closed event")
	}
	l = h.lease(1)
	if l.State != market.LeaseClosed || l.CloseReason != market.ReasonCompleted || l.ClosedHeight != h.height || l.OutputHash != "abcd" {
		t.Fatalf("lease after completion = %+v", l)
	}
	e := h.escrowOf(1)
	// two blocks settled at their end, and the completion block itself: 3 × 800
	want := escrow.EscrowAccount{Paid: 3 * 796, Fees: 3 * 4, Refunded: 100_000 - 2400, State: escrow.StateClosed}
	if e.Paid != want.Paid || e.Fees != want.Fees || e.Refunded != want.Refunded || e.Balance != 0 || e.State != want.State {
		t.Fatalf("escrow = %+v, want %+v", e, want)
	}
	if got := bank.Balance(h.ctx(), tenant.addr, "ukiln"); got != tenantBefore+e.Refunded {
		t.Fatalf("tenant %d, want %d (refund in the completion block)", got, tenantBefore+e.Refunded)
	}
	if o := h.order(1); o.State != market.OrderClosed || o.CloseReason != market.ReasonCompleted {
		t.Fatalf("order = %+v", o)
	}
	if r := h.exec(step{p2, &market.MsgHeartbeat{Provider: p2.addr, LeaseID: 1}}).TxResults[0]; r.Code != types.CodeLeaseClosed {
		t.Fatalf("heartbeat on a completed lease: code %d (%s), want %d", r.Code, r.Log, types.CodeLeaseClosed)
	}
	var capRep market.CapacityReport
	if c := h.query("/market/provider/"+p2.addr.String()+"/capacity", &capRep); c != 0 || !capRep.Used.IsZero() {
		t.Fatalf("capacity after completion: code %d, %+v", c, capRep)
	}
}

// Every refusal has its own code and a log naming what is wrong.
func TestMarketRefusals(t *testing.T) {
	h, p1, p2, tenant, stranger := marketHarness(t, nil)
	// Order 1 takes both of p1's rtx4090s; order 2 wants one more; order 3 is closed.
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("a", 1, 2, "rtx4090"))},
		step{tenant, order(tenant, 1000, 100_000, gpuGroup("b", 1, 1, "rtx4090"))},
		step{tenant, order(tenant, 1000, 100_000, gpuGroup("c", 1, 0))})
	h.mustExec(bid(p1, 1, 500), step{tenant, &market.MsgCloseOrder{Owner: tenant.addr, OrderID: 3}})
	if l := h.lease(1); l.Provider != p1.addr {
		t.Fatalf("lease 1 = %+v", l)
	}
	now := time.Unix(h.height+1, 0)
	tests := []struct {
		name string
		s    step
		want *types.Error
	}{
		{"bid beyond free capacity", bid(p1, 2, 500), types.ErrInsufficientCapacity},
		{"bid the provider's inventory can never meet", bid(p2, 2, 500), types.ErrRequirementsUnmet},
		{"order with no deposit", step{tenant, order(tenant, 1000, 0, gpuGroup("d", 1, 0))}, types.ErrInsufficientDeposit},
		{"order deposit below min_deposit_blocks", step{tenant, order(tenant, 1000, 9_999, gpuGroup("d", 1, 0))}, types.ErrInsufficientDeposit},
		{"closing someone else's lease", step{stranger, &market.MsgCloseLease{Sender: stranger.addr, LeaseID: 1}}, types.ErrUnauthorized},
		{"heartbeat from someone else", step{p2, &market.MsgHeartbeat{Provider: p2.addr, LeaseID: 1}}, types.ErrUnauthorized},
		{"bid on a closed order", bid(p2, 3, 500), types.ErrOrderClosed},
		{"bid on a leased order", bid(p2, 1, 500), types.ErrOrderClosed},
		{"bid from a non-provider", bid(stranger, 2, 500), types.ErrNotProvider},
		{"bid above max price", bid(p1, 2, 1001), types.ErrInvalidRequest},
		{"bid on an unknown order", bid(p1, 99, 500), types.ErrNotFound},
		{"deposit to someone else's escrow", step{stranger, &escrow.MsgDeposit{Owner: stranger.addr, OrderID: 1, Amount: types.NewCoin("ukiln", 5)}}, types.ErrUnauthorized},
		{"cert garbage", step{tenant, &cert.MsgPublishCert{Owner: tenant.addr, CertPEM: []byte("garbage")}}, types.ErrInvalidCert},
		{"cert expired", step{tenant, &cert.MsgPublishCert{Owner: tenant.addr, CertPEM: mustCertPEMFor(t, tenant.addr.String(), now.Add(-2*time.Hour), now.Add(-time.Hour))}}, types.ErrInvalidCert},
		{"cert naming another account", step{tenant, &cert.MsgPublishCert{Owner: tenant.addr, CertPEM: mustCertPEMFor(t, stranger.addr.String(), time.Unix(0, 0), time.Unix(1<<31, 0))}}, types.ErrInvalidMsg},
		{"manual pick on an automatic order", step{tenant, &market.MsgCreateLease{Owner: tenant.addr, OrderID: 2, Provider: p1.addr}}, types.ErrInvalidRequest},
		{"complete a closed lease", step{p1, &market.MsgCompleteLease{Provider: p1.addr, LeaseID: 3, OutputHash: []byte{1}}}, types.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.exec(tt.s)
			r := res.TxResults[0]
			if r.Code != tt.want.Code || r.Log == "" {
				t.Fatalf("code = %d (%s), want %d", r.Code, r.Log, tt.want.Code)
			}
			t.Logf("log: %s", r.Log)
		})
	}
	// A cert that is fine is accepted and served by /cert/ADDR.
	h.mustExec(step{tenant, &cert.MsgPublishCert{Owner: tenant.addr, CertPEM: mustCertPEMFor(t, tenant.addr.String(), time.Unix(0, 0), time.Unix(1<<31, 0))}})
	var c cert.Certificate
	if code := h.query("/cert/"+tenant.addr.String(), &c); code != 0 || c.State != cert.StateValid {
		t.Fatalf("/cert = %d %+v", code, c)
	}
}

// A provider that stops heartbeating loses the lease after heartbeat_timeout_blocks and
// the tenant gets every unused ukiln back in that block; one that heartbeats keeps it.
func TestLivenessClosesSilentLease(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 100, 100_000, gpuGroup("a", 1, 1, "rtx4090"))},
		step{tenant, order(tenant, 100, 100_000, gpuGroup("b", 1, 1, "a100"))})
	h.mustExec(bid(p1, 1, 100), bid(p2, 2, 100))
	h.mustExec(start(p1, 1), start(p2, 2))
	L := h.height // NB: starting counts as a heartbeat
	timeout := market.DefaultParams().HeartbeatTimeoutBlocks
	for h.height < L+timeout {
		if (h.height-L)%10 == 9 {
			h.mustExec(step{p2, &market.MsgHeartbeat{Provider: p2.addr, LeaseID: 2}})
		} else {
			h.block()
		}
	}
	if l := h.lease(1); l.State != market.LeaseActive {
		t.Fatalf("lease closed at %d, before its timeout", l.ClosedHeight)
	}
	tenantBefore := bank.Balance(h.ctx(), tenant.addr, "ukiln")
	res := h.block()
	l := h.lease(1)
	if l.State != market.LeaseClosed || l.CloseReason != market.ReasonProviderUnresponsive || l.ClosedHeight != L+timeout+1 {
		t.Fatalf("lease 1 = %+v, want closed provider_unresponsive at %d", l, L+timeout+1)
	}
	if !hasEvent(res, "lease_closed", "reason", market.ReasonProviderUnresponsive) {
		t.Fatal("no lease_closed event")
	}
	e := h.escrowOf(1)
	// billed from the block after the start (L) to the last block it was live (L+timeout)
	if wantPaid := uint64(timeout) * 100; e.Paid+e.Fees != wantPaid || e.Refunded != 100_000-wantPaid {
		t.Fatalf("escrow = %+v, want %d paid and the rest refunded", e, wantPaid)
	}
	if got := bank.Balance(h.ctx(), tenant.addr, "ukiln"); got != tenantBefore+e.Refunded {
		t.Fatalf("tenant %d, want %d", got, tenantBefore+e.Refunded)
	}
	if l := h.lease(2); l.State != market.LeaseActive {
		t.Fatalf("heartbeating lease 2 = %+v", l)
	}
}

// auto_redeploy: the silent provider's lease closes, the order re-opens without it and
// the other provider wins, paid from the same escrow.
func TestAutoRedeploy(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, func(g *GenesisState) { g.Params.Market.HeartbeatTimeoutBlocks = 10 })
	o := order(tenant, 100, 100_000, gpuGroup("a", 1, 1))
	o.AutoRedeploy = true
	h.mustExec(step{tenant, o})
	h.mustExec(bid(p1, 1, 50), bid(p2, 1, 90))
	if l := h.lease(1); l.Provider != p1.addr {
		t.Fatalf("first lease to %s, want the cheaper p1", l.Provider)
	}
	for h.lease(1).State == market.LeaseActive {
		h.block()
	}
	if l := h.lease(1); l.CloseReason != market.ReasonProviderUnresponsive {
		t.Fatalf("lease = %+v", l)
	}
	ord := h.order(1)
	if ord.State != market.OrderOpen || len(ord.Excluded) != 1 || ord.Excluded[0] != p1.addr {
		t.Fatalf("order after failure = %+v, want open excluding p1", ord)
	}
	if e := h.escrowOf(1); e.State != escrow.StateOpen || e.Refunded != 0 {
		t.Fatalf("escrow refunded on redeploy: %+v", e)
	}
	res := h.exec(bid(p1, 1, 10), bid(p2, 1, 90))
	if res.TxResults[0].Code != types.CodeUnauthorized || res.TxResults[1].Code != 0 {
		t.Fatalf("bids after redeploy: %d %q / %d %q", res.TxResults[0].Code, res.TxResults[0].Log, res.TxResults[1].Code, res.TxResults[1].Log)
	}
	l := h.lease(1)
	if l.Provider != p2.addr || l.Attempt != 2 || l.State != market.LeaseActive {
		t.Fatalf("second lease = %+v, want p2 attempt 2", l)
	}
	var all struct{ Leases []market.Lease }
	h.query("/market/leases", &all)
	if len(all.Leases) != 2 {
		t.Fatalf("/market/leases has %d leases, want both attempts", len(all.Leases))
	}
}

// When the escrow cannot pay a full block it pays what is left and the lease closes
// with escrow_exhausted; a top-up before then keeps it going.
func TestEscrowExhausted(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 100, 1_050, gpuGroup("a", 1, 0))})
	h.mustExec(bid(p1, 1, 100))
	h.mustExec(start(p1, 1))
	L := h.height
	h.mustExec(step{tenant, &escrow.MsgDeposit{Owner: tenant.addr, OrderID: 1, Amount: types.NewCoin("ukiln", 200)}})
	var e escrow.EscrowAccount
	if c := h.query("/escrow/account/1", &e); c != 0 || e.Deposited != 1_250 {
		t.Fatalf("/escrow/account/1 = %d %+v", c, e)
	}
	for h.lease(1).State == market.LeaseActive && h.height < L+20 {
		h.block()
	}
	l := h.lease(1)
	if l.CloseReason != market.ReasonEscrowExhausted || l.ClosedHeight != L+13 {
		t.Fatalf("lease = %+v, want escrow_exhausted at %d (12 full blocks, then 50)", l, L+13)
	}
	e = h.escrowOf(1)
	if e.Paid+e.Fees != 1_250 || e.Balance != 0 || e.Refunded != 0 {
		t.Fatalf("escrow = %+v", e)
	}
}

// An order no provider can take stays open for order_ttl_blocks, then closes no_bids
// with a full refund; /market/order/ID/match says why per provider. A late bid before
// then still wins at once.
func TestNoBidsExplainedAndExpire(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, func(g *GenesisState) { g.Params.Market.OrderTTLBlocks = 5 })
	g := gpuGroup("a", 1, 1, "h100")
	g.Region = "ap-south"
	late := gpuGroup("b", 1, 1)
	tenantBefore := bank.Balance(h.ctx(), tenant.addr, "ukiln")
	h.mustExec(step{tenant, order(tenant, 100, 5_000, g)}, step{tenant, order(tenant, 100, 5_000, late)})
	H := h.height
	h.block()
	var rep market.MatchReport
	if c := h.query("/market/order/1/match", &rep); c != 0 || len(rep.Providers) != 2 {
		t.Fatalf("match = %d %+v", c, rep)
	}
	if rep.Summary["gpu_model"] != 2 || rep.Summary["region"] != 2 || rep.Providers[0].Fits {
		t.Fatalf("summary = %v, want both providers failing gpu_model and region", rep.Summary)
	}
	h.block()
	h.mustExec(bid(p1, 2, 100)) // late: the window closed at H+1
	if l := h.lease(2); l.CreatedHeight != h.height {
		t.Fatalf("late bid did not win at once: %+v", l)
	}
	for h.height < H+1+5 {
		h.block()
	}
	o := h.order(1)
	if o.State != market.OrderClosed || o.CloseReason != market.ReasonNoBids || o.ClosedHeight != H+6 {
		t.Fatalf("order = %+v, want closed no_bids at %d", o, H+6)
	}
	if e := h.escrowOf(1); e.Refunded != 5_000 {
		t.Fatalf("escrow = %+v, want full refund", e)
	}
	_ = tenantBefore
}

// A manual order waits for the tenant's pick, which need not be the cheapest.
func TestManualPick(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	o := order(tenant, 100, 5_000, gpuGroup("a", 1, 1))
	o.Manual = true
	h.mustExec(step{tenant, o})
	h.mustExec(bid(p1, 1, 90), bid(p2, 1, 50))
	if got := h.order(1).State; got != market.OrderOpen {
		t.Fatalf("manual order state %s after window, want open", got)
	}
	var bids struct{ Bids []market.Bid }
	if h.query("/market/bids/1", &bids); len(bids.Bids) != 2 {
		t.Fatalf("bids = %+v", bids)
	}
	h.mustExec(step{tenant, &market.MsgCreateLease{Owner: tenant.addr, OrderID: 1, Provider: p1.addr}})
	if l := h.lease(1); l.Provider != p1.addr || l.Price != 90 {
		t.Fatalf("lease = %+v", l)
	}
	if n := len(market.BidsOf(h.ctx(), 1)); n != 0 {
		t.Fatalf("%d bids left", n)
	}
}

// Property: random orders, bids, heartbeats and closes over several providers never
// lease beyond inventory; after every block supply per denom is conserved and the
// escrow and market invariants hold (the harness also checks them in FinalizeBlock),
// and a second app fed the same blocks agrees on every app hash.
func TestRandomMarketKeepsCapacityAndMoney(t *testing.T) {
	blocks := 120
	if testing.Short() {
		blocks = 40
	}
	edit := func(g *GenesisState) {
		g.Params.Market.OrderTTLBlocks = 4
		g.Params.Market.ManualPickBlocks = 3
		g.Params.Market.HeartbeatIntervalBlocks = 2
		g.Params.Market.HeartbeatTimeoutBlocks = 6
		g.Params.Market.BidWindowBlocks = 2
	}
	h, replica := newHarnessWith(t, 10, edit), newHarnessWith(t, 10, edit)
	provs, tenants := h.accs[1:5], h.accs[5:10]
	invs := []registry.Inventory{inv("eu-west", rtx4090(2)), inv("eu-west", a100(4), rtx4090(1)), inv("us-east"), inv("us-east", a100(8))}
	var reg []step
	for i, p := range provs {
		reg = append(reg, h.register(p, invs[i]))
	}
	regTxs := h.signSteps(reg...)
	h.block(regTxs...)
	replica.block(regTxs...)
	r := mrand.New(mrand.NewSource(7))
	supply0 := fmt.Sprint(bank.Supply(h.ctx()))
	models := []string{"", "rtx4090", "a100", "h100"}
	var nOK, nLeases, nStarted int
	reasons := map[string]int{}
	for b := 0; b < blocks; b++ {
		var steps []step
		open := market.Orders(h.ctx(), market.OrderFilter{State: market.OrderOpen})
		active := market.Leases(h.ctx(), market.LeaseFilter{State: market.LeaseActive})
		for i := 0; i < 8; i++ {
			switch k := r.Intn(10); {
			case k < 3:
				tn := tenants[r.Intn(len(tenants))]
				var gs []market.Group
				for j := 0; j <= r.Intn(2); j++ {
					g := gpuGroup(fmt.Sprint("g", j), uint32(1+r.Intn(2)), uint32(r.Intn(3)))
					g.CPUMilli = uint64(500 + r.Intn(4000))
					g.MemoryBytes = uint64(1+r.Intn(12)) * gi
					if g.GPU.Units > 0 && r.Intn(2) == 0 {
						g.GPU.Models = []market.GPUFilter{{Model: models[r.Intn(len(models))]}}
					}
					gs = append(gs, g)
				}
				maxPrice := uint64(50 + r.Intn(100))
				o := order(tn, maxPrice, maxPrice*uint64(10+r.Intn(20)), gs...)
				o.Manual = r.Intn(5) == 0
				o.AutoRedeploy = r.Intn(2) == 0
				o.Kind = []string{market.KindBatch, market.KindService}[r.Intn(2)]
				steps = append(steps, step{tn, o})
			case k < 7 && len(open) > 0:
				o := open[r.Intn(len(open))]
				steps = append(steps, bid(provs[r.Intn(len(provs))], o.ID, uint64(1+r.Intn(int(o.MaxPrice)))))
			case k < 8 && len(active) > 0:
				l := active[r.Intn(len(active))]
				p := h.accountOf(l.Provider)
				if l.StartedHeight == 0 && r.Intn(4) != 0 {
					steps = append(steps, start(p, l.ID))
				} else {
					steps = append(steps, step{p, &market.MsgHeartbeat{Provider: p.addr, LeaseID: l.ID}})
				}
			case k < 9 && len(active) > 0 && r.Intn(3) == 0:
				l := active[r.Intn(len(active))]
				who := []types.Address{l.Owner, l.Provider, l.Provider}[r.Intn(3)]
				if who == l.Provider && r.Intn(2) == 0 {
					steps = append(steps, step{h.accountOf(who), &market.MsgCompleteLease{Provider: who, LeaseID: l.ID, OutputHash: []byte{1}}})
				} else {
					steps = append(steps, step{h.accountOf(who), &market.MsgCloseLease{Sender: who, LeaseID: l.ID}})
				}
			case len(open) > 0:
				o := open[r.Intn(len(open))]
				if o.Manual && r.Intn(2) == 0 {
					steps = append(steps, step{h.accountOf(o.Owner), &market.MsgCreateLease{Owner: o.Owner, OrderID: o.ID, Provider: provs[r.Intn(len(provs))].addr}})
				} else {
					steps = append(steps, step{h.accountOf(o.Owner), &market.MsgCloseOrder{Owner: o.Owner, OrderID: o.ID}})
				}
			}
		}
		txs := h.signSteps(steps...)
		res := h.block(txs...)
		if rr := replica.block(txs...); string(rr.AppHash) != string(res.AppHash) {
			t.Fatalf("height %d: replica app hash %x, want %x", h.height, rr.AppHash, res.AppHash)
		}
		for _, tr := range res.TxResults {
			if tr.Code == 0 {
				nOK++
			} else if tr.Code == types.CodeInternal {
				t.Fatalf("block %d: internal error: %s", h.height, tr.Log)
			}
		}
		evs := res.Events
		for _, tr := range res.TxResults {
			evs = append(evs, tr.Events...)
		}
		for _, e := range evs {
			switch e.Type {
			case "lease_created":
				nLeases++
			case "lease_started":
				nStarted++
			case "lease_closed", "order_closed":
				for _, a := range e.Attributes {
					if a.Key == "reason" {
						reasons[e.Type+":"+a.Value]++
					}
				}
			}
		}
		if got := fmt.Sprint(bank.Supply(h.ctx())); got != supply0 {
			t.Fatalf("height %d: supply %s, want %s", h.height, got, supply0)
		}
		if err := CheckInvariants(h.ctx()); err != nil {
			t.Fatalf("height %d: %v", h.height, err)
		}
		for i, p := range provs {
			var sum market.Usage
			for _, l := range market.Leases(h.ctx(), market.LeaseFilter{State: market.LeaseActive, Provider: p.addr}) {
				sum = sum.Add(l.Usage)
			}
			if err := sum.FitsIn(market.Total(invs[i])); err != nil {
				t.Fatalf("height %d: provider %d leased beyond its inventory: %v", h.height, i, err)
			}
		}
	}
	if nLeases < 5 || nStarted < 3 || nOK < blocks {
		t.Fatalf("only %d leases (%d started) and %d successful txs: the generator is too hostile", nLeases, nStarted, nOK)
	}
	t.Logf("%d blocks, %d successful txs, %d leases (%d started), closes: %v", blocks, nOK, nLeases, nStarted, reasons)
}

func (h *harness) accountOf(a types.Address) *account {
	for _, acc := range h.accs {
		if acc.addr == a {
			return acc
		}
	}
	h.t.Fatalf("no account %s", a)
	return nil
}

// The market's query paths answer JSON, and refuse bad arguments with
// CodeInvalidRequest and unknown IDs with CodeNotFound.
func TestMarketQueries(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 100, 5_000, gpuGroup("a", 1, 0))})
	h.mustExec(bid(p1, 1, 100))
	for _, path := range []string{"/market/orders", "/market/orders?state=active", "/market/orders?state=open&owner=" + tenant.addr.String(),
		"/market/order/1", "/market/order/1/match", "/market/bids", "/market/bids?order=1", "/market/bids/1", "/market/leases",
		"/market/leases?state=active&provider=" + p1.addr.String(), "/market/lease/1", "/market/provider/" + p1.addr.String() + "/capacity",
		"/escrow/account/1", "/params"} {
		var v any
		if c := h.query(path, &v); c != 0 {
			t.Fatalf("Query(%s) code %d", path, c)
		}
	}
	var ps map[string]json.RawMessage
	h.query("/params", &ps)
	if _, ok := ps["market"]; !ok {
		t.Fatalf("/params lacks market: %v", ps)
	}
	for path, want := range map[string]uint32{"/market/order/0": types.CodeInvalidRequest, "/market/order/x": types.CodeInvalidRequest,
		"/market/order/9": types.CodeNotFound, "/market/lease/9": types.CodeNotFound, "/escrow/account/9": types.CodeNotFound,
		"/cert/" + tenant.addr.String(): types.CodeNotFound, "/cert/nope": types.CodeInvalidRequest, "/market/nope": types.CodeInvalidRequest} {
		if c := h.query(path, nil); c != want {
			t.Errorf("Query(%s) code %d, want %d", path, c, want)
		}
	}
	_ = errors.New
}

// A batch job that fails is reported as such: the lease closes with reason
// workload_failed, the provider is paid for the blocks it ran, the rest is refunded.
func TestFailedBatchJob(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 100, 100_000, gpuGroup("a", 1, 1, "rtx4090"))})
	h.mustExec(bid(p1, 1, 100))
	h.mustExec(start(p1, 1))
	h.block()
	res := h.mustExec(step{p1, &market.MsgCompleteLease{Provider: p1.addr, LeaseID: 1, OutputHash: []byte{1}, Failed: true}})
	if !hasEvent(res, "lease_closed", "reason", market.ReasonWorkloadFailed) {
		t.Fatal("no lease_closed event with reason workload_failed")
	}
	l, e := h.lease(1), h.escrowOf(1)
	if l.CloseReason != market.ReasonWorkloadFailed || e.Paid+e.Fees != 200 || e.Refunded != 100_000-200 {
		t.Fatalf("lease %+v, escrow %+v: want workload_failed, 2 blocks paid, the rest refunded", l, e)
	}
}

// No tenant pays for nothing: a lease whose workload never started pays its provider
// nothing, whether it is reported failed to start, closed by the tenant or times out.
func TestUnstartedLeasePaysNothing(t *testing.T) {
	const timeout = 5
	tests := []struct {
		name   string
		act    func(h *harness, p1, tenant *account) // run after the lease is made
		reason string
	}{
		{"failed to start", func(h *harness, p1, _ *account) {
			h.block()
			h.mustExec(step{p1, &market.MsgCompleteLease{Provider: p1.addr, LeaseID: 1, Failed: true}})
		}, market.ReasonWorkloadFailed},
		{"tenant closes before sending anything", func(h *harness, _, tenant *account) {
			h.block()
			h.mustExec(step{tenant, &market.MsgCloseOrder{Owner: tenant.addr, OrderID: 1}})
		}, market.ReasonTenantClosed},
		{"no workload within start_timeout_blocks", func(h *harness, p1, _ *account) {
			L := h.height
			for h.height < L+timeout-1 {
				h.mustExec(step{p1, &market.MsgHeartbeat{Provider: p1.addr, LeaseID: 1}})
			}
			if l := h.lease(1); l.State != market.LeaseActive {
				t.Fatalf("lease closed at %d, before start_timeout_blocks %d after %d", l.ClosedHeight, timeout, L)
			}
			res := h.block()
			if !hasEvent(res, "lease_closed", "reason", market.ReasonStartTimeout) {
				t.Fatal("no lease_closed event with reason start_timeout")
			}
			if l := h.lease(1); l.ClosedHeight != L+timeout {
				t.Fatalf("lease closed at %d, want %d", l.ClosedHeight, L+timeout)
			}
		}, market.ReasonStartTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p1, _, tenant, _ := marketHarness(t, func(g *GenesisState) { g.Params.Market.StartTimeoutBlocks = timeout })
			h.mustExec(step{tenant, order(tenant, 100, 100_000, gpuGroup("a", 1, 1, "rtx4090"))})
			tenantBefore := bank.Balance(h.ctx(), tenant.addr, "ukiln")
			h.mustExec(bid(p1, 1, 100))
			tt.act(h, p1, tenant)
			l, e := h.lease(1), h.escrowOf(1)
			if l.State != market.LeaseClosed || l.CloseReason != tt.reason || l.StartedHeight != 0 {
				t.Fatalf("lease = %+v, want closed %s, never started", l, tt.reason)
			}
			if e.Paid != 0 || e.Fees != 0 || e.Refunded != 100_000 || e.State != escrow.StateClosed {
				t.Fatalf("escrow = %+v, want nothing paid and all 100000 refunded", e)
			}
			fees := uint64(0)
			if tt.reason == market.ReasonTenantClosed {
				fees = 5000 // the close tx's fee
			}
			if got := bank.Balance(h.ctx(), tenant.addr, "ukiln"); got != tenantBefore+100_000-fees {
				t.Fatalf("tenant balance %d, want %d", got, tenantBefore+100_000-fees)
			}
			if o := h.order(1); o.State != market.OrderClosed {
				t.Fatalf("order = %+v, want closed", o)
			}
		})
	}
}

// Only the lease's provider may report it started, once, while it is active.
func TestStartLeaseRefusals(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 100, 100_000, gpuGroup("a", 1, 1, "rtx4090"))})
	h.mustExec(bid(p1, 1, 100))
	tests := []struct {
		name string
		s    step
		want uint32
	}{
		{"another provider", start(p2, 1), types.CodeUnauthorized},
		{"the tenant", step{tenant, &market.MsgStartLease{Provider: tenant.addr, LeaseID: 1}}, types.CodeUnauthorized},
		{"unknown lease", start(p1, 99), types.CodeNotFound},
		{"first start", start(p1, 1), 0},
		{"second start", start(p1, 1), types.CodeAlreadyExists},
	}
	for _, tt := range tests {
		if r := h.exec(tt.s).TxResults[0]; r.Code != tt.want {
			t.Errorf("%s: code %d (%s), want %d", tt.name, r.Code, r.Log, tt.want)
		}
	}
	h.mustExec(step{tenant, &market.MsgCloseOrder{Owner: tenant.addr, OrderID: 1}})
	if r := h.exec(start(p1, 1)).TxResults[0]; r.Code != types.CodeLeaseClosed {
		t.Errorf("start of a closed lease: code %d (%s), want %d", r.Code, r.Log, types.CodeLeaseClosed)
	}
}

// A service lease never completes, but its provider may report its workload dead.
func TestServiceReportedFailed(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, nil)
	o := order(tenant, 100, 100_000, gpuGroup("a", 1, 1, "rtx4090"))
	o.Kind = market.KindService
	h.mustExec(step{tenant, o})
	h.mustExec(bid(p1, 1, 100))
	h.block()
	res := h.exec(step{p1, &market.MsgCompleteLease{Provider: p1.addr, LeaseID: 1, OutputHash: []byte{1}}})
	if c := res.TxResults[0].Code; c != types.CodeInvalidRequest {
		t.Fatalf("completing a service lease: code %d, want %d", c, types.CodeInvalidRequest)
	}
	h.mustExec(step{p1, &market.MsgCompleteLease{Provider: p1.addr, LeaseID: 1, Failed: true}})
	if l := h.lease(1); l.CloseReason != market.ReasonWorkloadFailed {
		t.Fatalf("lease %+v, want closed workload_failed", l)
	}
}

// A provider whose executor cannot run an order's workload cannot bid on it, and the
// order's match report names the runtime: container images on a process provider,
// GPUs on a Docker host without the NVIDIA runtime.
func TestRuntimeMustRunTheOrder(t *testing.T) {
	h := newHarnessWith(t, 4, nil)
	proc, nogpu, tenant := h.accs[1], h.accs[2], h.accs[3]
	pinv := inv("eu-west", rtx4090(2))
	pinv.Runtime = registry.Runtime{Executor: "process", GPUs: true}
	dinv := inv("eu-west", rtx4090(2))
	dinv.Runtime = registry.Runtime{Executor: "docker", Containers: true}
	h.mustExec(h.register(proc, pinv), h.register(nogpu, dinv))
	image := gpuGroup("web", 1, 0)
	image.Containers = true
	h.mustExec(step{tenant, order(tenant, 100, 5_000, image)}, step{tenant, order(tenant, 100, 5_000, gpuGroup("train", 1, 1))})
	res := h.exec(bid(proc, 1, 100), bid(nogpu, 2, 100))
	for i, r := range res.TxResults {
		if r.Code != types.CodeRequirementsUnmet || !strings.Contains(r.Log, "runtime") {
			t.Errorf("bid %d: code %d (%s), want %d naming the runtime", i, r.Code, r.Log, types.CodeRequirementsUnmet)
		}
	}
	for id, who := range map[int]*account{1: proc, 2: nogpu} {
		var rep market.MatchReport
		if c := h.query(fmt.Sprintf("/market/order/%d/match", id), &rep); c != 0 {
			t.Fatalf("match %d: code %d", id, c)
		}
		found := false
		for _, p := range rep.Providers {
			for _, f := range p.Failures {
				found = found || p.Provider == who.addr && f.Constraint == "runtime"
			}
		}
		if !found || rep.Summary["runtime"] != 1 {
			t.Errorf("order %d match = %+v, want %s failing runtime", id, rep, who.addr)
		}
	}
	// The same providers take what they can run.
	h.mustExec(step{tenant, order(tenant, 100, 5_000, gpuGroup("cmd", 1, 1))}, step{tenant, order(tenant, 100, 5_000, image)})
	h.mustExec(bid(proc, 3, 100), bid(nogpu, 4, 100))
	if h.lease(3).Provider != proc.addr || h.lease(4).Provider != nogpu.addr {
		t.Fatalf("leases 3, 4 = %+v, %+v", h.lease(3), h.lease(4))
	}
}
