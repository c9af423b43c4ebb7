package explorer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the explorer's own Prometheus metrics (kiln_explorer_*), served on its
// /metrics.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	refresh    prometheus.Histogram
	height     prometheus.Gauge
	nodeErrors prometheus.Counter
	probes     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "explorer", Name: "requests_total",
		Help: "Requests served, by page and HTTP status."}, []string{"page", "code"})
	m.refresh = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kiln", Subsystem: "explorer", Name: "refresh_seconds",
		Help:    "Time to read the chain (providers, orders, leases, escrow, recent blocks) and aggregate it.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)})
	m.height = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kiln", Subsystem: "explorer", Name: "height",
		Help: "Height of the chain state the explorer shows."})
	m.nodeErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "explorer", Name: "node_errors_total",
		Help: "Reads of the chain that failed (the pages keep the last state read)."})
	m.probes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "explorer", Name: "provider_probe_rounds_total",
		Help: "Rounds of provider API probes (online, uptime)."})
	m.reg.MustRegister(m.requests, m.refresh, m.height, m.nodeErrors, m.probes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
