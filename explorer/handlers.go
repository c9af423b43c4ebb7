package explorer

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// pageSize is how many rows a list page shows.
const pageSize = 50

// nodeTimeout bounds one page's reads from the node.
const nodeTimeout = 10 * time.Second

// Handler returns the explorer's routes. Every page answers HTML, or JSON with
// ?format=json or Accept: application/json; a bad id, address, hash or query string is
// a 400 page naming what is wrong, a missing record a 404.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	page := func(pattern, name string, h func(w http.ResponseWriter, r *http.Request) (data any, title string, err error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			code := http.StatusOK
			defer func() { s.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc() }()
			data, title, err := h(w, r)
			if err != nil {
				var he *httpError
				if !errors.As(err, &he) {
					he = &httpError{Status: http.StatusBadGateway, Msg: "the node did not answer: " + err.Error()}
				}
				code = he.Status
				s.fail(w, r, he)
				return
			}
			if data == nil { // redirected
				code = http.StatusSeeOther
				return
			}
			q, _ := params(r)
			asJSON, _ := wantJSON(r, q)
			s.write(w, r, code, name, title, data, asJSON)
		})
	}
	page("GET /{$}", "overview", s.overview)
	page("GET /providers", "providers", s.providersPage)
	page("GET /provider/{addr}", "provider", s.providerPage)
	page("GET /orders", "orders", s.ordersPage)
	page("GET /order/{id}", "order", s.orderPage)
	page("GET /leases", "leases", s.leasesPage)
	page("GET /lease/{id}", "lease", s.leasePage)
	page("GET /blocks", "blocks", s.blocksPage)
	page("GET /block/{height}", "block", s.blockPage)
	page("GET /tx/{hash}", "tx", s.txPage)
	page("GET /address/{addr}", "address", s.addressPage)
	page("GET /search", "search", s.search)
	page("GET /verification", "verification", s.verificationPage)
	page("/", "error", func(http.ResponseWriter, *http.Request) (any, string, error) {
		return nil, "", notFound("no such page: try the overview, providers, orders, leases, blocks or search")
	})
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("explorer page panicked", "path", r.URL.Path, "panic", v)
				s.fail(w, r, &httpError{Status: http.StatusInternalServerError, Msg: "internal error"})
			}
		}()
		mux.ServeHTTP(w, r)
	})
}

// start checks the query string and the format; every page begins with it.
func start(r *http.Request, allowed ...string) (map[string]string, error) {
	q, he := params(r, allowed...)
	if he != nil {
		return nil, he
	}
	if _, he := wantJSON(r, q); he != nil {
		return nil, he
	}
	out := map[string]string{}
	for k := range q {
		out[k] = q.Get(k)
	}
	return out, nil
}

// snapshot returns the latest snapshot, or a 503 when none was read yet.
func (s *Server) snapshot() (*Snapshot, error) {
	snap := s.snap.Load()
	if snap == nil {
		msg := "the explorer has not read the chain yet"
		if e := s.lastErr.Load(); e != nil {
			msg += ": " + *e
		}
		return nil, &httpError{Status: http.StatusServiceUnavailable, Msg: msg}
	}
	return snap, nil
}

