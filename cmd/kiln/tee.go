package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kiln-network/kiln/tee"
)

func newTEECmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "tee",
		Short: "Confidential compute: verify SEV-SNP and TDX attestation evidence",
	}
	c.AddCommand(newTEEVerifyCmd(), newTEEEvidenceCmd(), newTEESealCmd())
	return c
}

// maxReportFile bounds --report: a TDX quote with its certificate chain is a few
// KiB, an SEV-SNP report 1184 bytes.
const maxReportFile = 1 << 20

func newTEEVerifyCmd() *cobra.Command {
	var report, collateral, reportData, at string
	var measurements []string
	var allowDebug, revocations bool
	c := &cobra.Command{
		Use:   "verify --report FILE [--collateral DIR]",
		Short: "Verify an SEV-SNP report or a TDX quote offline (exit 0 valid, 1 refused, 2 unreadable)",
		Long: `Verify an AMD SEV-SNP attestation report or an Intel TDX quote (v4) against the
vendors' root certificates, without the network. The collateral directory may hold:
  vcek.der               SEV-SNP: the chip's VCEK certificate from AMD's KDS (required for SEV-SNP)
  ask_ark.pem            SEV-SNP: AMD's ASK and ARK (default: the roots go-sev-guest embeds)
  sev_crl.der            SEV-SNP: the ARK's CRL (for --check-revocations)
  tcb_info.json, tcb_info_chain.pem, qe_identity.json, qe_identity_chain.pem,
  pck_crl.der, pck_crl_chain.pem, root_crl.der
                         TDX: Intel PCS collateral (TCB status, QE identity, CRLs)
The result names why a report is refused: bad_signature, unknown_chip, revoked,
tcb_outdated, tcb_mismatch, debug_policy, report_data_mismatch, measurement_not_allowed,
stale or malformed. Exit status: 0 valid, 1 refused, 2 unreadable (file, collateral or
evidence that cannot be read).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			if report == "" {
				return usagef("--report FILE is required")
			}
			raw, err := readBounded(report, maxReportFile)
			if err != nil {
				return usageErr(fmt.Errorf("read report: %w", err))
			}
			opts := tee.Options{Now: time.Now(), AllowDebug: allowDebug, CheckRevocations: revocations, AllowedMeasurements: measurements}
			if at != "" {
				if opts.Now, err = time.Parse(time.RFC3339, at); err != nil {
					return usagef("--at %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", at)
				}
			}
			for i, m := range measurements {
				measurements[i] = strings.ToLower(m)
				if b, err := hex.DecodeString(m); err != nil || len(b) != 48 {
					return usagef("--measurement %q: want 48 bytes of hex (96 digits)", m)
				}
			}
			if reportData != "" {
				if opts.ReportData, err = hex.DecodeString(reportData); err != nil || len(opts.ReportData) != tee.ReportDataSize {
					return usagef("--report-data %q: want %d bytes of hex", reportData, tee.ReportDataSize)
				}
			}
			if collateral != "" {
				if opts.Collateral, err = tee.LoadCollateral(collateral); err != nil {
					return usageErr(err)
				}
			}
			if tee.Detect(raw) == "" {
				return usageErr(fmt.Errorf("%s: %w (%d bytes)", report, tee.ErrNotEvidence, len(raw)))
			}
			start := time.Now()
			r := tee.Verify(raw, opts)
			took := time.Since(start)
			if r.Reason == tee.ReasonMalformed && r.Measurement == "" {
				return usageErr(fmt.Errorf("%s: %s", report, r.Detail))
			}
			out := struct {
				tee.Result
				VerifyMS float64 `json:"verify_ms"`
			}{r, float64(took.Microseconds()) / 1000}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				state := "VALID"
				if !r.Valid {
					state = "REFUSED: " + r.Reason
				}
				fmt.Fprintf(w, "%s %s\nmeasurement  %s\nreport_data  %s\n", r.Type, state, r.Measurement, r.ReportData)
				if r.ChipID != "" {
					fmt.Fprintf(w, "chip_id      %s\n", r.ChipID)
				}
				if r.Type == tee.TypeSEVSNP {
					fmt.Fprintf(w, "tcb          bootloader %d, tee %d, snp %d, microcode %d\n", r.TCB.Bootloader, r.TCB.TEE, r.TCB.SNP, r.TCB.Microcode)
				} else {
					fmt.Fprintf(w, "tcb          tee_tcb_svn %s\n", r.TCB.TeeTcbSvn)
				}
				fmt.Fprintf(w, "debug        %v\n", r.Debug)
				if r.Detail != "" {
					fmt.Fprintf(w, "why          %s\n", r.Detail)
				}
			}
			if !r.Valid {
				return &exitError{code: 1, err: fmt.Errorf("")}
			}
			return nil
		},
	}
	c.Flags().StringVar(&report, "report", "", "file holding an SEV-SNP report (1184 bytes) or a TDX quote (v4)")
	c.Flags().StringVar(&collateral, "collateral", "", "directory of offline collateral (see above)")
	c.Flags().StringVar(&reportData, "report-data", "", "hex report_data the report must carry (64 bytes)")
	c.Flags().StringSliceVar(&measurements, "measurement", nil, "accepted launch measurement (hex, 48 bytes); repeat for several")
	c.Flags().StringVar(&at, "at", "", "verify as of this time (RFC 3339; default now), e.g. to check an old sample")
	c.Flags().BoolVar(&allowDebug, "allow-debug", false, "accept a guest whose policy allows debugging (its memory is readable by the host)")
	c.Flags().BoolVar(&revocations, "check-revocations", false, "check the chain against the CRLs in the collateral")
	return c
}

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, st.Size(), max)
	}
	b := make([]byte, st.Size())
	_, err = f.ReadAt(b, 0)
	if st.Size() == 0 {
		err = nil
	}
	return b, err
}

func newTEEEvidenceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "evidence",
		Short: "Say whether this machine can produce TEE evidence (SEV-SNP /dev/sev-guest, TDX /dev/tdx_guest, configfs-tsm)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := outputJSON(cmd)
			if err != nil {
				return err
			}
			p := tee.Probe()
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), p); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), p.Message)
			}
			if p.Type == "" {
				return &exitError{code: 1, err: fmt.Errorf("")}
			}
			return nil
		},
	}
}
