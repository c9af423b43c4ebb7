// Package tee verifies confidential-computing attestation evidence (AMD SEV-SNP
// reports, Intel TDX quotes) against the vendors' roots with offline collateral,
// and binds it to a Kiln key, a chain nonce and a sealing key.
//
// # Contract
//
// Verify NEVER touches the network: the certificate chain, TCB info, QE identity and
// CRLs come with the evidence (Collateral) and the vendors' root certificates are the
// ones the verification libraries embed (github.com/google/go-sev-guest,
// github.com/google/go-tdx-guest), or roots the caller names. Verify's result depends
// only on its inputs and Options.Now, so validators that verify the same evidence
// at the same block time agree.
//
// A refused report carries one Reason naming why. Checks run from the most specific
// to the most general, so that a report whose field disagrees with what the
// verifier expects (report_data, measurement, debug policy, TCB, chip) is refused
// for that field, and any other change to the signed bytes is refused as a bad
// signature:
//
//	malformed            not a report of a known type, or collateral unreadable
//	report_data_mismatch report_data is not what the verifier expected (other key, old nonce)
//	measurement_not_allowed the launch measurement is not one the verifier accepts
//	debug_policy         the guest may be debugged (its memory read by the host)
//	tcb_mismatch         the reported TCB is not the one the signing key was issued for
//	tcb_outdated         the TCB is below the verifier's minimum or the vendor's current level
//	revoked              a certificate of the chain is on the vendor's CRL
//	crl_missing          revocations are checked and the collateral has no CRL
//	unknown_chip         the signing key is not certified by the vendor for this chip
//	stale                a certificate, a CRL or the collateral is expired at Options.Now
//	bad_signature        the signature does not verify over the report
//
// NVIDIA GPU confidential-computing evidence (the GPU's SPDM measurement report) is
// not verified here: no Go code appraises it offline (RIMs, OCSP), and NVIDIA's remote
// service cannot be called by a validator (a documented gap, README "Confidential
// compute").
package tee