// parseID reads a positive decimal id from a path element.
func parseID(what, v string) (uint64, error) {
	if len(v) == 0 || len(v) > 20 || !allDigits(v) {
		return 0, badRequest("%s id %s: want a positive integer", what, quoteShort(safe(v)))
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 {
		return 0, badRequest("%s id %s: want a positive 64-bit integer", what, quoteShort(v))
	}
	return id, nil
}

// safe replaces what is not valid UTF-8 so that a message can quote it.
func safe(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func parseAddr(v string) (types.Address, error) {
	if len(v) > 128 {
		return types.Address{}, badRequest("address is %d bytes long: not an address", len(v))
	}
	a, err := types.ParseAddress(safe(v))
	if err != nil {
		return a, badRequest("%v", err)
	}
	return a, nil
}

func pageArg(q map[string]string) (int, error) {
	p := q["page"]
	if p == "" {
		return 1, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 1_000_000 {
		return 0, badRequest("page %s: want a number from 1", quoteShort(p))
	}
	return n, nil
}

func (s *Server) overview(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	return snap.overview, "Overview", nil
}

// ProviderRow is a provider in the list.
type ProviderRow struct {
	Address      string   `json:"address"`
	Region       string   `json:"region"`
	Source       string   `json:"inventory_source"`
	GPUs         []string `json:"gpus"`
	GPUModels    []string `json:"gpu_models"`
	CPUCores     uint64   `json:"cpu_cores"`
	Memory       uint64   `json:"memory_bytes,string"`
	Stake        uint64   `json:"stake,string"`
	Online       string   `json:"online"` // yes, no, or unknown (not probed yet)
	Uptime       float64  `json:"uptime_pct"`
	Attested     bool     `json:"attested"`
	ActiveLeases int      `json:"active_leases"`
	Executor     string   `json:"executor"`
}

// ProvidersPage is the providers list with its filters.
type ProvidersPage struct {
	Filter    map[string]string `json:"filter"`
	Providers []ProviderRow     `json:"providers"`
	Models    []string          `json:"gpu_models"`
	Regions   []string          `json:"regions"`
	// AttestationNote says where attestations come from on this chain.
	AttestationNote string `json:"attestation_note"`
}

var (
	modelRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)
	regionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

func yesNo(name, v string) error {
	if v != "" && v != "yes" && v != "no" {
		return badRequest("%s %s: want yes or no", name, quoteShort(v))
	}
	return nil
}

func (s *Server) providerRow(snap *Snapshot, p registry.Provider) ProviderRow {
	row := ProviderRow{Address: p.Owner.String(), Region: p.Inventory.Region, Source: p.Inventory.Source, CPUCores: p.Inventory.CPUCores,
		Memory: p.Inventory.MemoryBytes, Stake: p.Stake, Online: "unknown", Attested: snap.Attested[p.Owner.String()], Executor: p.Inventory.Runtime.Executor,
		GPUs: []string{}, GPUModels: []string{}}
	for _, g := range p.Inventory.GPUs {
		row.GPUs = append(row.GPUs, fmt.Sprintf("%d× %s %s %s", g.Count, strings.ToUpper(g.Model), fmtBytes(g.MemoryBytes), g.Interface))
		row.GPUModels = append(row.GPUModels, g.Model)
	}
	if pr, ok := s.probeOf(row.Address); ok {
		row.Online, row.Uptime = "no", pr.Uptime()
		if pr.Online {
			row.Online = "yes"
		}
	}
	for _, i := range snap.leasesOf[row.Address] {
		if snap.Leases[i].State == market.LeaseActive {
			row.ActiveLeases++
		}
	}
	return row
}

func (s *Server) providersPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	q, err := start(r, "gpu", "region", "attested", "online")
	if err != nil {
		return nil, "", err
	}
	if v := q["gpu"]; v != "" && !modelRe.MatchString(v) {
		return nil, "", badRequest("gpu %s: want a GPU model key such as h100", quoteShort(v))
	}
	if v := q["region"]; v != "" && !regionRe.MatchString(v) {
		return nil, "", badRequest("region %s: want letters, digits, - _ .", quoteShort(v))
	}
	if err := yesNo("attested", q["attested"]); err != nil {
		return nil, "", err
	}
	if err := yesNo("online", q["online"]); err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	out := ProvidersPage{Filter: q, Providers: []ProviderRow{},
		AttestationNote: "no module on this chain records TEE attestations: no provider is attested"}
	if snap.hasModule(xtee.ModuleName) {
		out.AttestationNote = "a TEE attestation (SEV-SNP or TDX) verified and in force on chain (the tee module)"
	}
	models, regions := map[string]bool{}, map[string]bool{}
	for _, p := range snap.Providers {
		row := s.providerRow(snap, p)
		for _, m := range row.GPUModels {
			models[m] = true
		}
		regions[row.Region] = true
		switch {
		case q["gpu"] != "" && !contains(row.GPUModels, q["gpu"]),
			q["region"] != "" && row.Region != q["region"],
			q["attested"] != "" && row.Attested != (q["attested"] == "yes"),
			q["online"] != "" && row.Online != q["online"]:
			continue
		}
		out.Providers = append(out.Providers, row)
	}
	out.Models, out.Regions = sortedKeys(models), sortedKeys(regions)
	return out, "Providers", nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

// ProviderPage is one provider.
type ProviderPage struct {
	ProviderRow
	Endpoint string `json:"endpoint"`
	// InventorySaid says, in words, where the inventory came from.
	InventorySaid string                 `json:"inventory_said"`
	Inventory     registry.Inventory     `json:"inventory"`
	Capacity      *market.CapacityReport `json:"capacity,omitempty"`
	// Prices are what its leases pay, per GPU model.
	Prices []ModelPrice `json:"prices"`
	// Scores are the hardware-challenge scores on record (per model); ScoresNote says
	// why there are none. Challenges are its latest liveness and hardware challenges.
	Scores     []liveness.Score     `json:"benchmark_scores"`
	ScoresNote string               `json:"benchmark_scores_note,omitempty"`
	Challenges []liveness.Challenge `json:"challenges"`
	Probe      *ProviderProbe       `json:"probe,omitempty"`
	Leases     []market.LeaseView   `json:"leases"`
	Slashes    []ChainEvent         `json:"slashes"`
	Registered int64                `json:"registered_height,string"`
}

// ModelPrice is a provider's price for one GPU model, from its leases.
type ModelPrice struct {
	Model            string  `json:"model"`
	PricePerGPUBlock float64 `json:"price_per_gpu_block"`
	PricePerGPUHour  float64 `json:"price_per_gpu_hour"`
	Leases           int     `json:"leases"`
}

func inventorySaid(inv registry.Inventory) string {
	switch {
	case inv.Source == SourceDeclared:
		return "declared: typed by the operator, not measured on the machine"
	case strings.HasPrefix(inv.Source, "detected"):
		return "detected: measured on the machine (" + strings.TrimPrefix(strings.TrimPrefix(inv.Source, "detected"), "-") + ")"
	}
	return inv.Source
}

func (s *Server) providerPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	a, err := parseAddr(r.PathValue("addr"))
	if err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	p, ok := snap.findProvider(a.String())
	if !ok {
		return nil, "", notFound("%s is not a registered provider (see /address/%s)", a, a)
	}
	out := ProviderPage{ProviderRow: s.providerRow(snap, p), Endpoint: p.Endpoint, InventorySaid: inventorySaid(p.Inventory),
		Inventory: p.Inventory, Scores: []liveness.Score{}, Challenges: []liveness.Challenge{}, Registered: p.CreatedHeight, Slashes: []ChainEvent{},
		ScoresNote: "this chain has no liveness module: no hardware-challenge scores are recorded"}
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	if snap.hasModule(liveness.ModuleName) {
		out.ScoresNote = "no hardware challenge answered yet"
		var sc struct {
			Scores []liveness.Score `json:"scores"`
		}
		if err := s.c.QueryJSON(ctx, "/liveness/scores?provider="+a.String(), &sc); err == nil && len(sc.Scores) > 0 {
			out.Scores, out.ScoresNote = sc.Scores, ""
		}
		var ch struct {
			Challenges []liveness.Challenge `json:"challenges"`
		}
		if err := s.c.QueryJSON(ctx, "/liveness/challenges?provider="+a.String(), &ch); err == nil {
			out.Challenges = lastN(ch.Challenges, 20)
		}
	}
	if c, err := s.c.ProviderCapacity(ctx, a); err == nil {
		out.Capacity = &c
	}
	if pr, ok := s.probeOf(a.String()); ok {
		out.Probe = &pr
	}
	leases := snap.providerLeases(a.String())
	bps := snap.BlocksPerSecond()
	per := map[string][]float64{}
	for _, l := range leases {
		if n, m := leaseGPUs(l); n > 0 {
			per[m] = append(per[m], float64(l.Price)/float64(n))
		}
	}
	for _, m := range sortedKeys(boolKeys(per)) {
		mp := ModelPrice{Model: m, PricePerGPUBlock: median(per[m]), Leases: len(per[m])}
		mp.PricePerGPUHour = mp.PricePerGPUBlock * bps * 3600 / baseUnitsPerCoin
		out.Prices = append(out.Prices, mp)
	}
	if out.Prices == nil {
		out.Prices = []ModelPrice{}
	}
	if len(leases) > pageSize {
		leases = leases[:pageSize]
	}
	out.Leases = leases
	out.Slashes = s.slashesOf(ctx, a.String())
	return out, "Provider " + shortAddr(a.String()), nil
}

func boolKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// slashesOf finds the bond slashes of owner: in end-block (block events) and in txs.
func (s *Server) slashesOf(ctx context.Context, owner string) []ChainEvent {
	out := []ChainEvent{}
	query := fmt.Sprintf("slash_bond.owner='%s'", owner) // NB: owner is a parsed bech32 address
	page, per := 1, 20
	if res, err := s.c.RPC.BlockSearch(ctx, query, &page, &per, "desc"); err == nil {
		for _, b := range res.Blocks {
			h := b.Block.Height
			br, err := s.c.RPC.BlockResults(ctx, &h)
			if err != nil {
				continue
			}
			for _, e := range br.FinalizeBlockEvents {
				if e.Type == "slash_bond" {
					ce := chainEvent(h, "", e.Type, e.Attributes)
					if ce.Attrs["owner"] == owner {
						out = append(out, ce)
					}
				}
			}
		}
	}
	if res, err := s.c.RPC.TxSearch(ctx, query, false, &page, &per, "desc"); err == nil {
		for _, t := range res.Txs {
			for _, e := range t.TxResult.Events {
				if e.Type == "slash_bond" {
					ce := chainEvent(t.Height, strings.ToUpper(hex.EncodeToString(t.Hash)), e.Type, e.Attributes)
					if ce.Attrs["owner"] == owner {
						out = append(out, ce)
					}
				}
			}
		}
	}
	return out
}

// OrderRow is an order in the list.
type OrderRow struct {
	market.Order
	Reason string `json:"close_reason_said,omitempty"`
}

// ListPage is a page of a list, newest first.
type ListPage[T any] struct {
	Filter map[string]string `json:"filter"`
	Page   int               `json:"page"`
	Pages  int               `json:"pages"`
	Total  int               `json:"total"`
	Rows   []T               `json:"rows"`
	Prev   string            `json:"-"`
	Next   string            `json:"-"`
}

// paginate returns page p of rows (which are oldest first), newest first.
func paginate[T any](rows []T, p int, filter map[string]string, base string) ListPage[T] {
	out := ListPage[T]{Filter: filter, Page: p, Total: len(rows), Pages: max(1, (len(rows)+pageSize-1)/pageSize), Rows: []T{}}
	hi := len(rows) - (p-1)*pageSize
	for i := hi - 1; i >= 0 && i >= hi-pageSize; i-- {
		out.Rows = append(out.Rows, rows[i])
	}
	link := func(n int) string {
		v := []string{}
		for _, k := range sortedKeys(boolKeys(filter)) {
			if k != "page" && k != "format" && filter[k] != "" {
				v = append(v, k+"="+filter[k])
			}
		}
		v = append(v, "page="+strconv.Itoa(n))
		return base + "?" + strings.Join(v, "&")
	}
	if p > 1 {
		out.Prev = link(p - 1)
	}
	if p < out.Pages {
		out.Next = link(p + 1)
	}
	return out
}

func (s *Server) ordersPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	q, err := start(r, "state", "page")
	if err != nil {
		return nil, "", err
	}
	if st := q["state"]; st != "" && st != market.OrderOpen && st != market.OrderActive && st != market.OrderClosed {
		return nil, "", badRequest("state %s: want open, active or closed", quoteShort(st))
	}
	p, err := pageArg(q)
	if err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	var rows []OrderRow
	for _, o := range snap.Orders {
		if q["state"] == "" || o.State == q["state"] {
			rows = append(rows, OrderRow{Order: o, Reason: reasonText(o.CloseReason)})
		}
	}
	return paginate(rows, p, q, "/orders"), "Orders", nil
}

func (s *Server) leasesPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	q, err := start(r, "state", "provider", "page")
	if err != nil {
		return nil, "", err
	}
	if st := q["state"]; st != "" && st != market.LeaseActive && st != market.LeaseClosed {
		return nil, "", badRequest("state %s: want active or closed", quoteShort(st))
	}
	if q["provider"] != "" {
		if _, err := parseAddr(q["provider"]); err != nil {
			return nil, "", err
		}
	}
	p, err := pageArg(q)
	if err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	var rows []LeaseRow
	for _, l := range snap.Leases {
		if (q["state"] == "" || l.State == q["state"]) && (q["provider"] == "" || l.Provider.String() == q["provider"]) {
			rows = append(rows, leaseRow(l))
		}
	}
	return paginate(rows, p, q, "/leases"), "Leases", nil
}

