package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/demo"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/x/market"
)

// keptDemo runs `kiln demo --keep --output json` and returns its summary, printed once
// the jobs are done while the network keeps running; the demo is stopped (SIGTERM)
// when the test ends.
func keptDemo(t *testing.T) demo.Summary {
	t.Helper()
	cmd := exec.Command(kilnBin, "demo", "--keep", "--home", filepath.Join(t.TempDir(), "home"), "--output", "json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuilder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second): // closing the service lease takes a few blocks
			cmd.Process.Kill()
			t.Errorf("kiln demo --keep did not stop within 60 s of SIGTERM")
		}
		// Stopped with Ctrl-C, the demo closes its service lease and its provider stops
		// the workload before the demo exits: nothing is left running.
		if out, err := exec.Command("pgrep", "-f", kilnBin+" work serve").Output(); err == nil && len(out) > 0 {
			t.Errorf("kiln demo --keep left its service running after SIGTERM: pids %s", out)
		}
	})
	got := make(chan error, 1)
	var s demo.Summary
	go func() { got <- json.NewDecoder(out).Decode(&s) }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("kiln demo --keep -o json: %v\n%s", err, stderr.String())
		}
	case <-time.After(240 * time.Second): // the demo takes about 5 s alone, minutes under -race load
		t.Fatalf("kiln demo --keep printed no summary in 240 s:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, out)
	if s.ExplorerURL == "" || s.MetricsURL == "" {
		t.Fatalf("summary without explorer_url or metrics_url: %+v", s)
	}
	return s
}

