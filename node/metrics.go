package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/blocksync"
	cs "github.com/cometbft/cometbft/consensus"
	mempl "github.com/cometbft/cometbft/mempool"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/proxy"
	sm "github.com/cometbft/cometbft/state"
	"github.com/cometbft/cometbft/statesync"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/tx"
)

// MetricsNamespace prefixes every metric the app itself exports (kiln_txs_total, ...);
// CometBFT's own keep their "cometbft" namespace.
const MetricsNamespace = "kiln"

// metricsSwap serialises the moments Start points Prometheus' default registerer at a
// node's own registry (see cometMetrics).
var metricsSwap sync.Mutex

// cometMetrics makes CometBFT's metrics for one node, registered in reg. NB: CometBFT
// v0.38 builds its metrics with go-kit, which registers them in Prometheus' default
// registry and panics on a second node in the same process (tests, the demo); pointing
// the default registerer at reg while they are made gives every node its own set.
func cometMetrics(reg *prometheus.Registry) nm.MetricsProvider {
	return func(chainID string) (*cs.Metrics, *p2p.Metrics, *mempl.Metrics, *sm.Metrics, *proxy.Metrics, *blocksync.Metrics, *statesync.Metrics) {
		metricsSwap.Lock()
		defer metricsSwap.Unlock()
		prev := prometheus.DefaultRegisterer
		prometheus.DefaultRegisterer = reg
		defer func() { prometheus.DefaultRegisterer = prev }()
		const ns = "cometbft"
		return cs.PrometheusMetrics(ns, "chain_id", chainID), p2p.PrometheusMetrics(ns, "chain_id", chainID),
			mempl.PrometheusMetrics(ns, "chain_id", chainID), sm.PrometheusMetrics(ns, "chain_id", chainID),
			proxy.PrometheusMetrics(ns, "chain_id", chainID), blocksync.PrometheusMetrics(ns, "chain_id", chainID),
			statesync.PrometheusMetrics(ns, "chain_id", chainID)
	}
}

// appMetrics are the ledger's metrics as the node observes them: what each finalized
// block carried (counters, from its transactions and events) and what the committed
// state holds (read at scrape time through the app's queries).
type appMetrics struct {
	txs           *prometheus.CounterVec // by message type and result code
	blocks        prometheus.Counter
	height        prometheus.Gauge
	ordersCreated prometheus.Counter
	bidsCreated   prometheus.Counter
	leasesCreated prometheus.Counter
	leasesStarted prometheus.Counter
	leasesClosed  *prometheus.CounterVec // by close reason
	ordersClosed  *prometheus.CounterVec // by close reason
	fees          *prometheus.CounterVec // tx fees collected, by denom
	slashes       *prometheus.CounterVec // by purpose

	names   sync.Map // types.MsgType -> label
	msgRegs *tx.Registry
}

func newAppMetrics(reg prometheus.Registerer) *appMetrics {
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: MetricsNamespace, Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	fv := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: MetricsNamespace, Name: name, Help: help}, labels)
		reg.MustRegister(c)
		return c
	}
	m := &appMetrics{
		txs:           fv("txs_total", "Transactions in finalized blocks, by their first message's type and result code (0: success).", "msg", "code"),
		blocks:        f("blocks_total", "Blocks finalized by this node since it started."),
		ordersCreated: f("orders_created_total", "Orders placed (order_created events)."),
		bidsCreated:   f("bids_created_total", "Bids placed (bid_created events)."),
		leasesCreated: f("leases_created_total", "Leases made (lease_created events)."),
		leasesStarted: f("leases_started_total", "Leases whose workload started, from which they bill (lease_started events)."),
		leasesClosed:  fv("leases_closed_total", "Leases closed, by close reason (lease_closed events).", "reason"),
		ordersClosed:  fv("orders_closed_total", "Orders closed, by close reason (order_closed events).", "reason"),
		fees:          fv("tx_fees_total", "Transaction fees collected, in base units, by denom (fees events).", "denom"),
		slashes:       fv("bond_slashes_total", "Bonds slashed, by bond purpose (slash_bond events).", "purpose"),
		msgRegs:       app.NewRegistry(),
	}
	// NB: shown at 0 before the first slash, so a dashboard finds the series.
	for _, purpose := range []string{"provider", "verifier"} {
		m.slashes.WithLabelValues(purpose)
	}
	m.height = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: MetricsNamespace, Name: "block_height", Help: "Height of the last block this node finalized."})
	reg.MustRegister(m.height)
	return m
}