// LeaseRow is a lease in lists.
type LeaseRow struct {
	market.LeaseView
	GPUCount int    `json:"gpu_count"`
	GPUModel string `json:"gpu_model,omitempty"`
	Reason   string `json:"close_reason_said,omitempty"`
}

func leaseRow(l market.LeaseView) LeaseRow {
	n, m := leaseGPUs(l)
	return LeaseRow{LeaseView: l, GPUCount: n, GPUModel: m, Reason: reasonText(l.CloseReason)}
}

// OrderPage is one order: its bids, why it has none, its lease and escrow.
type OrderPage struct {
	Order  market.Order          `json:"order"`
	Reason string                `json:"close_reason_said,omitempty"`
	Bids   []market.BidView      `json:"bids"`
	Match  *market.MatchReport   `json:"why_no_bids,omitempty"`
	Lease  *LeaseRow             `json:"lease,omitempty"`
	Escrow *escrow.EscrowAccount `json:"escrow,omitempty"`
	// NoBids says in words why no provider bids, when none does.
	NoBids []string `json:"no_bids_said,omitempty"`
}

func (s *Server) orderPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	id, err := parseID("order", r.PathValue("id"))
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	o, err := s.c.Order(ctx, id)
	if errors.Is(err, client.ErrNotFound) {
		return nil, "", notFound("no order %d on chain", id)
	}
	if err != nil {
		return nil, "", err
	}
	out := OrderPage{Order: o, Reason: reasonText(o.CloseReason), Bids: []market.BidView{}}
	var bids struct {
		Bids []market.BidView `json:"bids"`
	}
	if err := s.c.QueryJSON(ctx, client.PathBids(id, types.Address{}), &bids); err == nil && bids.Bids != nil {
		out.Bids = bids.Bids
	}
	if l, err := s.c.Lease(ctx, id); err == nil {
		row := leaseRow(market.ShowLease(l))
		out.Lease = &row
	}
	if a, err := s.c.Escrow(ctx, id); err == nil {
		out.Escrow = &a
	}
	if len(out.Bids) == 0 && out.Lease == nil {
		if m, err := s.c.WhyNoBids(ctx, id); err == nil {
			out.Match = &m
			for _, pm := range m.Providers {
				for _, f := range pm.Failures {
					out.NoBids = append(out.NoBids, fmt.Sprintf("%s: %s (%s)", shortAddr(pm.Provider.String()), f.Constraint, f.Detail))
				}
			}
			if len(m.Providers) == 0 {
				out.NoBids = append(out.NoBids, "no provider is registered")
			}
		}
	}
	return out, fmt.Sprintf("Order %d", id), nil
}

