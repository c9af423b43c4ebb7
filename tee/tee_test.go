package tee

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	sevdata "github.com/google/go-sev-guest/verify/testdata"
	tdxcases "github.com/google/go-tdx-guest/testing"
	tdxdata "github.com/google/go-tdx-guest/testing/testdata"
)

// The samples the verification libraries ship: an SEV-SNP report from a Milan VM
// with the VCEK certificate AMD's KDS issued for it, and a TDX quote (Sapphire
// Rapids) with the PCS responses for its platform. Their certificates and
// collateral are checked at the times the libraries' own tests use.
var (
	sevAt = time.Date(2022, time.September, 24, 1, 0, 0, 0, time.UTC)
	tdxAt = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
)

// SEV-SNP report field offsets (AMD SEV-SNP ABI, table "ATTESTATION_REPORT").
const (
	sevPolicy      = 0x08
	sevReportData  = 0x50
	sevMeasurement = 0x90
	sevReportedTCB = 0x180
	sevChipID      = 0x1A0
	sevSignature   = 0x2A0
)

// TDX quote v4 offsets: a 48-byte header, then the TD quote body.
const (
	tdxTdAttributes = 48 + 120
	tdxMrTd         = 48 + 136
	tdxReportData   = 48 + 520
	tdxSignature    = 48 + 584 + 4
)

func sevSample(t *testing.T) ([]byte, Options) {
	t.Helper()
	raw := append([]byte(nil), sevdata.AttestationBytes...)
	if len(raw) > sevReportSize {
		raw = raw[:sevReportSize]
	}
	// NB: the sample comes from a VM launched with a debug policy; it verifies only
	// when debugging is allowed (TestSampleDebugRefused).
	return raw, Options{Now: sevAt, Collateral: Collateral{VCEK: sevdata.VcekBytes}, AllowDebug: true}
}