// msgLabel names a message type for the txs_total label: the Go type of its decoded
// message without the pointer (market.MsgCreateOrder), or "type_N" when the app does
// not know it.
func (m *appMetrics) msgLabel(r tx.RawMsg) string {
	if v, ok := m.names.Load(r.Type); ok {
		return v.(string)
	}
	msg, err := m.msgRegs.DecodeMsg(r)
	if err != nil {
		// NB: not cached: a malformed body of a known type must not name the type.
		return "type_" + strconv.FormatUint(uint64(r.Type), 10)
	}
	name := strings.TrimPrefix(fmt.Sprintf("%T", msg), "*")
	m.names.Store(r.Type, name)
	return name
}

// observe counts what one finalized block carried.
func (m *appMetrics) observe(req *abcitypes.RequestFinalizeBlock, res *abcitypes.ResponseFinalizeBlock) {
	m.blocks.Inc()
	m.height.Set(float64(req.Height))
	for i, raw := range req.Txs {
		label := "undecodable"
		if t, err := tx.Decode(raw); err == nil && len(t.Body.Msgs) > 0 {
			label = m.msgLabel(t.Body.Msgs[0])
		}
		code := uint32(0)
		if i < len(res.TxResults) {
			code = res.TxResults[i].Code
			m.events(res.TxResults[i].Events)
		}
		m.txs.WithLabelValues(label, strconv.FormatUint(uint64(code), 10)).Inc()
	}
	m.events(res.Events)
}

func attr(e abcitypes.Event, key string) string {
	for _, a := range e.Attributes {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// events counts the market's and bank's events of one tx or of the block.
func (m *appMetrics) events(evs []abcitypes.Event) {
	for _, e := range evs {
		switch e.Type {
		case "order_created":
			m.ordersCreated.Inc()
		case "bid_created":
			m.bidsCreated.Inc()
		case "lease_created":
			m.leasesCreated.Inc()
		case "lease_started":
			m.leasesStarted.Inc()
		case "lease_closed":
			m.leasesClosed.WithLabelValues(attr(e, "reason")).Inc()
		case "order_closed":
			m.ordersClosed.WithLabelValues(attr(e, "reason")).Inc()
		case "slash_bond":
			m.slashes.WithLabelValues(attr(e, "purpose")).Inc()
		case "fees":
			// NB: amount is a coin, 1234ukiln.
			amt := attr(e, "amount")
			i := strings.IndexFunc(amt, func(r rune) bool { return r < '0' || r > '9' })
			if i <= 0 {
				continue
			}
			if n, err := strconv.ParseUint(amt[:i], 10, 64); err == nil {
				m.fees.WithLabelValues(amt[i:]).Add(float64(n))
			}
		}
	}
}

// observedApp is the app as CometBFT sees it, with every finalized block counted.
type observedApp struct {
	*app.App
	m *appMetrics
}

// FinalizeBlock runs the app's and counts what the block carried.
func (o observedApp) FinalizeBlock(ctx context.Context, req *abcitypes.RequestFinalizeBlock) (*abcitypes.ResponseFinalizeBlock, error) {
	res, err := o.App.FinalizeBlock(ctx, req)
	if err == nil {
		o.m.observe(req, res)
	}
	return res, err
}

var _ abcitypes.Application = observedApp{}

// stateCollector reads the committed state at scrape time, through the app's own
// queries: what is open and active now, and the escrow books' totals. A scrape costs
// O(open orders + active leases + providers + escrow accounts).
type stateCollector struct {
	a                                             *app.App
	orders, leases, bids, providers, escrow, held *prometheus.Desc
	escrowBal                                     *prometheus.Desc
}

func newStateCollector(a *app.App) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(MetricsNamespace, "", name), help, labels, nil)
	}
	return &stateCollector{a: a,
		orders:    d("orders_open", "Orders taking bids now."),
		leases:    d("leases_active", "Leases active now."),
		bids:      d("bids_open", "Open bids now."),
		providers: d("providers_registered", "Providers registered now."),
		escrow:    d("escrow_total", "Escrow books summed over every order ever placed, in base units: kind paid (to providers, net of fees), fees (protocol fees to the community pool), refunded, deposited.", "kind", "denom"),
		held:      d("escrow_held", "Provider pay held back now until its dispute window closes, in base units.", "denom"),
		escrowBal: d("escrow_balance", "What escrow accounts hold now, in base units.", "denom"),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.orders, c.leases, c.bids, c.providers, c.escrow, c.held, c.escrowBal} {
		ch <- d
	}
}

