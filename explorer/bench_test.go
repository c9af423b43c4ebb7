package explorer

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// bigSnapshot is a chain with 50 providers and n leases over 20,000 blocks, a third
// of them active.
func bigSnapshot(n int) *Snapshot {
	models := []string{"h100", "a100", "rtx4090", "l40s", "h200"}
	var provs []registry.Provider
	for i := 0; i < 50; i++ {
		src := "declared"
		if i%2 == 0 {
			src = "detected-nvml"
		}
		provs = append(provs, provider(byte(i+1), src, models[i%len(models)], 64, 256))
	}
	var ls []market.LeaseView
	for i := 0; i < n; i++ {
		created := int64(i*2 + 1)
		closed := int64(0)
		if i%3 != 0 {
			closed = created + int64(i%500) + 1
		}
		ls = append(ls, lease(uint64(i+1), byte(i%50+1), models[i%50%len(models)], uint64(i%4+1), uint64(100+i%90), created, closed))
	}
	return snapshotAt(20_001, provs, ls)
}

func benchServer(b *testing.B, snap *Snapshot) *Server {
	s := &Server{cfg: DefaultConfig(), log: slog.New(slog.DiscardHandler), msgs: newMsgRegistry(), metrics: newMetrics(), probes: map[string]ProviderProbe{}}
	snap.overview = buildOverview(snap, nil)
	s.snap.Store(snap)
	return s
}

func serveOverview(b *testing.B, h http.Handler) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Body.Len() < 1000 {
		b.Fatalf("overview: %d, %d bytes", rec.Code, rec.Body.Len())
	}
}

// BenchmarkOverview10kLeases is the overview with 10,000 leases in state, at its
// worst: a new block came, so the state read is aggregated again (the refresher
// does this once per height) and the page rendered. Target: < 200 ms per op.
func BenchmarkOverview10kLeases(b *testing.B) {
	snap := bigSnapshot(10_000)
	s := benchServer(b, snap)
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap.overview = buildOverview(snap, nil)
		serveOverview(b, h)
	}
}

// BenchmarkOverviewCached10kLeases is a request between two blocks: the page only.
func BenchmarkOverviewCached10kLeases(b *testing.B) {
	s := benchServer(b, bigSnapshot(10_000))
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		serveOverview(b, h)
	}
}

// BenchmarkDecodeLeases10k is the refresher decoding the node's answer to
// /market/leases with 10,000 leases: the other part of a refresh's cost.
func BenchmarkDecodeLeases10k(b *testing.B) {
	snap := bigSnapshot(10_000)
	raw, err := json.Marshal(map[string]any{"leases": snap.Leases})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var out struct {
			Leases []market.LeaseView `json:"leases"`
		}
		if err := json.Unmarshal(raw, &out); err != nil || len(out.Leases) != 10_000 {
			b.Fatal(fmt.Sprint(err, len(out.Leases)))
		}
	}
}
