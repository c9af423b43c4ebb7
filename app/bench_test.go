package app

import (
	"testing"
)

// BenchmarkDeliverTransfers measures a block of 1000 signed transfers through
// CheckTx, FinalizeBlock and Commit, per transfer.
func BenchmarkDeliverTransfers(b *testing.B) {
	h := newHarness(b, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 1000 {
		var txs [][]byte
		for j := 0; j < 1000; j++ {
			a := h.accs[j%len(h.accs)]
			raw := h.send(a, h.accs[(j+1)%len(h.accs)], 1)
			a.seq++
			if c := h.checkTx(raw); c.Code != 0 {
				b.Fatal(c.Log)
			}
			txs = append(txs, raw)
		}
		h.block(txs...)
	}
}
