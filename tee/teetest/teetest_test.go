package teetest

import (
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
