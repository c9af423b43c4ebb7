package daemon_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/ports"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/x/registry"
)

// The tenant API and the metrics listen on port 0: the endpoint registered on chain
// is the address the API got, and the metrics answer on the address reported. A
// port another program holds fails the start, naming the setting, before anything
// goes on chain.
func TestDaemonListensOnFreePorts(t *testing.T) {
	n := startNet(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for _, tc := range []struct {
		name, setting string
		edit          func(*daemon.Config)
	}{
		{"api", "(listen)", func(c *daemon.Config) { c.Listen = held.Addr().String() }},
		{"metrics", "(metrics_listen)", func(c *daemon.Config) { c.MetricsListen = held.Addr().String() }},
	} {
		t.Run("taken "+tc.name+" port", func(t *testing.T) {
			cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
			tc.edit(&cfg)
			d, err := daemon.New(cfg, daemon.Deps{Client: n.c, Key: n.provKey, Logger: slog.New(slog.NewTextHandler(n.logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			// 30 s: Run fails at its first listen, after a few queries.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = d.Run(ctx)
			if !ports.InUse(err) || !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), held.Addr().String()) {
				t.Fatalf("Run with %s on the held %s = %v, want an address-in-use error naming both", tc.setting, held.Addr(), err)
			}
			var prov registry.Provider
			if err := n.c.QueryJSON(ctx, client.PathProvider(n.prov), &prov); err == nil {
				t.Fatalf("the provider registered (endpoint %s) although its start failed", prov.Endpoint)
			}
		})
	}

	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	cfg.MetricsListen = "127.0.0.1:0"
	d := n.startDaemonWith(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // queries and a TLS handshake
	defer cancel()
	var prov registry.Provider
	if err := n.c.QueryJSON(ctx, client.PathProvider(n.prov), &prov); err != nil {
		t.Fatal(err)
	}
	if prov.Endpoint != d.Endpoint() || !strings.HasPrefix(prov.Endpoint, "https://127.0.0.1:") || strings.HasSuffix(prov.Endpoint, ":0") {
		t.Fatalf("endpoint on chain %q, daemon says %q: want https://127.0.0.1:<the port bound>", prov.Endpoint, d.Endpoint())
	}
	if err := n.providerClient(t, ctx).Healthz(ctx); err != nil {
		t.Fatalf("tenant API at the registered %s: %v", prov.Endpoint, err)
	}
	maddr := d.MetricsAddr()
	if !strings.HasPrefix(maddr, "127.0.0.1:") || strings.HasSuffix(maddr, ":0") {
		t.Fatalf("MetricsAddr() = %q, want 127.0.0.1:<the port bound>", maddr)
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "kiln_provider_bids_sent_total") {
		t.Fatalf("GET http://%s/metrics = %s:\n%s", maddr, resp.Status, body)
	}
}
