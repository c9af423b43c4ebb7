package daemon_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/tee/teetest"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// reattestBlocks is how long an attestation lasts in these tests: 4 s at 200 ms
// blocks, so that the test sees the daemon attest again across several expiries in
// seconds; the daemon's margin is then a quarter, 5 blocks (1 s).
const reattestBlocks = 20

// flakyProducer is a test signer whose firmware can be made to stop answering.
type flakyProducer struct {
	tee.Producer
	fail  atomic.Bool
	calls atomic.Int32
}

func (p *flakyProducer) Produce(ctx context.Context, reportData []byte) ([]byte, tee.Collateral, error) {
	p.calls.Add(1)
	if p.fail.Load() {
		return nil, tee.Collateral{}, errors.New("guest device: no answer from the firmware (test)")
	}
	return p.Producer.Produce(ctx, reportData)
}

// metric scrapes the daemon's metrics and returns the value of the sample name.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in the metrics:\n%s", name, b)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// teeService is a one-GPU service that requires a TEE with the test signer's
// measurement.
func teeService() tenant.Plan {
	g := market.Group{Name: "conf", Count: 1, CPUMilli: 500, MemoryBytes: 64 << 20, StorageBytes: 64 << 20,
		GPU: market.GPURequest{Units: 1, Models: []market.GPUFilter{{Model: "h100"}}}}
	return tenant.Plan{Name: "conf", Kind: market.KindService, Groups: []market.Group{g}, MaxPrice: 5000,
		Deposit: types.NewCoin(types.NativeDenom, 5000*600), TEE: market.TEECPU,
		AllowedMeasurements: []string{hex.EncodeToString(teetest.Measurement())},
		Manifest: api.Manifest{Services: []api.Service{{Name: "conf", Command: []string{"sleep", "60"}, Count: 1,
			Resources: api.ServiceResources{Unit: 1, CPUMilli: 500, MemoryBytes: 64 << 20, StorageBytes: 64 << 20, GPUUnits: 1}}}}}
}

