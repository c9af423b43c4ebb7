package allreduce

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/netns"
)

func need(tb testing.TB) {
	tb.Helper()
	if why := Available(); why != "" {
		tb.Skipf("all-reduce bench needs namespaces, a TUN and torch: %s", why)
	}
}

func TestAllReduce(t *testing.T) {
	need(t)
	// 3 minutes: 3 pythons importing torch twice (shaped, then unshaped) on a
	// loaded 2-core machine, then 4 MiB all_reduces at 200 Mbit/s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const link = 200
	r, err := AllReduce(ctx, Options{Ranks: 3, Bytes: 4 << 20, Iters: 2, Rounds: 2, LinkMbps: link})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.OverlayMbps <= 0 || r.DirectMbps <= 0 || r.Ratio <= 0 || len(r.Ratios) != 2 ||
		r.OverlayMbpsUnshaped <= 0 || r.DirectMbpsUnshaped <= 0 || r.RatioUnshaped <= 0 || len(r.RatiosUnshaped) != 2 {
		t.Fatalf("AllReduce = %+v, want positive bandwidths and 2 ratios per phase", r)
	}
	if r.LinkMbps != link || r.OverlayMTU != 1500-80 {
		t.Fatalf("link %d Mbit/s, overlay MTU %d, want %d and 1420 (the veth's 1500 less WireGuard's 80)", r.LinkMbps, r.OverlayMTU, link)
	}
	// The shaping limits: the direct path carries about the link's rate
	// (bus bandwidth counts payload, so a little less), never more; the
	// overlay, inside the same link, no more either. 5%: tbf's 1 ms bucket.
	if r.DirectMbps > link*1.05 || r.DirectMbps < link/2 || r.OverlayMbps > link*1.05 {
		t.Fatalf("shaped to %d Mbit/s: direct %.1f, overlay %.1f Mbit/s, want direct about the link's rate and neither above", link, r.DirectMbps, r.OverlayMbps)
	}
	// And it is gone for the unshaped phase (the direct path ran at
	// 2.7 Gbit/s here unshaped).
	if r.DirectMbpsUnshaped < link*1.5 {
		t.Fatalf("unshaped direct %.1f Mbit/s, want well above the %d Mbit/s shaping (was it removed?)", r.DirectMbpsUnshaped, link)
	}
	if names, _ := netns.List(prefix + strconv.Itoa(os.Getpid())); len(names) != 0 {
		t.Fatalf("namespaces left behind: %v", names)
	}
}

func TestOptionsRejects(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Ranks: 1}, "ranks must be"},
		{Options{Bytes: 6}, "multiple of 4"},
		{Options{Iters: 31}, "iters must be"},
		{Options{Rounds: -1}, "rounds must be"},
		{Options{MTU: 100}, "mtu must be"},
		{Options{LinkMbps: -1}, "link mbps must be"},
	} {
		if _, err := AllReduce(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AllReduce(%+v) = %v, want error containing %q", tc.o, err, tc.want)
		}
	}
}

// BenchmarkAllReduce reports the overlay's all-reduce bandwidth as a fraction
// of the direct path's, both measured in the same run (KILN_ALLREDUCE_MTU
// overrides the overlay's MTU).
func BenchmarkAllReduce(b *testing.B) {
	need(b)
	o := DefaultOptions()
	if m, err := strconv.Atoi(os.Getenv("KILN_ALLREDUCE_MTU")); err == nil {
		o.MTU = m
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r, err := AllReduce(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Ratio, "ratio")
		b.ReportMetric(r.OverlayMbps, "overlay-Mbps")
		b.ReportMetric(r.DirectMbps, "direct-Mbps")
		b.Logf("%+v", r)
	}
}

func TestDefaultRanks(t *testing.T) {
	for _, tc := range []struct{ cores, want int }{{1, 2}, {2, 2}, {3, 3}, {16, 3}} {
		if got := DefaultRanks(tc.cores); got != tc.want {
			t.Errorf("DefaultRanks(%d) = %d, want %d", tc.cores, got, tc.want)
		}
	}
}
