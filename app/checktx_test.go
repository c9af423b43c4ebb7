package app

import (
	"fmt"
	"testing"
	"time"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/cert"
)

// CheckTx judges a certificate at the last committed block's time, as FinalizeBlock
// will: an expired or not-yet-valid certificate never enters the mempool (it used to
// pass CheckTx, which had no time, and fail in the block), also right after a restart.
func TestCheckTxKnowsBlockTime(t *testing.T) {
	h := newHarness(t, 3)
	h.block()
	last := blockTime(h.height)
	tests := []struct {
		name   string
		nb, na time.Time
		want   uint32
	}{
		{"expired a second before the last block", last.Add(-time.Hour), last.Add(-time.Second), types.CodeInvalidCert},
		{"valid from a second after the last block", last.Add(time.Second), last.Add(time.Hour), types.CodeInvalidCert},
		{"valid", last.Add(-time.Hour), last.Add(time.Hour), 0},
	}
	for _, restart := range []bool{false, true} {
		if restart {
			h.restart()
		}
		for i, tt := range tests {
			t.Run(fmt.Sprintf("%s/restarted=%v", tt.name, restart), func(t *testing.T) {
				a := h.accs[i] // NB: one account each, so that one case's sequence does not fail the next
				raw := h.sign(a, a.seq, 5000, &cert.MsgPublishCert{Owner: a.addr, CertPEM: mustCertPEMFor(t, a.addr.String(), tt.nb, tt.na)})
				if got := h.checkTx(raw); got.Code != tt.want {
					t.Fatalf("CheckTx code = %d (%s), want %d", got.Code, got.Log, tt.want)
				}
			})
		}
	}
}