// LeasePage is one lease with its payments over time.
type LeasePage struct {
	Lease  LeaseRow              `json:"lease"`
	Order  *market.Order         `json:"order,omitempty"`
	Escrow *escrow.EscrowAccount `json:"escrow,omitempty"`
	// Payments is the lease's pay, cumulative, per height: price per block from the
	// block after its start to the escrow's last settlement, capped at what left the
	// escrow for payments (in base units).
	Payments []DataPoint `json:"payments"`
	Chart    Chart       `json:"-"`
	Billing  string      `json:"billing_said"`
}

func (s *Server) leasePage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	id, err := parseID("lease", r.PathValue("id"))
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	l, err := s.c.Lease(ctx, id)
	if errors.Is(err, client.ErrNotFound) {
		return nil, "", notFound("no lease %d on chain", id)
	}
	if err != nil {
		return nil, "", err
	}
	out := LeasePage{Lease: leaseRow(market.ShowLease(l)), Payments: []DataPoint{}}
	if o, err := s.c.Order(ctx, id); err == nil {
		out.Order = &o
	}
	if a, err := s.c.Escrow(ctx, id); err == nil {
		out.Escrow = &a
		out.Payments = payments(l, a)
	}
	switch {
	case l.StartedHeight == 0 && l.State == market.LeaseActive:
		out.Billing = "not billing yet: the provider has not reported the workload started"
	case l.StartedHeight == 0:
		out.Billing = "never billed: the workload never started"
	default:
		out.Billing = fmt.Sprintf("billed %d ukiln per block from height %d", l.Price, l.StartedHeight+1)
	}
	out.Chart = NewChart("payments", "Payments", "height", "KILN paid (cumulative)",
		[]SeriesData{{Name: "paid", Points: scaleY(out.Payments, 1/baseUnitsPerCoin)}}, "no payment yet")
	return out, fmt.Sprintf("Lease %d", id), nil
}

