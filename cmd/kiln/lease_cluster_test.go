package main

import (
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/api"
)

func TestOverlayHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		ov   api.OverlayStatus
		want string
	}{
		{api.OverlayStatus{Addr: "10.128.0.1"}, "10.128.0.1, 0/0 peers up, rx 0 B, tx 0 B"},
		{api.OverlayStatus{Addr: "10.128.0.2", Peers: []api.OverlayPeer{
			{Rank: 0, LastHandshake: now.Add(-3 * time.Second), RxBytes: 10, TxBytes: 20},
			{Rank: 2, RxBytes: 1},
			{Rank: 3, LastHandshake: now.Add(-9 * time.Second), TxBytes: 5},
		}}, "10.128.0.2, 2/3 peers up (oldest handshake 9s ago), rx 11 B, tx 25 B"},
	} {
		if got := overlayHealth(&c.ov, now); got != c.want {
			t.Errorf("overlayHealth(%+v) = %q, want %q", c.ov, got, c.want)
		}
	}
}
