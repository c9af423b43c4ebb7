package daemon

import "github.com/prometheus/client_golang/prometheus"

// metrics are the daemon's Prometheus counters.
type metrics struct {
	reg                                                *prometheus.Registry
	bids, skipped, won, deployed, completions, stopped prometheus.Counter
	started, startFailures                             prometheus.Counter
	challenges                                         prometheus.Counter
	challengeSeconds                                   prometheus.Histogram
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
	m.challenges = mk("challenges_answered_total", "Liveness and hardware challenges answered.")
	m.challengeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kiln", Subsystem: "provider", Name: "challenge_seconds",
		Help: "Time to solve a matmul challenge.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	m.reg.MustRegister(m.challengeSeconds)
	return m
}