func scaleY(ps []DataPoint, k float64) []DataPoint {
	out := make([]DataPoint, len(ps))
	for i, p := range ps {
		out[i] = DataPoint{X: p.X, Y: p.Y * k}
	}
	return out
}

// payments derives lease l's cumulative pay per height from its price, its start and
// its escrow's last settlement, capped at what left the escrow to pay leases (fees and
// held pay included): at most chartPoints points.
func payments(l market.Lease, a escrow.EscrowAccount) []DataPoint {
	out := []DataPoint{}
	if l.StartedHeight == 0 || a.SettledHeight <= l.StartedHeight {
		return out
	}
	gross := a.Deposited - a.Balance - a.Refunded
	from, to := l.StartedHeight, a.SettledHeight
	width, _ := buckets(from, to)
	for h := from; ; h += width {
		if h > to {
			h = to
		}
		paid := min(l.Price*uint64(h-from), gross)
		out = append(out, DataPoint{X: float64(h), Y: float64(paid)})
		if h == to {
			break
		}
	}
	return out
}

func (s *Server) blocksPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	return struct {
		BlocksPerSecond float64    `json:"blocks_per_second"`
		Blocks          []BlockRow `json:"blocks"`
	}{snap.BlocksPerSecond(), snap.Blocks}, "Blocks", nil
}

