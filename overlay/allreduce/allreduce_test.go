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
	// 2 minutes: 3 pythons importing torch on a loaded 2-core machine, then 1 MiB all_reduces.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := AllReduce(ctx, Options{Ranks: 3, Bytes: 1 << 20, Iters: 2, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.OverlayMbps <= 0 || r.DirectMbps <= 0 || r.Ratio <= 0 || len(r.Ratios) != 2 {
		t.Fatalf("AllReduce = %+v, want positive bandwidths and 2 ratios", r)
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