// A daemon configured to attest does so by itself: at start, and again before each
// expiry, so that its TEE lease outlives several attestation periods; the chain
// (require_crl on) gets the CRL from the daemon's collateral_dir. A TEE job reads an
// input the tenant sealed to the attestation's key. When its evidence
// stops coming, it retries with back-off, gives up after max_attempts, its
// attestation lapses and the chain closes the TEE lease with tee_attestation_expired;
// it then bids on no TEE order, and the chain's no-bid explanation says why. A daemon
// asked to attest on a machine that cannot (no guest device) fails to start before
// registering.
func TestDaemonAttestsByItself(t *testing.T) {
	s := teetest.NewSigner(t, time.Now().Add(-time.Hour))
	n := startNetWith(t, func(g *app.GenesisState) {
		g.Params.TEE.SEVRoots = s.Roots()
		g.Params.TEE.ReattestBlocks = reattestBlocks
		g.Params.TEE.RequireCRL = true
	})
	// 120 s: start, a deployment, two attestation periods (8 s), the failed attempts
	// and a lapse (4 s), and a last order, at 200 ms blocks on a loaded machine.
	deadline := time.Now().Add(120 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	if tee.Probe().Type == "" {
		cfg := testConfig(filepath.Join(t.TempDir(), "no-tee"))
		cfg.TEE.Attest = true
		d, err := daemon.New(cfg, daemon.Deps{Client: n.c, Key: n.provKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Run(ctx); err == nil || !strings.Contains(err.Error(), "tee.attest") || !strings.Contains(err.Error(), "cannot produce TEE evidence") {
			t.Fatalf("Run(attest on a machine without a guest device) = %v, want a refusal naming tee.attest", err)
		}
		if _, err := n.c.Attestation(ctx, n.prov); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("attestation after a refused start: %v, want none", err)
		}
	}

	colDir := t.TempDir()
	if err := (tee.Collateral{SEVCRL: s.CRL(t, time.Now().Add(-time.Minute), false)}).Save(colDir); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "p")
	cfg := testConfig(stateDir)
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.TEE = daemon.TEEConfig{Attest: true, CollateralDir: colDir, MaxAttempts: 3,
		RetryMin: daemon.Duration(100 * time.Millisecond), RetryMax: daemon.Duration(400 * time.Millisecond)}
	prod := &flakyProducer{Producer: s}
	d := n.startDaemonDeps(t, cfg, daemon.Deps{Producer: prod})

	var first xtee.Attestation
	poll.WaitFor(t, time.Until(deadline), func() (err error) {
		first, err = n.c.Attestation(ctx, n.prov)
		if err == nil && first.State != xtee.StateActive {
			err = fmt.Errorf("attestation %+v, want active", first)
		}
		return err
	})
	b, err := os.ReadFile(filepath.Join(stateDir, "tee", "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(b)))
	if err != nil || first.SealKey != id.Recipient().String() || first.Measurement != hex.EncodeToString(teetest.Measurement()) {
		t.Fatalf("attestation %+v, want the seal key of %s (%v) and the signer's measurement", first, stateDir, err)
	}

	// NB: one client certificate for the API calls below and Deploy's.
	certDir := t.TempDir()
	if n.tenantCert, err = tenant.EnsureCert(ctx, n.c, n.tenantKey, certDir, nil); err != nil {
		t.Fatal(err)
	}
	// A TEE batch job reads an input the tenant sealed to the attestation's key: the
	// daemon opens it inside the attested environment.
	var sealed bytes.Buffer
	if _, err := tenant.Seal(ctx, n.c, n.prov, teeService().AllowedMeasurements, strings.NewReader("hello sealed\n"), &sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &market.MsgCreateOrder{Owner: n.tenant, Kind: market.KindBatch,
		Groups: []market.Group{batchGroup}, MaxPrice: 5000, Deposit: types.NewCoin(types.NativeDenom, 20*5000), TEE: market.TEECPU}); err != nil {
		t.Fatal(err)
	}
	all, err := n.c.Orders(ctx, "", n.tenant)
	if err != nil {
		t.Fatal(err)
	}
	job := all[len(all)-1].ID
	if out, err := n.c.WaitLease(ctx, job, 20*time.Millisecond, nil); err != nil || out.Lease == nil || out.Lease.Provider != n.prov {
		t.Fatalf("TEE batch order %d: %+v, %v; want leased to %s", job, out, err, n.prov)
	}
	pc := n.providerClient(t, ctx)
	if _, err := pc.UploadInput(ctx, job, "in.txt"+api.SealedInputSuffix, bytes.NewReader(sealed.Bytes()), int64(sealed.Len())); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.SendManifest(ctx, job, api.Manifest{Services: []api.Service{{
		Name: "job", Count: 1, Command: []string{"sh", "-c", `tr a-z A-Z < "$KILN_IN/in.txt" > "$KILN_OUT/out.txt"`},
		Resources: api.ServiceResources{CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, GPUUnits: 1},
	}}}); err != nil {
		t.Fatal(err)
	}
	if l := n.waitLease(t, ctx, job, "closed", closed); l.CloseReason != market.ReasonCompleted {
		t.Fatalf("sealed-input job closed with %s, want completed", l.CloseReason)
	}
	var got bytes.Buffer
	if _, err := pc.DownloadOutput(ctx, job, "out.txt", &got); err != nil || got.String() != "HELLO SEALED\n" {
		t.Fatalf("sealed-input job output %q (%v), want HELLO SEALED", got.String(), err)
	}

	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, teeService(), tenant.Options{CertDir: certDir, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Provider != n.prov {
		t.Fatalf("TEE order leased to %s, want the attested %s", r.Provider, n.prov)
	}

	// Across two expiries of the first attestation's length: the daemon attested
	// again before each, so the lease runs on.
	until := first.ExpiresHeight + reattestBlocks
	if err := n.c.WaitHeight(ctx, until+1); err != nil {
		t.Fatal(err)
	}
	now, err := n.c.Attestation(ctx, n.prov)
	if err != nil || now.State != xtee.StateActive || now.CreatedHeight <= first.CreatedHeight || now.SealKey != first.SealKey {
		t.Fatalf("attestation at height %d = %+v (%v), want a newer active one with the same seal key", until+1, now, err)
	}
	if l, err := n.c.Lease(ctx, r.OrderID); err != nil || l.State != market.LeaseActive {
		t.Fatalf("lease after %d blocks = %+v (%v), want active: the daemon attested again in time", until+1-r.LeaseHeight, l, err)
	}
	if v := metric(t, d.MetricsAddr(), "kiln_provider_tee_attestations_total"); v < 3 {
		t.Errorf("kiln_provider_tee_attestations_total = %v, want >= 3 (at start, then before each of two expiries)", v)
	}
	if v := metric(t, d.MetricsAddr(), "kiln_provider_tee_attested"); v != 1 {
		t.Errorf("kiln_provider_tee_attested = %v, want 1", v)
	}

	// The firmware stops answering: bounded attempts, then the lapse closes the lease.
	prod.fail.Store(true)
	calls := prod.calls.Load()
	l := n.waitLease(t, ctx, r.OrderID, "closed by the lapse", closed)
	if l.CloseReason != xtee.ReasonExpired {
		t.Fatalf("lease closed with %q, want %s", l.CloseReason, xtee.ReasonExpired)
	}
	e, err := n.c.Escrow(ctx, r.OrderID)
	if err != nil || e.Refunded == 0 {
		t.Fatalf("escrow after the lapse = %+v (%v), want the unused deposit refunded", e, err)
	}
	poll.WaitFor(t, time.Until(deadline), func() error {
		if v := metric(t, d.MetricsAddr(), "kiln_provider_tee_given_up"); v != 1 {
			return fmt.Errorf("kiln_provider_tee_given_up = %v", v)
		}
		return nil
	})
	if got := prod.calls.Load() - calls; got != int32(cfg.TEE.MaxAttempts) {
		t.Errorf("%d attempts after the firmware stopped, want max_attempts = %d", got, cfg.TEE.MaxAttempts)
	}
	if v := metric(t, d.MetricsAddr(), "kiln_provider_tee_attest_failures_total"); v != float64(cfg.TEE.MaxAttempts) {
		t.Errorf("kiln_provider_tee_attest_failures_total = %v, want %d", v, cfg.TEE.MaxAttempts)
	}

	// Lapsed: a new TEE order gets no bid from it, and the chain says why.
	plan := teeService()
	m := &market.MsgCreateOrder{Owner: n.tenant, Kind: plan.Kind, Groups: plan.Groups, MaxPrice: plan.MaxPrice, Deposit: plan.Deposit,
		TEE: plan.TEE, AllowedMeasurements: plan.AllowedMeasurements}
	res, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.c.WaitHeight(ctx, res.Height+5); err != nil {
		t.Fatal(err)
	}
	orders, err := n.c.Orders(ctx, market.OrderOpen, n.tenant)
	if err != nil || len(orders) != 1 {
		t.Fatalf("open orders %+v (%v), want the new one", orders, err)
	}
	if bids, err := n.c.Bids(ctx, orders[0].ID, n.prov); err != nil || len(bids) != 0 {
		t.Fatalf("bids on a TEE order after the lapse: %+v (%v), want none", bids, err)
	}
	rep, err := n.c.WhyNoBids(ctx, orders[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	why := ""
	for _, pm := range rep.Providers {
		for _, f := range pm.Failures {
			if pm.Provider == n.prov && f.Constraint == "tee" {
				why = f.Detail
			}
		}
	}
	if !strings.Contains(why, "expired") {
		t.Errorf("no-bid explanation of %s = %q (report %+v), want the tee constraint naming the expired attestation", n.prov, why, rep)
	}
	logs := n.logs.String()
	if !strings.Contains(logs, "attestation given up") {
		t.Error("the daemon's log does not say it gave up attesting")
	}
	// NB: the daemon never sent the bid (the chain would refuse it): it says why.
	if want := fmt.Sprintf("order=%d why=\"order requires a TEE (cpu): attestation given up", orders[0].ID); !strings.Contains(logs, want) || strings.Contains(logs, "bid refused") {
		t.Errorf("the daemon's log does not say why it does not bid on order %d (%s), or shows a bid refused", orders[0].ID, want)
	}
}