func (c *stateCollector) query(path string, out any) bool {
	res, err := c.a.Query(context.Background(), &abcitypes.RequestQuery{Path: path})
	return err == nil && res.Code == 0 && json.Unmarshal(res.Value, out) == nil
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.Height() == 0 {
		return
	}
	var orders struct{ Orders []json.RawMessage }
	if c.query("/market/orders?state=open", &orders) {
		ch <- prometheus.MustNewConstMetric(c.orders, prometheus.GaugeValue, float64(len(orders.Orders)))
	}
	var leases struct{ Leases []json.RawMessage }
	if c.query("/market/leases?state=active", &leases) {
		ch <- prometheus.MustNewConstMetric(c.leases, prometheus.GaugeValue, float64(len(leases.Leases)))
	}
	var bids struct{ Bids []json.RawMessage }
	if c.query("/market/bids", &bids) {
		ch <- prometheus.MustNewConstMetric(c.bids, prometheus.GaugeValue, float64(len(bids.Bids)))
	}
	var provs struct{ Providers []json.RawMessage }
	if c.query("/registry/providers", &provs) {
		ch <- prometheus.MustNewConstMetric(c.providers, prometheus.GaugeValue, float64(len(provs.Providers)))
	}
	var totals struct {
		Totals []struct {
			Denom     string `json:"denom"`
			Deposited uint64 `json:"deposited,string"`
			Balance   uint64 `json:"balance,string"`
			Paid      uint64 `json:"paid,string"`
			Fees      uint64 `json:"fees,string"`
			Refunded  uint64 `json:"refunded,string"`
			Held      uint64 `json:"held,string"`
		} `json:"totals"`
	}
	if c.query("/escrow/totals", &totals) {
		for _, t := range totals.Totals {
			ch <- prometheus.MustNewConstMetric(c.escrow, prometheus.CounterValue, float64(t.Paid), "paid", t.Denom)
			ch <- prometheus.MustNewConstMetric(c.escrow, prometheus.CounterValue, float64(t.Fees), "fees", t.Denom)
			ch <- prometheus.MustNewConstMetric(c.escrow, prometheus.CounterValue, float64(t.Refunded), "refunded", t.Denom)
			ch <- prometheus.MustNewConstMetric(c.escrow, prometheus.CounterValue, float64(t.Deposited), "deposited", t.Denom)
			ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(t.Held), t.Denom)
			ch <- prometheus.MustNewConstMetric(c.escrowBal, prometheus.GaugeValue, float64(t.Balance), t.Denom)
		}
	}
}

// metricsServer serves a node's registry on the address instrumentation's
// prometheus_listen_addr names, bound by Kiln (port 0 works; MetricsAddr reports it).
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

func listenMetrics(addr string) (*metricsServer, error) {
	addr = strings.TrimPrefix(addr, "tcp://")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s (instrumentation.prometheus_listen_addr): %w", addr, err)
	}
	return &metricsServer{ln: ln}, nil
}

func (s *metricsServer) serve(reg *prometheus.Registry) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(s.ln)
}

func (s *metricsServer) close() {
	if s.srv != nil {
		s.srv.Close()
		return
	}
	s.ln.Close()
}

// newRegistry returns a node's registry with the Go runtime's and the process's
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