func unescape(t *testing.T, h map[string][]string, k string) []byte {
	t.Helper()
	s, err := url.QueryUnescape(h[k][0])
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// tdxCollateral writes the library's PCS sample responses into a collateral
// directory, as an operator would save them, and reads it back.
func tdxCollateral(t *testing.T) Collateral {
	t.Helper()
	c := Collateral{
		TDXTcbInfo: tdxdata.TcbInfoBody, TDXTcbInfoChain: unescape(t, tdxcases.TcbInfoHeader, "Tcb-Info-Issuer-Chain"),
		TDXQeIdentity: tdxdata.QeIdentityBody, TDXQeIdentityChain: unescape(t, tdxcases.QeIdentityHeader, "Sgx-Enclave-Identity-Issuer-Chain"),
		TDXPckCrl: tdxdata.PckCrlBody, TDXPckCrlChain: unescape(t, tdxcases.PckCrlHeader, "Sgx-Pck-Crl-Issuer-Chain"),
		TDXRootCrl: tdxdata.RootCrlBody,
	}
	dir := t.TempDir()
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCollateral(dir)
	if err != nil {
		t.Fatalf("LoadCollateral = %v", err)
	}
	return got
}

// tdxSample is the library's TDX quote with no TCB collateral: the PCK chain to
// Intel's root and the quote and QE report signatures are verified.
// (TestTDXSampleTCB checks it against the PCS sample collateral.)
func tdxSample(t *testing.T) ([]byte, Options) {
	t.Helper()
	return append([]byte(nil), tdxdata.RawQuote...), Options{Now: tdxAt}
}

// The library's PCS sample TCB info lists SVNs above the sample quote's
// TEE_TCB_SVN (go-tdx-guest's own TestNegativeRawQuoteVerifyWithCollateral expects
// the same): with that collateral the quote is refused as outdated; the collateral
// read back from a directory is otherwise accepted (chains, CRLs, expiry), and after
// its expiry it is stale.
func TestTDXSampleTCB(t *testing.T) {
	raw, _ := tdxSample(t)
	c := tdxCollateral(t)
	if r := Verify(raw, Options{Now: tdxAt, Collateral: c, CheckRevocations: true}); r.Valid || r.Reason != ReasonTCBOutdated {
		t.Errorf("Verify(tdx sample, PCS sample collateral) = %+v, want refused %s", r, ReasonTCBOutdated)
	}
	if r := Verify(raw, Options{Now: time.Date(2053, 7, 1, 0, 0, 0, 0, time.UTC), Collateral: c}); r.Valid || r.Reason != ReasonStale {
		t.Errorf("Verify(tdx sample, collateral in 2053) = %+v, want refused %s", r, ReasonStale)
	}
	if r := Verify(raw, Options{Now: tdxAt, CheckRevocations: true}); r.Reason != ReasonCRLMissing {
		t.Errorf("Verify(revocations without collateral) = %+v, want %s", r, ReasonCRLMissing)
	}
	noRootCRL := c
	noRootCRL.TDXRootCrl = nil
	if r := Verify(raw, Options{Now: tdxAt, Collateral: noRootCRL, CheckRevocations: true}); r.Reason != ReasonCRLMissing || !strings.Contains(r.Detail, "root_crl.der") {
		t.Errorf("Verify(revocations without the root CA CRL) = %+v, want %s naming root_crl.der", r, ReasonCRLMissing)
	}
}

// The SEV-SNP sample's guest policy allows debugging: by default it is refused for
// that, and clearing the bit (to hide it) breaks the signature.
func TestSampleDebugRefused(t *testing.T) {
	raw, opts := sevSample(t)
	opts.AllowDebug = false
	if r := Verify(raw, opts); r.Valid || r.Reason != ReasonDebug || !r.Debug {
		t.Errorf("Verify(debug sample, debug not allowed) = %+v, want %s", r, ReasonDebug)
	}
	if r := Verify(flip(raw, sevPolicy+2, 0x08), opts); r.Valid || r.Reason != ReasonBadSignature || r.Debug {
		t.Errorf("Verify(debug bit cleared) = %+v, want %s", r, ReasonBadSignature)
	}
}

func TestSamplesVerify(t *testing.T) {
	sev, sevOpts := sevSample(t)
	tdx, tdxOpts := tdxSample(t)
	for _, tc := range []struct {
		name string
		raw  []byte
		opts Options
		typ  string
	}{
		{"sev-snp", sev, sevOpts, TypeSEVSNP},
		{"tdx", tdx, tdxOpts, TypeTDX},
	} {
		r := Verify(tc.raw, tc.opts)
		if !r.Valid || r.Type != tc.typ || r.Reason != "" {
			t.Errorf("Verify(%s sample) = %+v, want valid %s", tc.name, r, tc.typ)
		}
		if len(r.Measurement) != 96 || len(r.ReportData) != 128 {
			t.Errorf("Verify(%s sample) measurement %q report_data %q, want 48 and 64 bytes of hex", tc.name, r.Measurement, r.ReportData)
		}
	}
}

// flip returns a copy of raw with the byte at off changed by xor.
func flip(raw []byte, off int, xor byte) []byte {
	out := append([]byte(nil), raw...)
	out[off] ^= xor
	return out
}

// Each single-field tamper of a real sample is refused with the reason naming that
// field; with nothing expected of a field, a change to it breaks the signature.
func TestTamperedSEVRefused(t *testing.T) {
	raw, opts := sevSample(t)
	good := Verify(raw, opts)
	withExpect := opts
	rd, _ := hex.DecodeString(good.ReportData)
	withExpect.ReportData = rd
	withExpect.AllowedMeasurements = []string{good.Measurement}

	tcbPlus := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint64(tcbPlus[sevReportedTCB:], binary.LittleEndian.Uint64(raw[sevReportedTCB:])+1)
	tests := []struct {
		name string
		raw  []byte
		opts Options
		want string
	}{
		{"signature", flip(raw, sevSignature+1, 0x01), withExpect, ReasonBadSignature},
		{"measurement", flip(raw, sevMeasurement, 0x01), withExpect, ReasonMeasurement},
		{"measurement, none expected", flip(raw, sevMeasurement, 0x01), opts, ReasonBadSignature},
		{"report_data", flip(raw, sevReportData, 0x01), withExpect, ReasonReportData},
		{"report_data, none expected", flip(raw, sevReportData, 0x01), opts, ReasonBadSignature},
		{"policy: debug bit cleared", flip(raw, sevPolicy+2, 0x08), withExpect, ReasonBadSignature},
		{"reported TCB", tcbPlus, withExpect, ReasonTCBMismatch},
		{"chip id", flip(raw, sevChipID, 0x01), withExpect, ReasonUnknownChip},
		{"stale: certificates expired", raw, Options{Now: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), Collateral: opts.Collateral, AllowDebug: true}, ReasonStale},
		{"no VCEK", raw, Options{Now: sevAt, AllowDebug: true}, ReasonMalformed},
		{"outdated TCB", raw, Options{Now: sevAt, Collateral: opts.Collateral, AllowDebug: true, MinSEVTCB: 0xff00000000000000}, ReasonTCBOutdated},
		{"truncated", raw[:100], opts, ReasonMalformed},
	}
	for _, tc := range tests {
		r := Verify(tc.raw, tc.opts)
		if r.Valid || r.Reason != tc.want {
			t.Errorf("Verify(tampered %s) = valid %v reason %q (%s), want refused %q", tc.name, r.Valid, r.Reason, r.Detail, tc.want)
		}
	}
	// The untampered report passes the same expectations.
	if r := Verify(raw, withExpect); !r.Valid {
		t.Fatalf("Verify(sample, its own report_data and measurement) = %+v", r)
	}
}

