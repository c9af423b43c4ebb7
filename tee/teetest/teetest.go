// Package teetest makes SEV-SNP attestation reports signed by a test-only AMD
// certificate chain (go-sev-guest's fake signer), for tests of the chain's
// attestation path: real reports cannot bind a report_data chosen by a test. A chain
// under test trusts the signer through the tee module's sev_roots parameter. A Signer
// is a tee.Producer, so the provider daemon and the CLI produce evidence from it
// where a real confidential VM would ask its firmware.
// NEVER use outside tests.
package teetest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/kiln-network/kiln/tee"
)

// Signer signs SEV-SNP reports with a test-only VCEK.
type Signer struct {
	s *sevtest.AmdSigner
}

var _ tee.Producer = (*Signer)(nil)

// NewSigner makes a test-only Milan chain whose certificates are valid from created.
func NewSigner(tb testing.TB, created time.Time) *Signer {
	tb.Helper()
	s, err := sevtest.DefaultTestOnlyCertChain("Milan-B0", created)
	if err != nil {
		tb.Fatal(err)
	}
	return &Signer{s}
}

// Roots is the chain's ASK and ARK as PEM, in AMD KDS cert_chain order: the value of
// the tee module's sev_roots parameter that trusts this signer.
func (s *Signer) Roots() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.s.Ask.Raw})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.s.Ark.Raw}))
}

// Report returns a signed SEV-SNP report carrying reportData and measurement (48
// bytes; nil: a fixed one), with the debug bit as asked, and its collateral.
func (s *Signer) Report(tb testing.TB, reportData, measurement []byte, debug bool) ([]byte, tee.Collateral) {
	tb.Helper()
	raw, col, err := s.report(reportData, measurement, debug)
	if err != nil {
		tb.Fatal(err)
	}
	return raw, col
}

func (s *Signer) report(reportData, measurement []byte, debug bool) ([]byte, tee.Collateral, error) {
	raw := make([]byte, abi.ReportSize)
	binary.LittleEndian.PutUint32(raw[0x00:], 2) // version
	policy := uint64(1<<17 | 0x1f)               // reserved bit 17 must be set; ABI 0.31
	if debug {
		policy |= 1 << 19
	}
	binary.LittleEndian.PutUint64(raw[0x08:], policy)
	binary.LittleEndian.PutUint32(raw[0x34:], 1) // ECDSA P-384 with SHA-384
	copy(raw[0x50:0x90], reportData)
	if measurement == nil {
		measurement = Measurement()
	}
	copy(raw[0x90:0xC0], measurement)
	binary.LittleEndian.PutUint64(raw[0x180:], uint64(s.s.TCB)) // reported TCB: the VCEK's
	binary.LittleEndian.PutUint64(raw[0x38:], uint64(s.s.TCB))  // current TCB
	binary.LittleEndian.PutUint64(raw[0x1E0:], uint64(s.s.TCB)) // committed TCB
	copy(raw[0x1A0:0x1E0], s.s.HWID[:])
	r, sg, err := s.s.Sign(abi.SignedComponent(raw))
	if err != nil {
		return nil, tee.Collateral{}, fmt.Errorf("sign test report: %w", err)
	}
	if err := abi.SetSignature(r, sg, raw); err != nil {
		return nil, tee.Collateral{}, fmt.Errorf("sign test report: %w", err)
	}
	return raw, tee.Collateral{VCEK: s.s.Vcek.Raw}, nil
}

// Capability says the signer produces SEV-SNP evidence.
func (s *Signer) Capability() tee.Capability {
	return tee.Capability{Type: tee.TypeSEVSNP, Device: "teetest", Message: "test-only SEV-SNP signer (teetest): evidence trusted only by a chain whose sev_roots are its roots"}
}

// Produce returns a report binding reportData with the default measurement, and its
// VCEK, as an SEV-SNP guest's firmware and host would.
func (s *Signer) Produce(ctx context.Context, reportData []byte) ([]byte, tee.Collateral, error) {
	if err := ctx.Err(); err != nil {
		return nil, tee.Collateral{}, err
	}
	if len(reportData) != tee.ReportDataSize {
		return nil, tee.Collateral{}, fmt.Errorf("report_data: %d bytes, want %d", len(reportData), tee.ReportDataSize)
	}
	return s.report(reportData, nil, false)
}

// CRL returns a CRL of the chain's ARK (DER, as AMD's KDS serves it) valid from
// thisUpdate for a week; with revokeASK it lists the chain's ASK as revoked.
func (s *Signer) CRL(tb testing.TB, thisUpdate time.Time, revokeASK bool) []byte {
	tb.Helper()
	tmpl := &x509.RevocationList{
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
		Number:             big.NewInt(1),
		ThisUpdate:         thisUpdate,
		NextUpdate:         thisUpdate.Add(7 * 24 * time.Hour),
	}
	if revokeASK {
		tmpl.RevokedCertificates = []pkix.RevokedCertificate{{SerialNumber: s.s.Ask.SerialNumber, RevocationTime: thisUpdate}}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, s.s.Ark, s.s.Keys.Ark)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// Measurement is the launch measurement Report uses by default.
func Measurement() []byte {
	m := make([]byte, 48)
	for i := range m {
		m[i] = byte(0xA0 + i%16)
	}
	return m
}