// chromium finds Debian's chromium (or another Chrome) on PATH.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// The explorer in a real browser, over a running demo network: every page loads with
// no console error, the charts have points, search finds a lease by its id, a
// provider page says its inventory is declared. Screenshots of the main pages go to
// the test's artifact directory (go test -artifacts -outputdir DIR).
func TestExplorerInBrowser(t *testing.T) {
	browser := chromium()
	if browser == "" {
		t.Skip("no chromium on PATH: install Debian's chromium package (.ci/run does) to run the browser tests")
	}
	s := keptDemo(t)
	base := s.ExplorerURL
	var batch, service demo.Job
	for _, j := range s.Jobs {
		// NB: a batch job completed; the kept service still runs.
		if j.State == "completed" && batch.Lease == 0 && j.GPU != "" {
			batch = j
		}
		if j.State == "running" {
			service = j
		}
	}
	if batch.Lease == 0 || service.Lease == 0 {
		t.Fatalf("the demo ran no GPU batch job or no service: %+v", s.Jobs)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// 3 minutes for every page, the browser's start and the screenshots, under load.
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("%s %s: %s (%s)", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		case *page.EventJavascriptDialogOpening:
			problems = append(problems, "a script opened a dialog: "+ev.Message)
		}
	})
	if err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}
	artifacts := t.ArtifactDir()

	c, err := client.New(s.RPC)
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.Lease(ctx, batch.Lease)
	if err != nil {
		t.Fatal(err)
	}
	var txHash string
	var txHeight int64
	for h := l.CreatedHeight; txHash == "" && h < l.CreatedHeight+20; h++ {
		b, err := c.RPC.Block(ctx, &h)
		if err == nil && len(b.Block.Txs) > 0 {
			txHash, txHeight = fmt.Sprintf("%X", b.Block.Txs[0].Hash()), h
		}
	}

	// visit loads a page, checks it rendered as a page of its kind, and screenshots it.
	visit := func(name, path, h1 string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Errorf("%s (%s): %v", name, path, err)
			return
		}
		title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main h1")))
		if err != nil {
			t.Errorf("%s (%s): %v", name, path, err)
			return
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(80))
		if err != nil {
			t.Errorf("%s (%s): screenshot: %v", name, path, err)
			return
		}
		if !strings.HasPrefix(title, h1) {
			t.Errorf("%s (%s): heading %q, want %q", name, path, title, h1)
		}
		if err := os.WriteFile(filepath.Join(artifacts, name+".jpg"), shot, 0o644); err != nil {
			t.Error(err)
		}
	}
	visit("overview", "/", "Overview")
	visit("providers", "/providers", "Providers")
	visit("provider", "/provider/"+l.Provider.String(), "Provider")
	visit("orders", "/orders", "Orders")
	visit("order", fmt.Sprintf("/order/%d", batch.Lease), "Order")
	visit("leases", "/leases", "Leases")
	visit("lease", fmt.Sprintf("/lease/%d", batch.Lease), "Lease")
	visit("service-lease", fmt.Sprintf("/lease/%d", service.Lease), "Lease")
	visit("blocks", "/blocks", "Blocks")
	visit("block", fmt.Sprintf("/block/%d", txHeight), "Block")
	if txHash != "" {
		visit("tx", "/tx/"+txHash, "Tx")
	} else {
		t.Errorf("no tx in the 20 blocks after lease %d was made", batch.Lease)
	}
	visit("address", "/address/"+l.Owner.String(), "Address")
	visit("verification", "/verification", "Verification")

	// The charts have data points.
	count := func(path, sel string) int {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			t.Errorf("load %s: %v", path, err)
			return 0
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Errorf("count %s on %s: %v", sel, path, err)
		}
		return n
	}
	for _, ch := range []struct{ path, sel string }{
		{"/", "#chart-utilization circle.pt"}, {"/", "#chart-prices circle.pt"},
		// NB: the service lease, billed every block while it runs; a batch job that
		// starts and completes within one block is never billed, so its chart may be
		// empty (it was once, in CI).
		{fmt.Sprintf("/lease/%d", service.Lease), "#chart-payments circle.pt"},
	} {
		if n := count(ch.path, ch.sel); n < 2 {
			t.Errorf("%s on %s: %d data points, want at least 2", ch.sel, ch.path, n)
		}
	}

	// Search finds a lease by its id (typed into the search box, as a user would).
	err = chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), fmt.Sprintf("lease:%d", batch.Lease)), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.ID("lease")))
	url, _ := chromedp.Run(ctx, chromedp.Location())
	h1, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main h1")))
	if err != nil || !strings.HasSuffix(url, fmt.Sprintf("/lease/%d", batch.Lease)) || h1 != fmt.Sprintf("Lease %d", batch.Lease) {
		t.Errorf("search lease:%d: at %s, heading %q, err %v", batch.Lease, url, h1, err)
	}
	// A bare id names the order, the lease and the block of that number: the lease is
	// among the matches.
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/search?q=%d", base, batch.Lease))); err != nil {
		t.Errorf("search %d: %v", batch.Lease, err)
	}
	links, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("a.match-lease")))
	if err != nil || len(links) != 1 || links[0].AttributeValue("href") != fmt.Sprintf("/lease/%d", batch.Lease) {
		t.Errorf("search %d: %d lease links, err %v", batch.Lease, len(links), err)
	}

	// The provider page says plainly that the inventory is declared.
	err = chromedp.Do(ctx, chromedp.Navigate(base+"/provider/"+l.Provider.String()))
	inv, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("inventory-source")))
	if err != nil || !strings.Contains(inv, "declared") {
		t.Errorf("provider %s: inventory said %q, err %v; want declared", l.Provider, inv, err)
	}

	mu.Lock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
	problems = nil
	mu.Unlock()

	// A hostile search gets the 400 page, which shows the term as text and runs
	// nothing (a dialog or a script error would be among the problems below; the
	// browser's own note of the 400 is not one).
	err = chromedp.Do(ctx, chromedp.Navigate(base+"/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
	errText, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error")))
	if err != nil || !strings.Contains(errText, "<script>") {
		t.Errorf("hostile search: error %q (want the term shown as text), err %v", errText, err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		if !strings.Contains(p, "status of 400") {
			t.Errorf("browser, on the hostile search: %s", p)
		}
	}
	t.Logf("screenshots in %s", artifacts)
}

var metricLine = regexp.MustCompile(`(?m)^(kiln_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$`)

// metricsOf scrapes url into name{labels} -> value.
func metricsOf(t *testing.T, url string) map[string]float64 {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := map[string]float64{}
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.ParseFloat(m[3], 64)
		out[m[1]+m[2]] = v
	}
	return out
}

// After a demo run the node's counters match the chain's own figures: orders, leases
// and bids placed, what escrow paid, the fees; the providers' agree with the leases
// they hold.
func TestMetricsMatchChain(t *testing.T) {
	s := keptDemo(t)
	c, err := client.New(s.RPC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// NB: the network keeps running (heartbeats, settlement, a lease's start or close
	// may land between a scrape and the chain's reads), so the counters are read from
	// both until they agree, as a monitoring system converges; pay moves on and is
	// checked against bounds below.
	var m map[string]float64
	var orders []market.Order
	var leases []market.Lease
	var paid, fees uint64
	var active int
	poll.WaitFor(t, 30*time.Second, func() error {
		m = metricsOf(t, s.MetricsURL)
		var err error
		if orders, err = c.Orders(ctx, "", [20]byte{}); err != nil {
			return err
		}
		if leases, err = c.Leases(ctx, market.LeaseFilter{}); err != nil {
			return err
		}
		var refunded uint64
		started := 0
		active, paid, fees = 0, 0, 0
		closed := map[string]int{}
		for _, l := range leases {
			if l.State == market.LeaseActive {
				active++
			} else {
				closed[l.CloseReason]++
			}
			if l.StartedHeight > 0 {
				started++
			}
		}
		for _, o := range orders {
			a, err := c.Escrow(ctx, o.ID)
			if err != nil {
				return err
			}
			paid, fees, refunded = paid+a.Paid, fees+a.Fees, refunded+a.Refunded
		}
		want := map[string]float64{
			"kiln_orders_created_total":                        float64(len(orders)),
			"kiln_leases_created_total":                        float64(len(leases)),
			"kiln_leases_started_total":                        float64(started),
			"kiln_leases_active":                               float64(active),
			"kiln_orders_open":                                 0,
			"kiln_bids_open":                                   0,
			"kiln_providers_registered":                        float64(s.Providers),
			`kiln_escrow_total{denom="ukiln",kind="refunded"}`: float64(refunded),
		}
		for reason, n := range closed {
			want[fmt.Sprintf(`kiln_leases_closed_total{reason=%q}`, reason)] = float64(n)
		}
		var bad []string
		for k, v := range want {
			if m[k] != v {
				bad = append(bad, fmt.Sprintf("%s = %g, the chain says %g", k, m[k], v))
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	})
	// Pay moves on while the service runs: the metric lies between the summary's
	// figure (read before) and the chain's now (read after).
	if got := m[`kiln_escrow_total{denom="ukiln",kind="paid"}`]; got < float64(s.PaidToProviders) || got > float64(paid) {
		t.Errorf("escrow paid metric %g, want between the summary's %d and the chain's %d", got, s.PaidToProviders, paid)
	}
	if got := m[`kiln_escrow_total{denom="ukiln",kind="fees"}`]; got < float64(s.ProtocolFees) || got > float64(fees) {
		t.Errorf("protocol fees metric %g, want between %d and %d", got, s.ProtocolFees, fees)
	}
	if m["kiln_bids_created_total"] < float64(len(leases)) {
		t.Errorf("kiln_bids_created_total %g < %d leases: every lease was a bid", m["kiln_bids_created_total"], len(leases))
	}
	if m[`kiln_txs_total{code="0",msg="market.MsgCreateOrder"}`] != float64(len(orders)) {
		t.Errorf("create-order txs %g, orders %d", m[`kiln_txs_total{code="0",msg="market.MsgCreateOrder"}`], len(orders))
	}
	// Each provider's daemon counts the leases it won: together, every lease; the
	// workloads they run are the active leases; the tenant's inputs went in and its
	// outputs came out through their APIs.
	var in, out float64
	poll.WaitFor(t, 30*time.Second, func() error {
		var won, running float64
		in, out = 0, 0
		for _, u := range s.ProviderMetricsURLs {
			pm := metricsOf(t, u)
			won += pm["kiln_provider_leases_won_total"]
			running += pm[`kiln_provider_workloads{state="running"}`]
			in += pm["kiln_provider_api_received_bytes_total"]
			out += pm["kiln_provider_api_sent_bytes_total"]
		}
		leases, err := c.Leases(ctx, market.LeaseFilter{})
		if err != nil {
			return err
		}
		active := 0
		for _, l := range leases {
			if l.State == market.LeaseActive {
				active++
			}
		}
		if won != float64(len(leases)) {
			return fmt.Errorf("providers won %g leases by their metrics, the chain has %d", won, len(leases))
		}
		if running != float64(active) {
			return fmt.Errorf("providers run %g workloads by their metrics, the chain has %d active leases", running, active)
		}
		return nil
	})
	if in < 1000 || out < 1000 {
		t.Errorf("provider APIs received %g and sent %g bytes: want the demo's uploads and downloads", in, out)
	}
	// The explorer serves its own, and counts the pages it served.
	scrapeText(t, s.ExplorerURL+"/")
	if em := metricsOf(t, s.ExplorerURL+"/metrics"); em["kiln_explorer_height"] == 0 {
		t.Errorf("the explorer's metrics lack its height: %v", em)
	}

	// Every metric the Grafana dashboard plots is exported by the node, a provider
	// daemon or the explorer.
	exported := map[string]bool{}
	for _, u := range append([]string{s.MetricsURL, s.ExplorerURL + "/metrics"}, s.ProviderMetricsURLs...) {
		for _, m := range helpLine.FindAllStringSubmatch(scrapeText(t, u), -1) {
			exported[m[1]] = true
		}
	}
	dash, err := os.ReadFile("../explorer/grafana/kiln-network.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(dash, &d); err != nil || len(d.Panels) == 0 {
		t.Fatalf("dashboard: %v, %d panels", err, len(d.Panels))
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if !exported[name] && !exported[base] && !notInDemo[name] {
					t.Errorf("dashboard panel %q plots %s, which nothing exports", p.Title, name)
				}
			}
		}
	}
}

// notInDemo are metrics the dashboard plots that the demo network cannot export.
var notInDemo = map[string]bool{
	"cometbft_p2p_peers":                true, // set once a peer connects; the demo's single validator has none
	"kiln_provider_gpu_utilization_pct": true, // from NVML, for providers that detect their GPUs; the demo's are declared
}

var (
	helpLine   = regexp.MustCompile(`(?m)^# HELP ([a-z0-9_]+) `)
	metricName = regexp.MustCompile(`\b(?:kiln|cometbft)_[a-z0-9_]+`)
)

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}
