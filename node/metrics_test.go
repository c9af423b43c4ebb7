package node_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// Two nodes in one process each serve their own metrics (CometBFT's registered in a
// registry of their own, not Prometheus' global one), and the app's counters follow
// the chain: a transfer shows as one bank.MsgSend with code 0, a refused one with its
// code.
func TestNodeMetrics(t *testing.T) {
	start := func(chain string) (*node.Node, *client.Client, string) {
		home := node.TempHome(t)
		if _, err := node.Init(node.InitOptions{Home: home, ChainID: chain, BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest}); err != nil {
			t.Fatal(err)
		}
		conf, err := node.LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		conf.Instrumentation.Prometheus = true
		node.UseFreePorts(conf)
		n, err := node.Start(conf, node.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop() })
		c, err := client.New(n.RPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		return n, c, home
	}
	n1, c, home := start("metrics-a")
	n2, _, _ := start("metrics-b")
	if n1.MetricsURL() == "" || n1.MetricsURL() == n2.MetricsURL() {
		t.Fatalf("metrics URLs %q and %q: want two", n1.MetricsURL(), n2.MetricsURL())
	}
	// 30 s: node start-up and a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	key, _, _ := kr.PrivKey(node.DevKeyName)
	dev, _ := kr.Show(node.DevKeyName)
	send := func(amount uint64) {
		c.Send(ctx, key, client.SignOptions{}, &bank.MsgSend{From: dev.Address, To: types.Address{7}, Amount: types.Coins{types.NewCoin("ukiln", amount)}})
	}
	send(5)
	send(1 << 62) // insufficient funds: refused in CheckTx, never in a block
	m := scrape(t, n1.MetricsURL())
	for _, want := range []string{`kiln_txs_total{code="0",msg="bank.MsgSend"} 1`, `cometbft_consensus_height{chain_id="metrics-a"}`,
		"kiln_block_height ", `kiln_tx_fees_total{denom="ukiln"}`, "kiln_providers_registered 0", "go_goroutines"} {
		if !strings.Contains(m, want) {
			t.Errorf("node metrics lack %q:\n%.2000s", want, m)
		}
	}
	if m2 := scrape(t, n2.MetricsURL()); strings.Contains(m2, "bank.MsgSend") || !strings.Contains(m2, `chain_id="metrics-b"`) {
		t.Errorf("the second node's metrics count the first's txs, or lack its chain:\n%.1000s", m2)
	}
}
