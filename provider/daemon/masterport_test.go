package daemon

import "testing"

// Each epoch of a cluster rendezvous on a port of its own, so a rank restarted for a
// new epoch cannot reach the old epoch's rank 0; the ports stay in 29500-30499.
func TestMasterPortPerEpoch(t *testing.T) {
	seen := map[int]uint32{}
	for e := uint32(0); e < 1000; e++ {
		p := masterPort(e)
		if p < 29500 || p > 30499 {
			t.Fatalf("epoch %d: port %d, want 29500-30499", e, p)
		}
		if prev, ok := seen[p]; ok {
			t.Fatalf("epochs %d and %d share port %d", prev, e, p)
		}
		seen[p] = e
	}
	if masterPort(0) != 29500 || masterPort(1000) != 29500 || masterPort(^uint32(0)) > 30499 {
		t.Fatalf("ports %d %d %d", masterPort(0), masterPort(1000), masterPort(^uint32(0)))
	}
}
