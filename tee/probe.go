package tee

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-sev-guest/abi"
	sevclient "github.com/google/go-sev-guest/client"
	tdxclient "github.com/google/go-tdx-guest/client"
)

// Guest devices through which a confidential VM asks its firmware for evidence.
var (
	sevGuestDevice = "/dev/sev-guest"
	tdxGuestDevice = "/dev/tdx_guest"
	configfsTSM    = "/sys/kernel/config/tsm/report"
)

// Capability says whether this machine can produce attestation evidence, and how.
type Capability struct {
	// Type is TypeSEVSNP or TypeTDX when this machine is a confidential VM that can
	// produce evidence; "" when it cannot.
	Type string `json:"type"`
	// Device is the guest interface found (a device, or the configfs-tsm directory).
	Device string `json:"device,omitempty"`
	// Message says in words what was found, or what is missing.
	Message string `json:"message"`
}

// Probe looks for the guest interfaces: configfs-tsm (Linux 6.7+, either vendor),
// /dev/sev-guest and /dev/tdx_guest. It does not ask for a report.
func Probe() Capability {
	tsm := exists(configfsTSM)
	switch {
	case exists(sevGuestDevice):
		return Capability{Type: TypeSEVSNP, Device: sevGuestDevice, Message: "SEV-SNP guest: evidence from " + sevGuestDevice + tsmNote(tsm)}
	case exists(tdxGuestDevice):
		return Capability{Type: TypeTDX, Device: tdxGuestDevice, Message: "TDX guest: evidence from " + tdxGuestDevice + tsmNote(tsm)}
	case tsm:
		return Capability{Device: configfsTSM, Message: "configfs-tsm is present (" + configfsTSM + ") but neither /dev/sev-guest nor /dev/tdx_guest: the provider type of this VM is unknown, no evidence is produced"}
	}
	return Capability{Message: "this machine cannot produce TEE evidence: it is not a confidential VM (no " +
		strings.Join([]string{sevGuestDevice, tdxGuestDevice, configfsTSM}, ", ") +
		"); it can verify evidence (kiln tee verify) but its provider cannot take TEE orders"}
}

func tsmNote(tsm bool) string {
	if tsm {
		return " (configfs-tsm also present)"
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ErrNoTEE is returned by Device.Produce on a machine that is not a confidential VM.
var ErrNoTEE = errors.New("this machine cannot produce TEE evidence: it is not a confidential VM (no /dev/sev-guest, /dev/tdx_guest or configfs-tsm)")

// Producer makes attestation evidence. Device asks this machine's firmware; tests use
// a signer of their own (package teetest) whose roots the chain under test trusts.
// Whatever the producer, the evidence is verified the same way (Verify).
type Producer interface {
	// Capability says whether the producer can make evidence here, and how; Type is
	// empty when it cannot.
	Capability() Capability
	// Produce returns evidence whose report_data is reportData (64 bytes), and the
	// collateral that came with it (an SEV-SNP host may hand out the VCEK).
	Produce(ctx context.Context, reportData []byte) ([]byte, Collateral, error)
}

// Device produces evidence through this machine's guest devices (Probe).
type Device struct{}

var _ Producer = Device{}

// Capability is Probe.
func (Device) Capability() Capability { return Probe() }

// Produce asks this confidential VM's firmware for evidence binding reportData: an
// SEV-SNP report (with its VCEK certificate from the extended report's certificate
// table, when the host supplies it) or a TDX quote. On a machine without a guest
// device it returns ErrNoTEE, saying so. The firmware call is not cancellable; ctx is
// checked before it.
func (Device) Produce(ctx context.Context, reportData []byte) (evidence []byte, col Collateral, err error) {
	if err := ctx.Err(); err != nil {
		return nil, col, err
	}
	if len(reportData) != ReportDataSize {
		return nil, col, fmt.Errorf("report_data: %d bytes, want %d", len(reportData), ReportDataSize)
	}
	var rd [ReportDataSize]byte
	copy(rd[:], reportData)
	switch p := Probe(); p.Type {
	case TypeSEVSNP:
		d, err := sevclient.OpenDevice()
		if err != nil {
			return nil, col, fmt.Errorf("open %s: %w", p.Device, err)
		}
		defer d.Close()
		raw, certs, err := sevclient.GetRawExtendedReport(d, rd)
		if err != nil {
			return nil, col, fmt.Errorf("SEV-SNP report from %s: %w", p.Device, err)
		}
		table := new(abi.CertTable)
		if table.Unmarshal(certs) == nil {
			if vcek, err := table.GetByGUIDString(abi.VcekGUID); err == nil {
				col.VCEK = vcek
			}
		}
		if len(raw) > sevReportSize {
			raw = raw[:sevReportSize]
		}
		return raw, col, nil
	case TypeTDX:
		qp, err := tdxclient.GetQuoteProvider()
		if err != nil {
			return nil, col, fmt.Errorf("TDX quote provider: %w", err)
		}
		q, err := tdxclient.GetRawQuote(qp, rd)
		if err != nil {
			return nil, col, fmt.Errorf("TDX quote: %w", err)
		}
		return q, col, nil
	}
	return nil, col, ErrNoTEE
}