func TestTamperedTDXRefused(t *testing.T) {
	raw, opts := tdxSample(t)
	good := Verify(raw, opts)
	withExpect := opts
	rd, _ := hex.DecodeString(good.ReportData)
	withExpect.ReportData = rd
	withExpect.AllowedMeasurements = []string{good.Measurement}
	tests := []struct {
		name string
		raw  []byte
		opts Options
		want string
	}{
		{"signature", flip(raw, tdxSignature+3, 0x01), withExpect, ReasonBadSignature},
		{"mrtd", flip(raw, tdxMrTd, 0x01), withExpect, ReasonMeasurement},
		{"mrtd, none expected", flip(raw, tdxMrTd, 0x01), opts, ReasonBadSignature},
		{"report_data", flip(raw, tdxReportData, 0x01), withExpect, ReasonReportData},
		{"td_attributes: debug", flip(raw, tdxTdAttributes, tdAttributesDebug), withExpect, ReasonDebug},
		{"stale: PCK chain expired", raw, Options{Now: time.Date(2053, 7, 1, 0, 0, 0, 0, time.UTC)}, ReasonStale},
	}
	for _, tc := range tests {
		o := tc.opts
		r := Verify(tc.raw, o)
		if r.Valid || r.Reason != tc.want {
			t.Errorf("Verify(tampered %s) = valid %v reason %q (%s), want refused %q", tc.name, r.Valid, r.Reason, r.Detail, tc.want)
		}
	}
}

// A report bound to another provider key or an older nonce is refused: BindingData
// changes with each of its inputs.
func TestBindingData(t *testing.T) {
	base := BindingData("kiln-1", []byte{1, 2, 3}, []byte{9, 9}, "age1abc")
	for name, other := range map[string][]byte{
		"chain":    BindingData("kiln-2", []byte{1, 2, 3}, []byte{9, 9}, "age1abc"),
		"provider": BindingData("kiln-1", []byte{1, 2, 4}, []byte{9, 9}, "age1abc"),
		"nonce":    BindingData("kiln-1", []byte{1, 2, 3}, []byte{9, 8}, "age1abc"),
		"seal key": BindingData("kiln-1", []byte{1, 2, 3}, []byte{9, 9}, "age1abd"),
		// length prefixes: moving a byte between fields changes the binding
		"shifted": BindingData("kiln-1", []byte{1, 2}, []byte{3, 9, 9}, "age1abc"),
	} {
		if hex.EncodeToString(other) == hex.EncodeToString(base) {
			t.Errorf("BindingData with another %s = the same", name)
		}
	}
	if len(base) != ReportDataSize {
		t.Errorf("len(BindingData) = %d, want %d", len(base), ReportDataSize)
	}
	raw, opts := sevSample(t)
	opts.ReportData = base
	if r := Verify(raw, opts); r.Reason != ReasonReportData {
		t.Errorf("Verify(sample bound elsewhere, expecting our binding) reason = %q, want %q", r.Reason, ReasonReportData)
	}
}