// TxRow is a transaction in a block or on its own page.
type TxRow struct {
	Hash   string       `json:"hash"`
	Height int64        `json:"height,string"`
	Index  int          `json:"index"`
	Code   uint32       `json:"code"`
	Log    string       `json:"log,omitempty"`
	Signer string       `json:"signer,omitempty"`
	Fee    string       `json:"fee,omitempty"`
	Memo   string       `json:"memo,omitempty"`
	Msgs   []MsgView    `json:"msgs"`
	Events []ChainEvent `json:"events,omitempty"`
}

// MsgView is one decoded message.
type MsgView struct {
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

// decodeTx reads raw's envelope and messages; what does not decode is said so.
func (s *Server) decodeTx(raw []byte) (signer, fee, memo string, msgs []MsgView) {
	t, err := tx.Decode(raw)
	if err != nil {
		return "", "", "", []MsgView{{Type: "undecodable: " + err.Error(), Body: json.RawMessage("null")}}
	}
	msgs = []MsgView{}
	for _, rm := range t.Body.Msgs {
		m, err := s.msgs.DecodeMsg(rm)
		if err != nil {
			msgs = append(msgs, MsgView{Type: fmt.Sprintf("type %d (undecodable: %v)", rm.Type, err), Body: json.RawMessage("null")})
			continue
		}
		b, _ := json.Marshal(m)
		msgs = append(msgs, MsgView{Type: strings.TrimPrefix(fmt.Sprintf("%T", m), "*"), Body: b})
	}
	return t.Signer().String(), t.Body.Fee.String(), t.Body.Memo, msgs
}

// BlockPage is one block: header, txs, and its own (begin/end-block) events.
type BlockPage struct {
	BlockRow
	AppHash string       `json:"app_hash"`
	Txs     []TxRow      `json:"txs"`
	Events  []ChainEvent `json:"events"`
}

func (s *Server) blockPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	v := r.PathValue("height")
	hu, err := parseID("block height", v)
	if err != nil {
		return nil, "", err
	}
	if hu > 1<<62 {
		return nil, "", badRequest("height %d is beyond any chain", hu)
	}
	h := int64(hu)
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	return s.blockAt(ctx, h)
}

func (s *Server) blockAt(ctx context.Context, h int64) (any, string, error) {
	if top, err := s.c.AppHeight(ctx); err == nil && h > top {
		return nil, "", notFound("no block %d yet: the chain is at %d", h, top)
	}
	b, err := s.c.RPC.Block(ctx, &h)
	if err != nil {
		return nil, "", notFound("no block %d on this node: %v", h, err)
	}
	out := BlockPage{BlockRow: BlockRow{Height: h, Hash: b.BlockID.Hash.String(), Time: b.Block.Time, Txs: len(b.Block.Txs),
		Proposer: b.Block.ProposerAddress.String()}, AppHash: b.Block.AppHash.String(), Txs: []TxRow{}, Events: []ChainEvent{}}
	res, err := s.c.RPC.BlockResults(ctx, &h)
	if err != nil {
		return nil, "", err
	}
	for i, raw := range b.Block.Txs {
		row := TxRow{Hash: strings.ToUpper(hex.EncodeToString(raw.Hash())), Height: h, Index: i}
		row.Signer, row.Fee, row.Memo, row.Msgs = s.decodeTx(raw)
		if i < len(res.TxsResults) {
			row.Code, row.Log = res.TxsResults[i].Code, res.TxsResults[i].Log
		}
		out.Txs = append(out.Txs, row)
	}
	for _, e := range res.FinalizeBlockEvents {
		out.Events = append(out.Events, chainEvent(h, "", e.Type, e.Attributes))
	}
	return out, fmt.Sprintf("Block %d", h), nil
}

func (s *Server) txPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	v := r.PathValue("hash")
	if len(v) != 64 || !isHex(v) {
		return nil, "", badRequest("tx hash %s: want 64 hex digits", quoteShort(safe(v)))
	}
	hash, _ := hex.DecodeString(v)
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	res, err := s.c.RPC.Tx(ctx, hash, false)
	if err != nil {
		return nil, "", notFound("no tx %s on this node", strings.ToUpper(v))
	}
	row := TxRow{Hash: strings.ToUpper(v), Height: res.Height, Index: int(res.Index), Code: res.TxResult.Code, Log: res.TxResult.Log}
	row.Signer, row.Fee, row.Memo, row.Msgs = s.decodeTx(res.Tx)
	for _, e := range res.TxResult.Events {
		row.Events = append(row.Events, chainEvent(res.Height, row.Hash, e.Type, e.Attributes))
	}
	return row, "Tx " + row.Hash[:12], nil
}

