package bench

import (
	"context"
	"testing"
)

// BenchmarkDataPlane moves 64 MiB up and back through mutual TLS, SHA-256
// and age at rest, against plain loopback TCP in the same run; the ratio is
// the figure to watch (target >= 0.5).
func BenchmarkDataPlane(b *testing.B) {
	b.ReportAllocs()
	const size = 64 << 20
	b.SetBytes(2 * size)
	var ratio, api, raw float64
	for b.Loop() {
		r, err := BenchUploadDownload(context.Background(), size)
		if err != nil {
			b.Fatal(err)
		}
		ratio += r.Ratio()
		api += r.Throughput() / (1 << 20)
		raw += r.RawThroughput() / (1 << 20)
		b.Log(r)
	}
	n := float64(b.N)
	b.ReportMetric(ratio/n, "ratio")
	b.ReportMetric(api/n, "api-MiB/s")
	b.ReportMetric(raw/n, "raw-MiB/s")
}

func TestBenchUploadDownloadRuns(t *testing.T) {
	r, err := BenchUploadDownload(context.Background(), 4<<20)
	if err != nil {
		t.Fatalf("BenchUploadDownload() = %v", err)
	}
	if r.Upload <= 0 || r.Download <= 0 || r.RawUpload <= 0 || r.RawDownload <= 0 {
		t.Errorf("BenchUploadDownload() = %+v, want every time measured", r)
	}
}
