package app

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/tee/teetest"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// teeHarness: p1 and p2 registered providers, a chain that trusts a test-only AMD
// signer, attestations good for reattest blocks.
func teeHarness(t *testing.T, reattest int64) (h *harness, s *teetest.Signer, p1, p2, tenant *account) {
	s = teetest.NewSigner(t, time.Unix(0, 0))
	h, p1, p2, tenant, _ = marketHarness(t, func(g *GenesisState) {
		g.Params.TEE.SEVRoots = s.Roots()
		g.Params.TEE.ReattestBlocks = reattest
	})
	return h, s, p1, p2, tenant
}

func sealKey(t *testing.T) string {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// attest builds p's MsgAttest over the newest chain nonce, bound for `for` (p
// itself, or another provider to test replay).
func attest(t *testing.T, h *harness, s *teetest.Signer, p *account, bindTo types.Address, measurement []byte, seal string) *xtee.MsgAttest {
	nh, nonce, ok := xtee.LatestNonce(h.ctx())
	if !ok {
		t.Fatal("no nonce on chain")
	}
	raw, col := s.Report(t, tee.BindingData(testChain, bindTo[:], nonce, seal), measurement, false)
	cb, _ := json.Marshal(col)
	return &xtee.MsgAttest{Provider: p.addr, NonceHeight: nh, SealKey: seal, Evidence: raw, Collateral: cb}
}

func teeOrder(tn *account, tee string, ms ...string) *market.MsgCreateOrder {
	o := order(tn, 1000, 100_000, gpuGroup("conf", 1, 1))
	o.Kind, o.TEE, o.AllowedMeasurements = market.KindService, tee, ms
	return o
}

// A provider attests with a report bound to its key and a fresh chain nonce: the
// chain records type, measurement, TCB, seal key and expiry. The same report sent by
// another provider, or one bound to an old nonce, is refused with the reason.
func TestAttestRecordedAndReplayRefused(t *testing.T) {
	h, s, p1, p2, _ := teeHarness(t, 50)
	seal := sealKey(t)
	m := attest(t, h, s, p1, p1.addr, nil, seal)
	h.mustExec(step{p1, m})
	at, ok := xtee.Get(h.ctx(), p1.addr)
	wantM := hex.EncodeToString(teetest.Measurement())
	if !ok || at.Type != tee.TypeSEVSNP || at.Measurement != wantM || at.SealKey != seal || at.ExpiresHeight != h.height+50 || at.State != xtee.StateActive {
		t.Fatalf("attestation = %+v, want sev-snp %s sealed to %s expiring at %d", at, wantM, seal, h.height+50)
	}
	replay := &xtee.MsgAttest{Provider: p2.addr, NonceHeight: m.NonceHeight, SealKey: m.SealKey, Evidence: m.Evidence, Collateral: m.Collateral}
	res := h.exec(step{p2, replay})
	if r := res.TxResults[0]; r.Code != types.CodeAttestationRefused || !strings.Contains(r.Log, tee.ReasonReportData) {
		t.Errorf("replay by another provider: code %d %q, want %d naming %s", r.Code, r.Log, types.CodeAttestationRefused, tee.ReasonReportData)
	}
	old := attest(t, h, s, p2, p2.addr, nil, seal)
	for i := int64(0); i <= xtee.DefaultParams().NonceWindowBlocks; i++ {
		h.block()
	}
	res = h.exec(step{p2, old})
	if r := res.TxResults[0]; r.Code != types.CodeAttestationRefused || !strings.Contains(r.Log, tee.ReasonStale) {
		t.Errorf("old nonce: code %d %q, want %d naming %s", r.Code, r.Log, types.CodeAttestationRefused, tee.ReasonStale)
	}
	if _, ok := xtee.Get(h.ctx(), p2.addr); ok {
		t.Error("p2 has an attestation after two refusals")
	}
}

// A TEE order is bid on only by attested providers whose measurement it accepts: an
// unattested provider's bid is refused and the no-bid explanation (the order's match
// report) names the tee constraint. When the attestation expires, the lease closes
// with reason tee_attestation_expired and the tenant gets the unused escrow back.
func TestTEEOrderPlacementAndExpiry(t *testing.T) {
	h, s, p1, p2, tenant := teeHarness(t, 8)
	h.mustExec(step{p1, attest(t, h, s, p1, p1.addr, nil, sealKey(t))})
	expires := h.height + 8
	wantM := hex.EncodeToString(teetest.Measurement())
	other := strings.Repeat("00", 48)
	h.mustExec(step{tenant, teeOrder(tenant, market.TEECPU, wantM)}, step{tenant, teeOrder(tenant, market.TEECPU, other)})

	res := h.exec(bid(p2, 1, 900), bid(p1, 2, 900))
	for i, want := range []string{"has no attestation on chain", "is not one of them"} {
		if r := res.TxResults[i]; r.Code != types.CodeRequirementsUnmet || !strings.Contains(r.Log, want) {
			t.Errorf("bid %d: code %d %q, want %d with %q", i, r.Code, r.Log, types.CodeRequirementsUnmet, want)
		}
	}
	var rep market.MatchReport
	if code := h.query("/market/order/1/match", &rep); code != 0 {
		t.Fatalf("match query code %d", code)
	}
	explained := false
	for _, pm := range rep.Providers {
		for _, f := range pm.Failures {
			explained = explained || (pm.Provider == p2.addr && f.Constraint == "tee" && strings.Contains(f.Detail, "no attestation"))
		}
	}
	if !explained || rep.Summary["tee"] < 1 {
		t.Errorf("match report %+v does not explain p2's no-bid by tee", rep)
	}

	h.mustExec(bid(p1, 1, 900))
	if l := h.lease(1); l.Provider != p1.addr || l.State != market.LeaseActive {
		t.Fatalf("lease 1 = %+v, want active on the attested provider", l)
	}
	h.mustExec(start(p1, 1))
	for h.height < expires-1 {
		h.block()
	}
	if l := h.lease(1); l.State != market.LeaseActive {
		t.Fatalf("lease closed before the attestation expired: %+v", l)
	}
	res = h.block() // the expiry height
	if !hasEvent(res, "tee_attestation_expired", "provider", p1.addr.String()) {
		t.Error("no tee_attestation_expired event")
	}
	l := h.lease(1)
	if l.State != market.LeaseClosed || l.CloseReason != xtee.ReasonExpired {
		t.Fatalf("lease after expiry = %+v, want closed with %s", l, xtee.ReasonExpired)
	}
	e := h.escrowOf(1)
	if e.State != escrow.StateClosed || e.Refunded == 0 || e.Refunded+e.Paid+e.Fees+e.Held != e.Deposited {
		t.Fatalf("escrow = %+v, want closed with the unused deposit refunded", e)
	}
	if at, _ := xtee.Get(h.ctx(), p1.addr); at.State != xtee.StateExpired {
		t.Errorf("attestation state %s, want expired", at.State)
	}
	// Expired: p1 can no longer take TEE orders.
	h.mustExec(step{tenant, teeOrder(tenant, market.TEECPU)})
	if r := h.exec(bid(p1, 3, 900)).TxResults[0]; r.Code != types.CodeRequirementsUnmet || !strings.Contains(r.Log, "expired") {
		t.Errorf("bid after expiry: code %d %q", r.Code, r.Log)
	}
}

// Orders validate their TEE requirement.
func TestTEEOrderValidation(t *testing.T) {
	tn := &account{}
	cpuOnly := order(tn, 1000, 100_000, gpuGroup("c", 1, 0))
	cases := []struct {
		m    *market.MsgCreateOrder
		want string
	}{
		{teeOrder(tn, "sgx"), "tee: must be empty, cpu or cpu-gpu"},
		{func() *market.MsgCreateOrder { o := *cpuOnly; o.TEE = market.TEECPUGPU; return &o }(), "cpu-gpu needs GPUs"},
		{func() *market.MsgCreateOrder {
			o := *cpuOnly
			o.AllowedMeasurements = []string{strings.Repeat("ab", 48)}
			return &o
		}(), "need tee cpu or cpu-gpu"},
		{teeOrder(tn, market.TEECPU, "abc"), "48 bytes of lower-case hex"},
		{teeOrder(tn, market.TEECPU, strings.Repeat("ab", 48), strings.Repeat("ab", 48)), "listed twice"},
	}
	for _, c := range cases {
		if err := c.m.ValidateBasic(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateBasic(tee %q, %v) = %v, want %q", c.m.TEE, c.m.AllowedMeasurements, err, c.want)
		}
	}
	if err := teeOrder(tn, market.TEECPUGPU, strings.Repeat("ab", 48)).ValidateBasic(); err != nil {
		t.Errorf("valid cpu-gpu order refused: %v", err)
	}
}

// With require_crl, an attestation must carry the ARK's current CRL: without one it is
// refused (crl_missing), with one listing its ASK it is refused (revoked), with one
// past its next update it is refused (stale); with a current CRL it is recorded.
func TestRequireCRL(t *testing.T) {
	s := teetest.NewSigner(t, time.Unix(0, 0))
	h, p1, _, _, _ := marketHarness(t, func(g *GenesisState) {
		g.Params.TEE.SEVRoots = s.Roots()
		g.Params.TEE.RequireCRL = true
	})
	seal := sealKey(t)
	withCRL := func(crl []byte) *xtee.MsgAttest {
		m := attest(t, h, s, p1, p1.addr, nil, seal)
		var col tee.Collateral
		if err := json.Unmarshal(m.Collateral, &col); err != nil {
			t.Fatal(err)
		}
		col.SEVCRL = crl
		m.Collateral, _ = json.Marshal(col)
		return m
	}
	// NB: the harness's block time is height seconds after 1970.
	now := blockTime(h.height + 1)
	for _, c := range []struct {
		name string
		crl  []byte
		want string
	}{
		{"no CRL", nil, tee.ReasonCRLMissing},
		{"CRL revoking the ASK", s.CRL(t, now.Add(-time.Second), true), tee.ReasonRevoked},
		{"expired CRL", s.CRL(t, now.Add(-8*24*time.Hour), false), tee.ReasonStale},
	} {
		res := h.block(h.sign(p1, p1.seq, 20_000, withCRL(c.crl))) // NB: a CRL makes the tx larger than stepFee pays for
		p1.seq++                                                   // NB: a refused message still uses its sequence
		if r := res.TxResults[0]; r.Code != types.CodeAttestationRefused || !strings.Contains(r.Log, c.want) {
			t.Errorf("%s: code %d %q, want %d naming %s", c.name, r.Code, r.Log, types.CodeAttestationRefused, c.want)
		}
	}
	if _, ok := xtee.Get(h.ctx(), p1.addr); ok {
		t.Fatal("an attestation was recorded after three refusals")
	}
	if r := h.block(h.sign(p1, p1.seq, 20_000, withCRL(s.CRL(t, blockTime(h.height+1).Add(-time.Second), false)))).TxResults[0]; r.Code != 0 {
		t.Fatalf("attestation with a current CRL: code %d %q", r.Code, r.Log)
	}
	if at, ok := xtee.Get(h.ctx(), p1.addr); !ok || at.State != xtee.StateActive {
		t.Fatalf("attestation with a current CRL = %+v, %v; want active", at, ok)
	}
}
