package teetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/kiln-network/kiln/tee"
)

// A report from the test signer verifies when its roots are trusted, and is refused
// as from an unknown chip under AMD's real roots.
func TestSignerReportVerifies(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSigner(t, at.Add(-time.Hour))
	rd := tee.BindingData("c", []byte{1}, []byte{2}, "age1x")
	raw, col := s.Report(t, rd, nil, false)
	col.SEVRoots = []byte(s.Roots())
	if r := tee.Verify(raw, tee.Options{Now: at, Collateral: col, ReportData: rd}); !r.Valid {
		t.Fatalf("Verify(test report, test roots) = %+v", r)
	}
	col.SEVRoots = nil
	if r := tee.Verify(raw, tee.Options{Now: at, Collateral: col, ReportData: rd}); r.Valid || r.Reason != tee.ReasonUnknownChip {
		t.Fatalf("Verify(test report, AMD roots) = %+v, want %s", r, tee.ReasonUnknownChip)
	}
}

// With revocations checked, a report is refused without a CRL (crl_missing), with a
// CRL that has expired or is not yet valid (stale: an old CRL from before a revocation
// cannot stand in for the current one), with a CRL listing its ASK (revoked), and with
// a CRL its ARK did not sign (bad_signature); a current CRL that revokes nothing passes.
func TestRevocationsChecked(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSigner(t, at.Add(-time.Hour))
	rd := tee.BindingData("c", []byte{1}, []byte{2}, "age1x")
	raw, col := s.Report(t, rd, nil, false)
	col.SEVRoots = []byte(s.Roots())
	cases := []struct {
		name string
		crl  []byte
		want string
	}{
		{"no CRL", nil, tee.ReasonCRLMissing},
		{"current CRL", s.CRL(t, at.Add(-time.Minute), false), ""},
		{"CRL revoking the ASK", s.CRL(t, at.Add(-time.Minute), true), tee.ReasonRevoked},
		{"CRL past its next update", s.CRL(t, at.Add(-8*24*time.Hour), false), tee.ReasonStale},
		{"CRL not yet valid", s.CRL(t, at.Add(time.Hour), false), tee.ReasonStale},
		{"CRL of another ARK", foreignCRL(t, at.Add(-time.Minute)), tee.ReasonBadSignature},
	}
	for _, c := range cases {
		cc := col
		cc.SEVCRL = c.crl
		r := tee.Verify(raw, tee.Options{Now: at, Collateral: cc, ReportData: rd, CheckRevocations: true})
		if r.Valid != (c.want == "") || r.Reason != c.want {
			t.Errorf("Verify(%s) = valid %v reason %q (%s), want reason %q", c.name, r.Valid, r.Reason, r.Detail, c.want)
		}
	}
	// Unchecked, the revoking CRL is not consulted.
	col.SEVCRL = s.CRL(t, at.Add(-time.Minute), true)
	if r := tee.Verify(raw, tee.Options{Now: at, Collateral: col, ReportData: rd}); !r.Valid {
		t.Errorf("Verify(revocations not checked) = %+v, want valid", r)
	}
}

// The signer is a tee.Producer: what it produces binds the report_data asked for and
// verifies with its collateral.
func TestSignerProduces(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSigner(t, at.Add(-time.Hour))
	rd := tee.BindingData("c", []byte{1}, []byte{3}, "age1y")
	raw, col, err := s.Produce(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	col.SEVRoots = []byte(s.Roots())
	if r := tee.Verify(raw, tee.Options{Now: at, Collateral: col, ReportData: rd}); !r.Valid {
		t.Fatalf("Verify(produced) = %+v", r)
	}
	if _, _, err := s.Produce(context.Background(), rd[:10]); err == nil {
		t.Error("Produce(10 bytes of report_data) succeeded")
	}
}

// foreignCRL is a CRL signed by a key of its own, not the test ARK's (NewSigner always
// uses go-sev-guest's fixed test keys).
func foreignCRL(t *testing.T, thisUpdate time.Time) []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ARK-Milan"}, NotBefore: thisUpdate.Add(-time.Hour),
		NotAfter: thisUpdate.Add(time.Hour * 24 * 365), KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ark, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(time.Hour)}, ark, key)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}