// AddressPage is one account: balances, what it runs as a provider, its orders and
// leases, and the txs that name it.
type AddressPage struct {
	Address  string      `json:"address"`
	Balances types.Coins `json:"balances"`
	Sequence uint64      `json:"sequence"`
	Exists   bool        `json:"exists"`
	Provider bool        `json:"provider"`
	Orders   []OrderRow  `json:"orders"`
	Leases   []LeaseRow  `json:"leases"`
	Txs      []TxRow     `json:"txs"`
}

// addressEvents are the event attributes that name an account, searched for its txs.
var addressEvents = []string{"transfer.sender", "transfer.recipient", "order_created.owner", "bid_created.provider",
	"register_provider.owner", "cert_published.owner", "escrow_opened.owner"}

func (s *Server) addressPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	a, err := parseAddr(r.PathValue("addr"))
	if err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	out := AddressPage{Address: a.String(), Orders: []OrderRow{}, Leases: []LeaseRow{}, Txs: []TxRow{}}
	acc, found, err := s.c.Account(ctx, a)
	if err != nil {
		return nil, "", err
	}
	out.Exists, out.Sequence = found, acc.Sequence
	if out.Balances, err = s.c.Balances(ctx, a); err != nil {
		return nil, "", err
	}
	_, out.Provider = snap.findProvider(a.String())
	for i := len(snap.Orders) - 1; i >= 0 && len(out.Orders) < pageSize; i-- {
		if snap.Orders[i].Owner == a {
			out.Orders = append(out.Orders, OrderRow{Order: snap.Orders[i], Reason: reasonText(snap.Orders[i].CloseReason)})
		}
	}
	for i := len(snap.Leases) - 1; i >= 0 && len(out.Leases) < pageSize; i-- {
		if l := snap.Leases[i]; l.Owner == a || l.Provider == a {
			out.Leases = append(out.Leases, leaseRow(l))
		}
	}
	seen := map[string]bool{}
	for _, key := range addressEvents {
		page, per := 1, 10
		res, err := s.c.RPC.TxSearch(ctx, fmt.Sprintf("%s='%s'", key, a), false, &page, &per, "desc")
		if err != nil {
			continue
		}
		for _, t := range res.Txs {
			row := TxRow{Hash: strings.ToUpper(hex.EncodeToString(t.Hash)), Height: t.Height, Index: int(t.Index), Code: t.TxResult.Code}
			if seen[row.Hash] {
				continue
			}
			seen[row.Hash] = true
			row.Signer, row.Fee, row.Memo, row.Msgs = s.decodeTx(t.Tx)
			out.Txs = append(out.Txs, row)
		}
	}
	sortTxs(out.Txs)
	return out, "Address " + shortAddr(a.String()), nil
}

// SearchPage lists what a numeric search term may name.
type SearchPage struct {
	Query   string  `json:"query"`
	Target  Target  `json:"target"`
	Matches []Match `json:"matches"`
}

// Match is one record a search term names.
type Match struct {
	Kind string `json:"kind"`
	Link string `json:"link"`
	Said string `json:"said"`
}

