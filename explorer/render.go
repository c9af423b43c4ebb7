package explorer

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/tx"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the page templates, each the layout with one page's "content".
var pages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"kiln":    fmtKiln,
		"num":     fmtNum,
		"pct":     func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + "%" },
		"bytes":   fmtBytes,
		"ago":     func(t time.Time) string { return time.Since(t).Round(time.Second).String() + " ago" },
		"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"short":   shortAddr,
		"reason":  reasonText,
		"add":     func(a, b int) int { return a + b },
		"inc":     func(h, d int64) int64 { return h + d },
		"cpu":     func(milli uint64) float64 { return float64(milli) / 1000 },
		"jsonish": func(v any) string { b, _ := json.MarshalIndent(v, "", "  "); return string(b) },
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "chart" {
			continue
		}
		out[base] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/chart.html", n))
	}
	return out
}()

// view is what the layout renders around a page.
type view struct {
	Title   string
	Nav     string
	ChainID string
	Height  int64
	Stale   string // why the data may be old (the node did not answer the last read)
	Query   string // the search box's text
	Data    any
}

// httpError is a page's failure: its status and a message safe to show.
type httpError struct {
	Status int
	Msg    string
}

func (e *httpError) Error() string { return e.Msg }

func badRequest(format string, args ...any) *httpError {
	return &httpError{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *httpError {
	return &httpError{Status: http.StatusNotFound, Msg: fmt.Sprintf(format, args...)}
}

// wantJSON says whether the request asks for the JSON twin: ?format=json, or an Accept
// header that prefers application/json to HTML. An unknown format is an error.
func wantJSON(r *http.Request, q url.Values) (bool, *httpError) {
	switch q.Get("format") {
	case "json":
		return true, nil
	case "html":
		return false, nil
	case "":
	default:
		return false, badRequest("format %s: want json or html", quoteShort(q.Get("format")))
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json":
			return true, nil
		case "text/html", "application/xhtml+xml":
			return false, nil
		}
	}
	return false, nil
}

// params parses the query string and refuses a malformed one, an unknown parameter or
// one given twice; format is always allowed.
func params(r *http.Request, allowed ...string) (url.Values, *httpError) {
	if len(r.URL.RawQuery) > 1024 {
		return nil, badRequest("query string is %d bytes; at most 1024", len(r.URL.RawQuery))
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: %v", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "format" && !contains(allowed, k) {
			if len(allowed) == 0 {
				return nil, badRequest("unknown parameter %s: this page takes only format", quoteShort(k))
			}
			return nil, badRequest("unknown parameter %s: this page takes %s and format", quoteShort(k), strings.Join(allowed, ", "))
		}
		if len(q[k]) > 1 {
			return nil, badRequest("parameter %s given %d times", quoteShort(k), len(q[k]))
		}
		if !validText(q.Get(k)) {
			return nil, badRequest("parameter %s: not valid UTF-8 text", quoteShort(k))
		}
	}
	return q, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// validText is valid UTF-8 without control characters.
func validText(s string) bool {
	for _, r := range s {
		if r == 0xFFFD || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// securityHeaders: no script runs on these pages, none may be injected, and nothing
// frames them.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// write renders data as the page name (or its JSON twin) with status.
func (s *Server) write(w http.ResponseWriter, r *http.Request, status int, name, title string, data any, asJSON bool) {
	securityHeaders(w)
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(data)
		return
	}
	v := view{Title: title, Nav: name, Data: data}
	if snap := s.snap.Load(); snap != nil {
		v.ChainID, v.Height = snap.ChainID, snap.Height
	}
	if e := s.lastErr.Load(); e != nil {
		v.Stale = *e
	}
	if q := r.URL.Query().Get("q"); name == "search" || name == "error" {
		if len(q) <= MaxSearchLen {
			v.Query = q
		}
	}
	var buf strings.Builder
	if err := pages[name].Execute(&buf, v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(buf.String()))
}

// errorPage is the data of the error page and its JSON twin.
type errorPage struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, e *httpError) {
	asJSON := r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") && !strings.Contains(r.Header.Get("Accept"), "text/html")
	s.write(w, r, e.Status, "error", http.StatusText(e.Status), errorPage{Status: e.Status, Error: e.Msg}, asJSON)
}

// fmtKiln writes an amount of base units (ukiln) as KILN.
func fmtKiln(v any) string {
	var f float64
	switch x := v.(type) {
	case uint64:
		f = float64(x)
	case int64:
		f = float64(x)
	case int:
		f = float64(x)
	case float64:
		f = x
	}
	if f != 0 && math.Abs(f) < 1000 {
		// NB: below 0.001 KILN the coin rounds to 0; the base unit says what it is.
		return fmtNum(f) + " ukiln"
	}
	return fmtNum(f/baseUnitsPerCoin) + " KILN"
}

func fmtBytes(v uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(v)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) + " " + units[i]
}

func shortAddr(a string) string {
	if len(a) <= 16 {
		return a
	}
	return a[:10] + "…" + a[len(a)-6:]
}

// closeReasons say in words why a lease or order closed.
var closeReasons = map[string]string{
	"no_bids":               "no provider bid before the order expired",
	"not_picked":            "the tenant picked no bid in time",
	"tenant_closed":         "the tenant closed it",
	"provider_closed":       "the provider closed it",
	"completed":             "the batch job completed",
	"workload_failed":       "the workload failed to start or exited with an error",
	"start_timeout":         "the workload did not start in time (full refund)",
	"escrow_exhausted":      "the escrow ran out",
	"provider_unresponsive": "the provider stopped sending heartbeats",
	"provider_deregistered": "the provider left the network",
	"liveness_failed":       "the provider missed or failed a liveness challenge (slashed)",
}

func reasonText(r string) string {
	if r == "" {
		return ""
	}
	if t, ok := closeReasons[r]; ok {
		return r + ": " + t
	}
	return r
}

func newMsgRegistry() *tx.Registry { return app.NewRegistry() }

func chainEvent(h int64, txHash, typ string, attrs []abcitypes.EventAttribute) ChainEvent {
	e := ChainEvent{Height: h, TxHash: txHash, Type: typ, Attrs: map[string]string{}}
	for _, a := range attrs {
		e.Attrs[a.Key] = a.Value
	}
	return e
}

func sortStrings(s []string) { sort.Strings(s) }

// sortTxs orders txs newest first.
func sortTxs(t []TxRow) {
	sort.Slice(t, func(i, j int) bool {
		if t[i].Height != t[j].Height {
			return t[i].Height > t[j].Height
		}
		return t[i].Index > t[j].Index
	})
}
