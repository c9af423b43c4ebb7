package daemon

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-network/kiln/gpu"
)

// metrics are the daemon's Prometheus metrics (kiln_provider_*).
type metrics struct {
	reg                                                *prometheus.Registry
	bids, skipped, won, deployed, completions, stopped prometheus.Counter
	started, startFailures                             prometheus.Counter
	// executorErrors counts executor operations that failed, by operation.
	executorErrors *prometheus.CounterVec
	// apiIn and apiOut count the tenant API's bytes on the wire (TLS included):
	// inputs, images, manifests and ingress requests in; outputs, logs and ingress
	// answers out.
	apiIn, apiOut    atomic.Int64
	challenges       prometheus.Counter
	challengeSeconds prometheus.Histogram
	// TEE attestation (attest.go).
	teeAttested, teeFailures          prometheus.Counter
	teeActive, teeExpires, teeGivenUp prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	mk := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "provider", Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	m.bids = mk("bids_sent_total", "Bids accepted into the mempool.")
	m.skipped = mk("orders_skipped_total", "Orders the provider will not bid on (no fit, no price, max price too low).")
	m.won = mk("leases_won_total", "Leases seen created for this provider.")
	m.deployed = mk("leases_deployed_total", "Manifests deployed.")
	m.completions = mk("completions_sent_total", "Batch completions sent.")
	m.stopped = mk("leases_stopped_total", "Leases stopped and erased.")
	m.started = mk("leases_started_total", "Workload starts reported on chain (leases bill from then).")
	m.startFailures = mk("start_failures_total", "Workloads the executor could not start; their leases are reported failed.")
	m.executorErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "provider", Name: "executor_errors_total",
		Help: "Executor operations that failed, by operation (start, stop)."}, []string{"op"})
	for _, op := range []string{"start", "stop"} {
		m.executorErrors.WithLabelValues(op)
	}
	m.reg.MustRegister(m.executorErrors)
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "provider", Name: "api_received_bytes_total",
		Help: "Bytes the tenant API received on the wire (inputs, images, manifests, ingress requests; TLS included)."},
		func() float64 { return float64(m.apiIn.Load()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "kiln", Subsystem: "provider", Name: "api_sent_bytes_total",
		Help: "Bytes the tenant API sent on the wire (outputs, logs, ingress answers; TLS included)."},
		func() float64 { return float64(m.apiOut.Load()) }))
	m.challenges = mk("challenges_answered_total", "Liveness and hardware challenges answered.")
	m.challengeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kiln", Subsystem: "provider", Name: "challenge_seconds",
		Help: "Time to solve a matmul challenge.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	m.reg.MustRegister(m.challengeSeconds)
	m.teeAttested = mk("tee_attestations_total", "TEE attestations the daemon made that the chain recorded.")
	m.teeFailures = mk("tee_attest_failures_total", "Failed TEE attestation attempts (evidence, collateral, refusal, or not recorded).")
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kiln", Subsystem: "provider", Name: name, Help: help})
		m.reg.MustRegister(g)
		return g
	}
	m.teeActive = gauge("tee_attested", "1 while the provider holds an active attestation binding its sealing key (it bids on TEE orders), else 0.")
	m.teeExpires = gauge("tee_attestation_expires_height", "Height the provider's attestation expires at (0: none).")
	m.teeGivenUp = gauge("tee_given_up", "1 once the daemon gave up attesting after tee.max_attempts failures in a row (until it restarts).")
	return m
}

// countingListener counts the bytes of every connection it accepts into m.
type countingListener struct {
	net.Listener
	m *metrics
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, m: l.m}, nil
}

type countingConn struct {
	net.Conn
	m *metrics
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.apiIn.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.apiOut.Add(int64(n))
	return n, err
}

// stateCounter reports how many of the provider's workloads are in each state.
type stateCounter interface{ CountStates() map[string]int }

// workloadCollector exports kiln_provider_workloads{state} at scrape time.
type workloadCollector struct {
	desc *prometheus.Desc
	src  stateCounter
}

func (c workloadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c workloadCollector) Collect(ch chan<- prometheus.Metric) {
	for st, n := range c.src.CountStates() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), st)
	}
}

func newWorkloadCollector(src stateCounter) workloadCollector {
	return workloadCollector{src: src, desc: prometheus.NewDesc("kiln_provider_workloads",
		"Workloads the provider holds, by state (running, completed, failed).", []string{"state"}, nil)}
}

// gpuCollector exports kiln_provider_gpu_utilization_pct{index,uuid,model} from NVML
// (or nvidia-smi) at scrape time, for providers that detect their GPUs; a GPU whose
// driver does not say (MIG, no driver) is left out.
type gpuCollector struct {
	desc *prometheus.Desc
	opts gpu.Options
}

func newGPUCollector(opts gpu.Options) gpuCollector {
	return gpuCollector{opts: opts, desc: prometheus.NewDesc("kiln_provider_gpu_utilization_pct",
		"GPU utilization as the driver reports it at scrape time, in percent.", []string{"index", "uuid", "model"}, nil)}
}

func (c gpuCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// gpuScrapeTimeout bounds a scrape's GPU reading: NVML answers in milliseconds,
// nvidia-smi in about a second.
const gpuScrapeTimeout = 5 * time.Second

func (c gpuCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), gpuScrapeTimeout)
	defer cancel()
	inv, err := gpu.Detect(ctx, c.opts)
	if err != nil {
		return
	}
	for i, g := range inv.GPUs {
		if g.UtilizationPct != nil {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(*g.UtilizationPct), strconv.Itoa(i), g.UUID, g.ModelKey)
		}
	}
}