// search reads q and redirects to the one record it names, or lists them when a
// number names several (a height, an order, a lease). It answers JSON with the matches.
func (s *Server) search(w http.ResponseWriter, r *http.Request) (any, string, error) {
	q, err := start(r, "q")
	if err != nil {
		return nil, "", err
	}
	t, perr := ParseSearch(q["q"])
	if perr != nil {
		return nil, "", badRequest("%v", perr)
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
	defer cancel()
	out := SearchPage{Query: t.String(), Target: t, Matches: []Match{}}
	id := strconv.FormatUint(t.ID, 10)
	switch t.Kind {
	case KindNumber, KindHeight, KindOrder, KindLease:
		if t.Kind == KindNumber || t.Kind == KindLease {
			if l, err := s.c.Lease(ctx, t.ID); err == nil {
				out.Matches = append(out.Matches, Match{Kind: "lease", Link: "/lease/" + id, Said: fmt.Sprintf("lease %d: %s, %s", t.ID, l.State, shortAddr(l.Provider.String()))})
			}
		}
		if t.Kind == KindNumber || t.Kind == KindOrder {
			if o, err := s.c.Order(ctx, t.ID); err == nil {
				out.Matches = append(out.Matches, Match{Kind: "order", Link: "/order/" + id, Said: fmt.Sprintf("order %d: %s", t.ID, o.State)})
			}
		}
		if t.Kind == KindNumber || t.Kind == KindHeight {
			if top, err := s.c.AppHeight(ctx); err == nil && t.ID <= uint64(top) {
				out.Matches = append(out.Matches, Match{Kind: "block", Link: "/block/" + id, Said: fmt.Sprintf("block %d", t.ID)})
			}
		}
	case KindHash:
		hash, _ := hex.DecodeString(t.Hash)
		if _, err := s.c.RPC.Tx(ctx, hash, false); err == nil {
			out.Matches = append(out.Matches, Match{Kind: "tx", Link: "/tx/" + t.Hash, Said: "transaction " + t.Hash})
		}
		if b, err := s.c.RPC.BlockByHash(ctx, hash); err == nil && b.Block != nil {
			out.Matches = append(out.Matches, Match{Kind: "block", Link: fmt.Sprintf("/block/%d", b.Block.Height), Said: fmt.Sprintf("block %d", b.Block.Height)})
		}
	case KindAddress:
		if snap := s.snap.Load(); snap != nil {
			if _, ok := snap.findProvider(t.Address); ok {
				out.Matches = append(out.Matches, Match{Kind: "provider", Link: "/provider/" + t.Address, Said: "provider " + t.Address})
			}
		}
		out.Matches = append(out.Matches, Match{Kind: "address", Link: "/address/" + t.Address, Said: "account " + t.Address})
	}
	asJSON := false
	if qs, he := params(r, "q"); he == nil {
		asJSON, _ = wantJSON(r, qs)
	}
	if len(out.Matches) == 1 && !asJSON {
		http.Redirect(w, r, out.Matches[0].Link, http.StatusSeeOther)
		return nil, "", nil
	}
	if len(out.Matches) == 0 {
		return nil, "", notFound("nothing on chain matches %s", t.String())
	}
	return out, "Search", nil
}

// lastN returns the last n of v, newest first.
func lastN[T any](v []T, n int) []T {
	out := make([]T, 0, min(n, len(v)))
	for i := len(v) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, v[i])
	}
	return out
}

// VerificationPage shows the chain's verification modules and their recent events.
type VerificationPage struct {
	// Challenges are the latest liveness and hardware challenges, where the liveness
	// module runs.
	Challenges []liveness.Challenge `json:"challenges"`
	// Modules are the modules of the chain's table beyond the core ledger (verify,
	// liveness, ...), with their query roots.
	Modules []ModuleRow `json:"modules"`
	// Note says plainly when the chain has none.
	Note   string       `json:"note,omitempty"`
	Events []ChainEvent `json:"events"`
	Blocks int          `json:"blocks_scanned"`
}

// ModuleRow is one module of the table.
type ModuleRow struct {
	Name      string `json:"name"`
	QueryRoot string `json:"query_root,omitempty"`
	Msgs      int    `json:"msg_types"`
}

func (s *Server) verificationPage(_ http.ResponseWriter, r *http.Request) (any, string, error) {
	if _, err := start(r); err != nil {
		return nil, "", err
	}
	snap, err := s.snapshot()
	if err != nil {
		return nil, "", err
	}
	out := VerificationPage{Modules: []ModuleRow{}, Events: s.recentEvents(), Blocks: s.cfg.Blocks, Challenges: []liveness.Challenge{}}
	if snap.hasModule(liveness.ModuleName) {
		ctx, cancel := context.WithTimeout(r.Context(), nodeTimeout)
		defer cancel()
		var ch struct {
			Challenges []liveness.Challenge `json:"challenges"`
		}
		if err := s.c.QueryJSON(ctx, "/liveness/challenges", &ch); err == nil {
			out.Challenges = lastN(ch.Challenges, pageSize)
		}
	}
	for _, m := range snap.verificationModules() {
		row := ModuleRow{Name: m.Name, Msgs: len(m.Msgs)}
		if m.Query {
			row.QueryRoot = "/" + m.Name + "/"
		}
		out.Modules = append(out.Modules, row)
	}
	if len(out.Modules) == 0 {
		out.Note = "this chain's module table has no verification module (verify, liveness, attestation): no work commitments, challenges or verdicts are recorded; bond slashes are shown below as they happen"
	}
	return out, "Verification", nil
}
