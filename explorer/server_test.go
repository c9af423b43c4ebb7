package explorer

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
)

// startExplorer runs a real single-validator node and an explorer reading it, and
// returns the explorer and the node's dev address.
func startExplorer(t *testing.T) (*Server, string) {
	t.Helper()
	home := node.TempHome(t)
	res, err := node.Init(node.InitOptions{Home: home, ChainID: "explorer-test", BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	node.UseFreePorts(conf)
	n, err := node.Start(conf, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	cfg := DefaultConfig()
	cfg.Node, cfg.Listen, cfg.Refresh, cfg.Probe, cfg.Blocks = n.RPCAddr(), "127.0.0.1:0", 100*time.Millisecond, time.Second, 20
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// 30 s: node start-up and a few 100 ms blocks on a loaded 2-core machine.
	deadline := time.Now().Add(30 * time.Second)
	for s.snap.Load() == nil || s.snap.Load().Height < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the explorer read no state in 30 s (last error %v)", s.lastErr.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, res.DevAddress.String()
}

// get sends a raw request line, path as is (no client-side cleaning or escaping).
func get(t *testing.T, base, path string, header ...string) (int, http.Header, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n", path)
	for _, h := range header {
		fmt.Fprintf(conn, "%s\r\n", h)
	}
	fmt.Fprint(conn, "\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestPagesAndHostileInput(t *testing.T) {
	s, dev := startExplorer(t)
	base := s.URL()
	long := strings.Repeat("a", 3000)
	tests := []struct {
		path   string
		status int
		json   bool
		has    string
	}{
		{"/", 200, false, "Network statistics"},
		{"/?format=json", 200, true, `"gpus_declared"`},
		{"/providers", 200, false, "no provider matches"},
		{"/providers?format=json", 200, true, `"providers": []`},
		{"/orders", 200, false, "no order"},
		{"/leases?state=active", 200, false, "none"},
		{"/blocks", 200, false, "blocks per second"},
		{"/block/1", 200, false, "App hash"},
		{"/block/1?format=json", 200, true, `"app_hash"`},
		{"/address/" + dev, 200, false, "ukiln"},
		{"/verification", 200, false, "<td>liveness</td>"}, // the module table has the liveness module
		{"/search?q=1", 303, false, ""},
		{"/search?q=block:2", 303, false, ""},
		{"/search?q=" + dev, 303, false, ""},
		// hostile and malformed
		{"/search?q=%3Cscript%3Ealert(1)%3C/script%3E", 400, false, "not a height"},
		{"/search?q=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E", 400, false, ""},
		{"/search?q=" + long, 400, false, "at most 1024"},
		{"/search?q=" + long[:200], 400, false, "200 bytes long"},
		{"/search?q=", 400, false, "empty search"},
		{"/search?q=%ff%fe", 400, false, "UTF-8"},
		{"/search?q=1&q=2", 400, false, "given 2 times"},
		{"/search?q=lease:999", 404, false, "nothing on chain"},
		{"/lease/%ff%fe", 400, false, "want a positive integer"},
		{"/lease/0", 400, false, ""},
		{"/lease/-1", 400, false, ""},
		{"/lease/99999999999999999999", 400, false, ""},
		{"/lease/1e3", 400, false, ""},
		{"/lease/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 400, false, ""},
		{"/lease/999", 404, false, "no lease 999"},
		{"/lease/999?format=json", 404, true, `"error"`},
		{"/order/999", 404, false, "no order 999"},
		{"/provider/not-an-address", 400, false, "bech32"},
		{"/provider/" + dev, 404, false, "not a registered provider"},
		{"/address/%3Cscript%3E", 400, false, ""},
		{"/tx/zz", 400, false, "64 hex digits"},
		{"/tx/" + strings.Repeat("0", 64), 404, false, ""},
		{"/block/0", 400, false, ""},
		{"/block/99999999", 404, false, "no block 99999999 yet"},
		{"/orders?state=%3Cscript%3E", 400, false, "want open, active or closed"},
		{"/orders?page=-1", 400, false, "page"},
		{"/orders?x=1", 400, false, "unknown parameter"},
		{"/orders?%zz", 400, false, "malformed query string"},
		{"/providers?gpu=%3Cscript%3E", 400, false, "GPU model"},
		{"/providers?online=maybe", 400, false, "yes or no"},
		{"/?format=xml", 400, false, "want json or html"},
		{"/nope", 404, false, "no such page"},
		{"/lease/../../etc/passwd", 307, false, ""}, // the mux cleans the path and redirects
	}
	for _, tt := range tests {
		code, h, body := get(t, base, tt.path)
		if code != tt.status {
			t.Errorf("GET %.80s: %d, want %d\n%.300s", tt.path, code, tt.status, body)
		}
		if tt.json != strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("GET %.80s: Content-Type %q, want JSON %v", tt.path, h.Get("Content-Type"), tt.json)
		}
		if tt.json && !json.Valid([]byte(body)) {
			t.Errorf("GET %.80s: invalid JSON: %.200s", tt.path, body)
		}
		if !strings.Contains(body, tt.has) {
			t.Errorf("GET %.80s: body lacks %q:\n%.400s", tt.path, tt.has, body)
		}
		// NB: no page has a script of its own, so any script or handler is injected.
		for _, bad := range []string{"<script", "<img", "<svg onload"} {
			if strings.Contains(strings.ToLower(body), bad) {
				t.Errorf("GET %.80s: the page holds %q:\n%.400s", tt.path, bad, body)
			}
		}
		if code >= 200 && code < 300 && !tt.json && h.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %.80s: no Content-Security-Policy", tt.path)
		}
	}
	// The JSON twin by Accept header.
	code, h, body := get(t, base, "/blocks", "Accept: application/json")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || !json.Valid([]byte(body)) {
		t.Errorf("GET /blocks with Accept: application/json: %d %q %.100s", code, h.Get("Content-Type"), body)
	}
	// The explorer counts what it served.
	_, _, metrics := get(t, base, "/metrics")
	if !strings.Contains(metrics, `kiln_explorer_requests_total{code="400",page="search"}`) {
		t.Errorf("metrics lack the 400s served on search:\n%.1000s", metrics)
	}
}
