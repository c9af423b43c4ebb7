package tee

import (
	"crypto/x509"
	_ "embed"
	"fmt"
	"strings"

	tabi "github.com/google/go-tdx-guest/abi"
	tpb "github.com/google/go-tdx-guest/proto/tdx"
	tverify "github.com/google/go-tdx-guest/verify"
)

// tdAttributesDebug is the DEBUG bit of TD_ATTRIBUTES (byte 0, bit 0): the TD's
// state may be read and written by the host's debugger.
const tdAttributesDebug = 1

// intelRootPEM is Intel's SGX Root CA, the root of TDX PCK chains and of PCS
// collateral: the certificate go-tdx-guest embeds (verify/trusted_root.pem, Apache
// 2.0), named here so that the library does not warn on every quote that it falls
// back on its own copy.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// intelRoots is intelRootPEM as a pool.
var intelRoots = func() *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(intelRootPEM) {
		panic("tee: embedded Intel SGX Root CA does not parse")
	}
	return p
}()

// verifyTDX checks a TDX quote (version 4): expectations first (report_data, MRTD,
// debug attribute), then with go-tdx-guest the PCK chain to Intel's root, the quote
// and QE report signatures and, with collateral, the TCB status from Intel's TCB
// info and QE identity, CRLs and collateral expiry.
func verifyTDX(raw []byte, opts Options) Result {
	r := Result{Type: TypeTDX}
	q, err := tabi.QuoteToProto(raw)
	if err != nil {
		return r.refuse(ReasonMalformed, fmt.Sprintf("read TDX quote: %v", err))
	}
	quote, ok := q.(*tpb.QuoteV4)
	if !ok {
		return r.refuse(ReasonUnsupportedVersion, fmt.Sprintf("TDX quote format %T: only version 4 is verified", q))
	}
	body := quote.GetTdQuoteBody()
	r.Measurement = hexOf(body.GetMrTd())
	r.ReportData = hexOf(body.GetReportData())
	r.TCB = TCB{TeeTcbSvn: hexOf(body.GetTeeTcbSvn())}
	if a := body.GetTdAttributes(); len(a) > 0 {
		r.Debug = a[0]&tdAttributesDebug != 0
	}
	if opts.ReportData != nil && hexOf(opts.ReportData) != r.ReportData {
		return r.refuse(ReasonReportData, fmt.Sprintf("report_data is %s, want %s (a quote made for another key, nonce or sealing key)", short(r.ReportData), short(hexOf(opts.ReportData))))
	}
	if !measurementAllowed(r.Measurement, opts.AllowedMeasurements) {
		return r.refuse(ReasonMeasurement, fmt.Sprintf("MRTD %s is not one of the %d allowed", short(r.Measurement), len(opts.AllowedMeasurements)))
	}
	if r.Debug && !opts.AllowDebug {
		return r.refuse(ReasonDebug, "TD_ATTRIBUTES.DEBUG is set: the host can read the TD's memory")
	}
	vo := &tverify.Options{Now: opts.Now, TrustedRoots: intelRoots}
	if opts.CheckRevocations {
		// NB: go-tdx-guest checks the CRLs' signatures and expiry; missing ones get their
		// own reason here.
		for _, c := range []struct {
			der  []byte
			name string
		}{{opts.Collateral.TDXPckCrl, "pck_crl.der (Intel PCS PCK CRL)"}, {opts.Collateral.TDXRootCrl, "root_crl.der (Intel SGX root CA CRL)"}} {
			if len(c.der) == 0 {
				return r.refuse(ReasonCRLMissing, "revocations are checked and the collateral has no "+c.name)
			}
		}
	}
	if opts.Collateral.hasTDX() {
		vo.GetCollateral, vo.Getter, vo.CheckRevocations = true, tdxGetter{opts.Collateral}, opts.CheckRevocations
	} else if opts.CheckRevocations {
		return r.refuse(ReasonMalformed, "checking revocations needs the TDX collateral (tcb_info.json, qe_identity.json, pck_crl.der, root_crl.der and their chains)")
	}
	if err := tverify.TdxQuote(quote, vo); err != nil {
		return r.refuse(tdxReason(err.Error()), err.Error())
	}
	r.Valid = true
	return r
}

// tdxReason classifies a go-tdx-guest verification error.
func tdxReason(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "revoked"):
		return ReasonRevoked
	case strings.Contains(m, "outofdate") || strings.Contains(m, "out of date") || strings.Contains(m, "tcb level") || strings.Contains(m, "tcb status"):
		return ReasonTCBOutdated
	case strings.Contains(m, "expired") || strings.Contains(m, "not yet valid"):
		return ReasonStale
	case strings.Contains(m, "unable to verify message digest") || strings.Contains(m, "signature"):
		return ReasonBadSignature
	case strings.Contains(m, "offline collateral") || strings.Contains(m, "missing") || strings.Contains(m, "unable to decode") || strings.Contains(m, "empty"):
		return ReasonMalformed
	}
	return ReasonUnknownChip
}
