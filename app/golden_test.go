package app

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

var updateAppHash = flag.Bool("update-apphash", false, "rewrite testdata/golden_apphash.txt (a consensus-breaking change: see TestGoldenAppHash)")

const goldenAppHashFile = "testdata/golden_apphash.txt"

// The app hash commits to every stored byte, and the stored records are written with
// encoding/json: a change in how any record is encoded (a Go release, a field's tag or
// type, what a message writes) changes the app hash, and nodes that run the old and the
// new code fork at the first block that writes such a record. This scripted scenario
// touches every kind of record (accounts, balances, supply, fees, validators,
// delegations, unbondings, generic bonds, providers, certificates, orders, bids, leases,
// usage, escrow accounts) and pins the app hash after each block, so the first step
// whose bytes changed is named.
func TestGoldenAppHash(t *testing.T) {
	got := goldenScenario(t)
	var b strings.Builder
	for _, s := range got {
		fmt.Fprintf(&b, "%d %x %s\n", s.height, s.hash, s.name)
	}
	if *updateAppHash {
		if err := os.WriteFile(goldenAppHashFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenAppHashFile)
		return
	}
	raw, err := os.ReadFile(goldenAppHashFile)
	if err != nil {
		t.Fatalf("%v (create it with go test ./app -run TestGoldenAppHash -update-apphash)", err)
	}
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		want = append(want, sc.Text())
	}
	have := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i := range max(len(have), len(want)) {
		var h, w string
		if i < len(have) {
			h = have[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if h != w {
			t.Fatalf(`app hash differs from %s at line %d:
   got  %s
   want %s
The bytes the ledger stores changed at this step (a record's encoding, its fields, or
what a message writes). Nodes running the old and the new code would fork at the first
block that writes such a record.
 - Not intended? Find what changed the bytes written at this step.
 - Intended? It is a consensus-breaking change: bump app.AppVersion, say so in the
   commit message, and regenerate the golden file with
       go test ./app -run TestGoldenAppHash -update-apphash`, goldenAppHashFile, i+1, h, w)
		}
	}
}

type goldenStep struct {
	height int64
	hash   []byte
	name   string
}

// goldenScenario runs the scripted scenario and returns the app hash after each block.
// Everything in it is fixed: keys from fixed seeds, a certificate from testdata, block
// times from the height.
func goldenScenario(t *testing.T) []goldenStep {
	h := newHarnessWith(t, 6, func(g *GenesisState) {
		g.Params.Staking.UnbondingBlocks = 3
		g.Params.Market.HeartbeatTimeoutBlocks = 20
	})
	pem, err := os.ReadFile(filepath.Join("testdata", "golden_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// NB: a tenant's certificate names its account (CN); this one names the tenant's
	// fixed-seed address.
	tenantPEM, err := os.ReadFile(filepath.Join("testdata", "golden_tenant_cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	val, p1, p2, tenant, other, delegator := h.accs[0], h.accs[1], h.accs[2], h.accs[3], h.accs[4], h.accs[5]
	seed := sha256.Sum256([]byte("golden validator 2"))
	cons2 := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	register := func(p *account, inv registry.Inventory) step {
		return step{p, &registry.MsgRegisterProvider{Owner: p.addr, Endpoint: "https://" + p.addr.String()[:12] + ".example:8443",
			CertPEM: pem, Inventory: inv, Stake: types.NewCoin("ukiln", 100_000_000)}}
	}
	svc := order(tenant, 500, 50_000, gpuGroup("svc", 1, 1, "a100"))
	svc.Kind = market.KindService
	svc.AutoRedeploy = true
	steps := []struct {
		name  string
		steps []step
	}{
		{"genesis", nil},
		{"transfers in two denoms", []step{
			{val, &bank.MsgSend{From: val.addr, To: other.addr, Amount: types.Coins{types.NewCoin("ukiln", 12_345), types.NewCoin("uusd", 7)}}},
			{delegator, &bank.MsgSend{From: delegator.addr, To: tenant.addr, Amount: types.Coins{types.NewCoin("ukiln", 1)}}}}},
		{"second validator, delegation", []step{
			{other, &staking.MsgCreateValidator{Operator: other.addr, ConsPubKey: cons2, Moniker: "golden-2", Amount: types.NewCoin("ukiln", 5_000_000)}},
			{delegator, &staking.MsgDelegate{Delegator: delegator.addr, Validator: val.addr, Amount: types.NewCoin("ukiln", 3_000_000)}}}},
		{"undelegation", []step{{delegator, &staking.MsgUndelegate{Delegator: delegator.addr, Validator: val.addr, Amount: types.NewCoin("ukiln", 1_000_000)}}}},
		{"providers register, tenant publishes a certificate", []step{
			register(p1, inv("eu-west", rtx4090(2))), register(p2, inv("us-east", a100(4))),
			{tenant, &cert.MsgPublishCert{Owner: tenant.addr, CertPEM: tenantPEM}}}},
		{"orders: batch, service, manual", []step{
			{tenant, order(tenant, 1000, 100_000, gpuGroup("train", 1, 1, "rtx4090"))},
			{tenant, svc},
			{tenant, func() types.Msg { o := order(tenant, 300, 10_000, gpuGroup("pick", 1, 0)); o.Manual = true; return o }()}}},
		{"bids; the auction leases orders 1 and 2; the undelegation matures", []step{bid(p1, 1, 900), bid(p2, 2, 400), bid(p1, 3, 250), bid(p2, 3, 200)}},
		{"the tenant picks the dearer bid on the manual order; the workloads of leases 1 and 2 start", []step{
			{tenant, &market.MsgCreateLease{Owner: tenant.addr, OrderID: 3, Provider: p1.addr}}, start(p1, 1), start(p2, 2)}},
		{"payment; heartbeat; escrow top-up; lease 3 starts", []step{
			start(p1, 3),
			{p2, &market.MsgHeartbeat{Provider: p2.addr, LeaseID: 2}},
			{tenant, &escrow.MsgDeposit{Owner: tenant.addr, OrderID: 2, Amount: types.NewCoin("ukiln", 5_000)}}}},
		{"payment", nil},
		{"the batch job completes", []step{{p1, &market.MsgCompleteLease{Provider: p1.addr, LeaseID: 1, OutputHash: bytes.Repeat([]byte{0xab}, 32)}}}},
		{"the tenant closes the service", []step{{tenant, &market.MsgCloseLease{Sender: tenant.addr, LeaseID: 2}}}},
		{"the provider closes the manual lease; certificate revoked", []step{
			{p1, &market.MsgCloseLease{Sender: p1.addr, LeaseID: 3}},
			{tenant, &cert.MsgRevokeCert{Owner: tenant.addr}}}},
		{"a provider deregisters", []step{{p2, &registry.MsgDeregisterProvider{Owner: p2.addr}}}},
	}
	var out []goldenStep
	for i, s := range steps {
		if i > 0 {
			h.mustExec(s.steps...)
		}
		out = append(out, goldenStep{h.height, bytes.Clone(h.app.AppHash()), s.name})
	}
	if got := h.app.db.Recompute(); !bytes.Equal(got, h.app.AppHash()) {
		t.Fatalf("incremental app hash %x differs from a full recomputation %x", h.app.AppHash(), got)
	}
	// NB: the scenario must do what its steps say, or the golden file pins less than it
	// claims.
	if l := h.lease(1); l.CloseReason != market.ReasonCompleted {
		t.Fatalf("lease 1 = %+v, want completed", l)
	}
	for id := uint64(1); id <= 3; id++ {
		if e := h.escrowOf(id); h.lease(id).StartedHeight == 0 || e.Paid == 0 {
			t.Fatalf("lease %d = %+v, escrow %+v: want started and paid", id, h.lease(id), e)
		}
	}
	if l := h.lease(2); l.CloseReason != market.ReasonTenantClosed || l.Provider != p2.addr {
		t.Fatalf("lease 2 = %+v, want closed by the tenant", l)
	}
	if l := h.lease(3); l.CloseReason != market.ReasonProviderClosed || l.Price != 250 {
		t.Fatalf("lease 3 = %+v, want the picked 250 bid closed by its provider", l)
	}
	if n := len(staking.Unbondings(h.ctx())); n != 1 {
		t.Fatalf("%d unbondings pending, want the provider's deregistration only", n)
	}
	return out
}
