package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/cert"
)

// Through the CLI against a real node: a certificate naming another account is
// refused before anything is sent, and by the chain if sent anyway; a CPU-only lease
// prints as text without a phantom GPU; why-no-bids on the leased order names the
// lease instead of saying its winner has not bid.
func TestCLIMarketOutputAndCert(t *testing.T) {
	home := node.TempHome(t)
	kiln(t, "init", "--home", home, "--chain-id", "mkt-1", "--keyring-backend", "test", "--block-time", "200ms")
	p := startNode(t, home)
	rpc := p.rpc
	c, _ := client.New(rpc)
	// 60 s: start-up, a dozen transactions and the auction, at 200 ms blocks.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	kb := []string{"--home", home, "--keyring-backend", "test"}
	nd := []string{"--node", rpc, "--chain-id", "mkt-1"}
	tx := func(args ...string) string { return kiln(t, append(append(args, kb...), nd...)...) }
	addr := func(name string) string {
		return strings.TrimSpace(kiln(t, append([]string{"keys", "show", name, "-a"}, kb...)...))
	}
	kiln(t, append([]string{"keys", "add", "prov"}, kb...)...)
	dev, prov := addr("dev"), addr("prov")
	tx("tx", "bank", "send", "dev", prov, "300000000ukiln")

	// Certificate naming prov, published by dev: the CLI refuses it (exit 1, field and
	// value named) and sends nothing; sent anyway, the chain refuses it with code 12.
	dir := t.TempDir()
	certPath := filepath.Join(dir, "prov.pem")
	os.WriteFile(certPath, clientCertPEM(t, prov), 0o644)
	seq := func() uint64 {
		acc, _, err := c.Account(ctx, mustAddr(t, dev))
		if err != nil {
			t.Fatal(err)
		}
		return acc.Sequence
	}
	before := seq()
	code, stdout, stderr := run(t, append(append([]string{"tx", "cert", "publish", "dev", certPath}, kb...), nd...)...)
	if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, `cert_pem.subject.common_name: must be the publishing account's address `+dev+` (got "`+prov+`")`) {
		t.Fatalf("tx cert publish of a certificate naming another account: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if after := seq(); after != before {
		t.Fatalf("the refused publish sent a transaction (sequence %d -> %d)", before, after)
	}
	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	devKey, _, _ := kr.PrivKey("dev")
	_, err := c.Send(ctx, devKey, client.SignOptions{}, &cert.MsgPublishCert{Owner: mustAddr(t, dev), CertPEM: clientCertPEM(t, prov)})
	var te *client.TxError
	if !errors.As(err, &te) || te.Code != types.CodeInvalidMsg || !strings.Contains(te.Log, "cert_pem.subject.common_name") {
		t.Fatalf("the chain's answer to a certificate naming another account = %v, want code 12 naming cert_pem.subject.common_name", err)
	}
	os.WriteFile(certPath, clientCertPEM(t, dev), 0o644)
	tx("tx", "cert", "publish", "dev", certPath)

	// A provider, a CPU-only order and a bid: a lease.
	inv := filepath.Join(dir, "inventory.toml")
	os.WriteFile(inv, []byte("region = \"eu-west\"\ncpu_cores = 16\nmemory = \"64Gi\"\nstorage = \"1Ti\"\n"), 0o644)
	provCert := filepath.Join(dir, "provider.pem")
	os.WriteFile(provCert, selfSignedPEM(t), 0o644)
	tx("tx", "registry", "register-provider", "prov", "--inventory", inv, "--endpoint", "https://127.0.0.1:8443", "--cert", provCert, "--stake", "100000000ukiln")
	spec := filepath.Join(dir, "order.yaml")
	os.WriteFile(spec, []byte("kind: batch\nmax_price: 1000ukiln\ndeposit: 100000ukiln\ngroups:\n  - {name: main, cpu: \"2\", memory: 4Gi, storage: 10Gi}\n"), 0o644)
	tx("tx", "market", "create-order", "dev", spec)
	tx("tx", "market", "bid", "prov", "1", "800")
	for {
		if code, _, _ := run(t, "query", "market", "lease", "1", "--node", rpc); code == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no lease for order 1")
		}
		time.Sleep(100 * time.Millisecond)
	}

	text := kiln(t, "query", "market", "lease", "1", "--node", rpc)
	for _, want := range []string{"lease 1 (attempt 1): active\n", "  tenant     " + dev + "\n", "  provider   " + prov + "\n",
		"  price      800ukiln per block\n", "  resources  cpu 2, memory 4Gi, storage 10Gi\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("query market lease 1 =\n%s\nwant a line %q", text, want)
		}
	}
	if strings.Contains(text, "{") || strings.Contains(text, "gpus") {
		t.Errorf("query market lease 1 in text mode =\n%s\nwant no JSON and no GPU line for a CPU-only lease", text)
	}
	js := kilnOut(t, "query", "market", "lease", "1", "--node", rpc, "-o", "json")
	var l map[string]any
	if err := json.Unmarshal([]byte(js), &l); err != nil || l["provider"] != prov {
		t.Fatalf("query market lease 1 -o json = %s (%v)", js, err)
	}
	if _, ok := l["gpus"]; ok || strings.Contains(js, `"model": ""`) {
		t.Errorf("CPU-only lease as JSON shows a phantom GPU:\n%s", js)
	}
	for _, args := range [][]string{{"lease", "list", "--all"}, {"query", "market", "leases"}} {
		if out := kilnOut(t, append(args, "--node", rpc, "-o", "json")...); strings.Contains(out, `"model": ""`) {
			t.Errorf("kiln %v -o json shows a phantom GPU:\n%s", args, out)
		}
	}

	why := kiln(t, "query", "market", "why-no-bids", "1", "--node", rpc)
	if !strings.Contains(why, "order 1 is leased to "+prov+" since height ") || !strings.Contains(why, prov+" holds the lease") || strings.Contains(why, "has not bid") {
		t.Errorf("why-no-bids on a leased order =\n%s\nwant it to name the lease holder", why)
	}
	p.term(t)
}

func mustAddr(t *testing.T, s string) types.Address {
	t.Helper()
	a, err := types.ParseAddress(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// clientCertPEM returns a self-signed P-256 client certificate whose CommonName is cn.
func clientCertPEM(t *testing.T, cn string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
