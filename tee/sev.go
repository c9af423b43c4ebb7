package tee

import (
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// sevReportSize is the size of an SEV-SNP attestation report (abi.ReportSize).
const sevReportSize = abi.ReportSize

// verifySEV checks an SEV-SNP report: expectations first (report_data, measurement,
// debug policy, chip and TCB against the VCEK certificate, minimum TCB), then the
// VCEK's chain to AMD's roots and the report's signature with go-sev-guest.
func verifySEV(raw []byte, opts Options) Result {
	r := Result{Type: TypeSEVSNP}
	rep, err := abi.ReportToProto(raw)
	if err != nil {
		return r.refuse(ReasonMalformed, fmt.Sprintf("read SEV-SNP report: %v", err))
	}
	r.Measurement = hexOf(rep.GetMeasurement())
	r.ReportData = hexOf(rep.GetReportData())
	r.ChipID = hexOf(rep.GetChipId())
	parts := kds.DecomposeTCBVersion(kds.TCBVersion(rep.GetReportedTcb()))
	r.TCB = TCB{Raw: rep.GetReportedTcb(), Bootloader: parts.BlSpl, TEE: parts.TeeSpl, SNP: parts.SnpSpl, Microcode: parts.UcodeSpl}
	pol, err := abi.ParseSnpPolicy(rep.GetPolicy())
	if err != nil {
		return r.refuse(ReasonMalformed, fmt.Sprintf("read guest policy: %v", err))
	}
	r.Debug = pol.Debug

	if opts.ReportData != nil && hexOf(opts.ReportData) != r.ReportData {
		return r.refuse(ReasonReportData, fmt.Sprintf("report_data is %s, want %s (a report made for another key, nonce or sealing key)", short(r.ReportData), short(hexOf(opts.ReportData))))
	}
	if !measurementAllowed(r.Measurement, opts.AllowedMeasurements) {
		return r.refuse(ReasonMeasurement, fmt.Sprintf("measurement %s is not one of the %d allowed", short(r.Measurement), len(opts.AllowedMeasurements)))
	}
	if r.Debug && !opts.AllowDebug {
		return r.refuse(ReasonDebug, "guest policy allows debugging: the host can read the guest's memory")
	}
	if len(opts.Collateral.VCEK) == 0 {
		return r.refuse(ReasonMalformed, "no VCEK certificate in the collateral (vcek.der, from AMD's KDS for this chip and TCB)")
	}
	vcek, err := trust.ParseCert(opts.Collateral.VCEK)
	if err != nil {
		return r.refuse(ReasonMalformed, fmt.Sprintf("read VCEK certificate: %v", err))
	}
	exts, err := kds.VcekCertificateExtensions(vcek)
	if err != nil {
		return r.refuse(ReasonMalformed, fmt.Sprintf("read VCEK certificate extensions: %v", err))
	}
	if len(exts.HWID) > 0 && hexOf(exts.HWID) != r.ChipID {
		return r.refuse(ReasonUnknownChip, fmt.Sprintf("chip id %s is not the one the VCEK certificate was issued to (%s)", short(r.ChipID), short(hexOf(exts.HWID))))
	}
	if uint64(exts.TCBVersion) != rep.GetReportedTcb() {
		return r.refuse(ReasonTCBMismatch, fmt.Sprintf("reported TCB %#x is not the TCB %#x the VCEK certificate was issued for", rep.GetReportedTcb(), uint64(exts.TCBVersion)))
	}
	if opts.MinSEVTCB != 0 && !kds.TCBPartsLE(kds.DecomposeTCBVersion(kds.TCBVersion(opts.MinSEVTCB)), parts) {
		return r.refuse(ReasonTCBOutdated, fmt.Sprintf("reported TCB %#x is below the minimum %#x", rep.GetReportedTcb(), opts.MinSEVTCB))
	}

	if opts.CheckRevocations {
		if reason, detail := crlCurrent(opts.Collateral.SEVCRL, "sev_crl.der (the ARK's CRL from AMD's KDS)", opts.Now); reason != "" {
			return r.refuse(reason, detail)
		}
	}

	chain := &spb.CertificateChain{VcekCert: opts.Collateral.VCEK}
	vo := &verify.Options{DisableCertFetching: true, Now: opts.Now, CheckRevocations: opts.CheckRevocations, Getter: sevGetter{opts.Collateral}}
	if len(opts.Collateral.SEVRoots) > 0 {
		roots := &trust.AMDRootCerts{}
		if err := roots.FromKDSCertBytes(opts.Collateral.SEVRoots); err != nil {
			return r.refuse(ReasonMalformed, fmt.Sprintf("read ASK/ARK (ask_ark.pem): %v", err))
		}
		product, err := kds.ParseProductName(exts.ProductName, abi.VcekReportSigner)
		if err != nil {
			return r.refuse(ReasonMalformed, fmt.Sprintf("VCEK product %q: %v", exts.ProductName, err))
		}
		line := kds.ProductLine(product)
		roots.ProductLine = line
		vo.TrustedRoots = map[string][]*trust.AMDRootCerts{line: {roots}}
		chain.AskCert, chain.ArkCert = roots.ProductCerts.Ask.Raw, roots.ProductCerts.Ark.Raw
	}
	if err := verify.SnpAttestation(&spb.Attestation{Report: rep, CertificateChain: chain}, vo); err != nil {
		reason := sevReason(err.Error())
		return r.refuse(reason, err.Error())
	}
	r.Valid = true
	return r
}

// sevReason classifies a go-sev-guest verification error.
func sevReason(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "revoked"):
		return ReasonRevoked
	case strings.Contains(m, "expired") || strings.Contains(m, "not yet valid"):
		return ReasonStale
	case strings.Contains(m, "signature") && !strings.Contains(m, "certificate"), strings.Contains(m, "crl is not signed"):
		return ReasonBadSignature
	case strings.Contains(m, "crl") || strings.Contains(m, "offline collateral"):
		return ReasonMalformed
	}
	return ReasonUnknownChip
}

// short abbreviates a hex string for messages.
func short(h string) string {
	if len(h) <= 16 {
		return h
	}
	return h[:16] + "…"
}
