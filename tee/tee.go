package tee

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Evidence types.
const (
	TypeSEVSNP = "sev-snp"
	TypeTDX    = "tdx"
)

// Reasons a report is refused (Result.Reason); see the package doc.
const (
	ReasonMalformed          = "malformed"
	ReasonReportData         = "report_data_mismatch"
	ReasonMeasurement        = "measurement_not_allowed"
	ReasonDebug              = "debug_policy"
	ReasonTCBMismatch        = "tcb_mismatch"
	ReasonTCBOutdated        = "tcb_outdated"
	ReasonRevoked            = "revoked"
	ReasonCRLMissing         = "crl_missing"
	ReasonUnknownChip        = "unknown_chip"
	ReasonStale              = "stale"
	ReasonBadSignature       = "bad_signature"
	ReasonUnsupportedVersion = "unsupported_version"
)

// ReportDataSize is the size of report_data in both SEV-SNP reports and TDX quotes.
const ReportDataSize = 64

// Options say what the verifier expects of a report.
type Options struct {
	// Now is the time certificates and collateral must be valid at (the block time on
	// chain). Required.
	Now time.Time
	// Collateral is what the report's verification needs besides the vendor roots.
	Collateral Collateral
	// ReportData, when not nil, is the report_data the report must carry (64 bytes).
	ReportData []byte
	// AllowedMeasurements, when not empty, lists the launch measurements accepted
	// (SEV-SNP MEASUREMENT, TDX MRTD), lower-case hex.
	AllowedMeasurements []string
	// AllowDebug accepts guests whose policy lets the host debug them. Never on
	// chain: such a guest's memory is readable by the host.
	AllowDebug bool
	// MinSEVTCB, when not zero, is the least SEV-SNP TCB accepted (each part at least
	// this one's: bootloader, TEE, SNP, microcode).
	MinSEVTCB uint64
	// CheckRevocations checks the chain against the vendor CRLs in Collateral: the
	// ARK's CRL (SEV-SNP), the PCK and root CA CRLs (TDX). A report whose collateral
	// lacks them is refused with ReasonCRLMissing; a CRL not valid at Now (before its
	// thisUpdate, after its nextUpdate) with ReasonStale, so an old CRL from before a
	// revocation cannot stand in for the current one.
	CheckRevocations bool
}

// Result is the outcome of Verify, in the shape `kiln tee verify --output json`
// prints.
type Result struct {
	Valid bool `json:"valid"`
	// Type is TypeSEVSNP or TypeTDX; empty when the report is not recognised.
	Type string `json:"type"`
	// Measurement is the launch measurement (SEV-SNP MEASUREMENT, TDX MRTD), hex.
	Measurement string `json:"measurement"`
	// ReportData is the report's report_data, hex.
	ReportData string `json:"report_data"`
	// ChipID is the SEV-SNP chip id, hex (empty for TDX).
	ChipID string `json:"chip_id,omitempty"`
	// TCB is the platform's security version: SEV-SNP reported TCB parts, or the
	// TDX TEE_TCB_SVN.
	TCB TCB `json:"tcb"`
	// Debug is true when the guest policy allows debugging.
	Debug bool `json:"debug"`
	// Reason names why the report is refused (a Reason* constant); empty when valid.
	Reason string `json:"reason,omitempty"`
	// Detail says more about Reason, in words.
	Detail string `json:"detail,omitempty"`
}

// TCB is a platform's trusted computing base version.
type TCB struct {
	// Raw is the SEV-SNP TCB_VERSION as a number, or 0 for TDX.
	Raw uint64 `json:"raw,omitempty"`
	// Bootloader, TEE, SNP and Microcode are the SEV-SNP security patch levels.
	Bootloader uint8 `json:"bootloader,omitempty"`
	TEE        uint8 `json:"tee,omitempty"`
	SNP        uint8 `json:"snp,omitempty"`
	Microcode  uint8 `json:"microcode,omitempty"`
	// TeeTcbSvn is the TDX TEE_TCB_SVN, hex.
	TeeTcbSvn string `json:"tee_tcb_svn,omitempty"`
}

// crlCurrent checks that der, the CRL in collateral file name, is there, reads, and
// is valid at now; it returns the reason and detail to refuse with, or "".
func crlCurrent(der []byte, name string, now time.Time) (reason, detail string) {
	if len(der) == 0 {
		return ReasonCRLMissing, "revocations are checked and the collateral has no " + name
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return ReasonMalformed, fmt.Sprintf("read %s: %v", name, err)
	}
	switch {
	case now.Before(crl.ThisUpdate):
		return ReasonStale, fmt.Sprintf("%s is not valid before %s (now %s)", name, crl.ThisUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate):
		return ReasonStale, fmt.Sprintf("%s expired at %s (now %s): fetch the current one", name, crl.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return "", ""
}

// refuse fills r as refused for reason.
func (r Result) refuse(reason, detail string) Result {
	r.Valid, r.Reason, r.Detail = false, reason, detail
	return r
}

// Detect says which kind of evidence raw is: a TDX quote (version 4, TEE type 0x81)
// or an SEV-SNP report (version 2 to 5, 1184 bytes); "" when neither.
func Detect(raw []byte) string {
	if len(raw) >= 8 && binary.LittleEndian.Uint16(raw[0:2]) == 4 && binary.LittleEndian.Uint32(raw[4:8]) == 0x81 {
		return TypeTDX
	}
	if len(raw) == sevReportSize {
		if v := binary.LittleEndian.Uint32(raw[0:4]); v >= 2 && v <= 5 {
			return TypeSEVSNP
		}
	}
	return ""
}

// ErrNotEvidence is returned by Verify's callers when a file holds no evidence.
var ErrNotEvidence = errors.New("not an SEV-SNP report or a TDX quote")

// Verify checks raw evidence against opts. It never returns an error: a report that
// cannot be read is refused with ReasonMalformed.
func Verify(raw []byte, opts Options) Result {
	switch Detect(raw) {
	case TypeSEVSNP:
		return verifySEV(raw, opts)
	case TypeTDX:
		return verifyTDX(raw, opts)
	}
	return Result{}.refuse(ReasonMalformed, "not an SEV-SNP report (1184 bytes, version 2-5) or a TDX quote (version 4, TEE type 0x81)")
}

// BindingData is the report_data a Kiln attestation carries: SHA-256 over the
// chain id, the provider's account address, the chain nonce, and the sealing key
// (an age X25519 recipient that the attested environment generated), each
// length-prefixed, then 32 zero bytes. Whoever checks the report recomputes it, so a
// report made for another key, another nonce or another sealing key is refused.
func BindingData(chainID string, provider []byte, nonce []byte, sealKey string) []byte {
	h := sha256.New()
	for _, part := range [][]byte{[]byte("kiln-tee-attest-v1"), []byte(chainID), provider, nonce, []byte(sealKey)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	out := make([]byte, ReportDataSize)
	copy(out, h.Sum(nil))
	return out
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// measurementAllowed reports whether m (hex) is in allowed (empty: any).
func measurementAllowed(m string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == m {
			return true
		}
	}
	return false
}