func TestDetect(t *testing.T) {
	sev, _ := sevSample(t)
	if got := Detect(sev); got != TypeSEVSNP {
		t.Errorf("Detect(sev sample) = %q", got)
	}
	if got := Detect(tdxdata.RawQuote); got != TypeTDX {
		t.Errorf("Detect(tdx sample) = %q", got)
	}
	for _, b := range [][]byte{nil, []byte("hello"), make([]byte, sevReportSize)} {
		if got := Detect(b); got != "" {
			t.Errorf("Detect(%d bytes) = %q, want none", len(b), got)
		}
	}
}

// FuzzVerify: Verify never panics on any input and refuses what it cannot read.
func FuzzVerify(f *testing.F) {
	f.Add(sevdata.AttestationBytes[:sevReportSize])
	f.Add(tdxdata.RawQuote)
	f.Add([]byte{4, 0, 2, 0, 0x81, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := Verify(raw, Options{Now: sevAt, Collateral: Collateral{VCEK: sevdata.VcekBytes}})
		if r.Valid && Detect(raw) == "" {
			t.Fatalf("Verify accepted undetected evidence")
		}
		if !r.Valid && r.Reason == "" {
			t.Fatalf("Verify refused without a reason: %+v", r)
		}
	})
}

// On a machine that is not a confidential VM (this one, unless it has a guest device),
// Produce says so instead of failing obscurely.
func TestProduceWithoutGuestDevice(t *testing.T) {
	if p := Probe(); p.Type != "" {
		t.Skipf("this machine is a confidential VM (%s): Produce asks its firmware", p.Device)
	}
	if _, _, err := (Device{}).Produce(context.Background(), make([]byte, 64)); err != ErrNoTEE {
		t.Fatalf("Device.Produce = %v, want ErrNoTEE", err)
	}
	if c := (Device{}).Capability(); c.Type != "" {
		t.Fatalf("Device.Capability = %+v on a machine Probe finds no guest device on", c)
	}
	if p := Probe(); !strings.Contains(p.Message, "cannot produce TEE evidence") {
		t.Fatalf("Probe message %q", p.Message)
	}
}

// BenchmarkVerify measures one verification of each library sample (what a validator
// spends per MsgAttest, in CheckTx and again in FinalizeBlock), against the baseline
// of only parsing the report.
func BenchmarkVerify(b *testing.B) {
	sev := sevdata.AttestationBytes[:sevReportSize]
	sevOpts := Options{Now: sevAt, Collateral: Collateral{VCEK: sevdata.VcekBytes}, AllowDebug: true}
	b.Run("sev-snp", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !Verify(sev, sevOpts).Valid {
				b.Fatal("sample refused")
			}
		}
	})
	b.Run("tdx", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !Verify(tdxdata.RawQuote, Options{Now: tdxAt}).Valid {
				b.Fatal("sample refused")
			}
		}
	})
	b.Run("baseline-parse-only", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Detect(sev)
		}
	})
}

// Merge puts the non-empty fields of its argument over the collateral; Empty is true
// only for nothing at all.
func TestCollateralMerge(t *testing.T) {
	got := Collateral{VCEK: []byte("vcek"), SEVCRL: []byte("old")}.Merge(Collateral{SEVCRL: []byte("new"), TDXRootCrl: []byte("root")})
	if string(got.VCEK) != "vcek" || string(got.SEVCRL) != "new" || string(got.TDXRootCrl) != "root" {
		t.Fatalf("Merge = %+v", got)
	}
	if (Collateral{}).Empty() != true || (Collateral{TDXPckCrlChain: []byte("x")}).Empty() {
		t.Fatal("Empty is wrong")
	}
}
