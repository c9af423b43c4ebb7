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
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/node"
)

// The CLI in Cosmos conventions, against a real node process: keys, a transfer with
// --output json, a refused overspend exiting non-zero with the reason, balances as
// JSON, staking, and a provider registered from an inventory file.
func TestCLI(t *testing.T) {
	home := node.TempHome(t)
	out := kiln(t, "init", "--home", home, "--chain-id", "cli-1", "--keyring-backend", "test", "--block-time", "200ms")
	if !strings.Contains(out, "dev account: kiln1") || !strings.Contains(out, "mnemonic") {
		t.Fatalf("init output lacks the dev address or mnemonic:\n%s", out)
	}
	p := startNode(t, home)
	rpc := p.rpc
	c, _ := client.New(rpc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // start-up and a dozen 200 ms blocks
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	kb := []string{"--home", home, "--keyring-backend", "test"}
	nd := []string{"--node", rpc, "--chain-id", "cli-1"}
	kiln(t, append([]string{"keys", "add", "bob"}, kb...)...)
	bob := strings.TrimSpace(kiln(t, append([]string{"keys", "show", "bob", "-a"}, kb...)...))
	if !strings.HasPrefix(bob, "kiln1") {
		t.Fatalf("keys show -a = %q", bob)
	}
	if list := kiln(t, append([]string{"keys", "list"}, kb...)...); !strings.Contains(list, "bob") || !strings.Contains(list, "dev") {
		t.Fatalf("keys list:\n%s", list)
	}

	var txr struct {
		TxHash string `json:"txhash"`
		Height int64  `json:"height"`
		Code   uint32 `json:"code"`
	}
	js := kiln(t, append(append([]string{"tx", "bank", "send", "dev", bob, "1000ukiln", "--output", "json"}, kb...), nd...)...)
	if err := json.Unmarshal([]byte(js), &txr); err != nil || txr.Code != 0 || txr.Height < 1 || len(txr.TxHash) != 64 {
		t.Fatalf("tx bank send --output json = %s (%v)", js, err)
	}
	var bals struct {
		Balances []struct{ Denom, Amount string } `json:"balances"`
	}
	js = kiln(t, "query", "bank", "balances", bob, "--node", rpc, "--output", "json")
	if err := json.Unmarshal([]byte(js), &bals); err != nil || len(bals.Balances) != 1 || bals.Balances[0].Amount != "1000" {
		t.Fatalf("query bank balances = %s", js)
	}

	// A refused tx exits non-zero and says why.
	dev := strings.TrimSpace(kiln(t, append([]string{"keys", "show", "dev", "-a"}, kb...)...))
	cmd := exec.Command(kilnBin, append(append([]string{"tx", "bank", "send", "bob", dev, "5000ukiln"}, kb...), nd...)...)
	outB, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outB), "insufficient funds") {
		t.Fatalf("overspend: err=%v output=%s", err, outB)
	}
	// Bad input is refused before anything is sent.
	cmd = exec.Command(kilnBin, append(append([]string{"tx", "bank", "send", "dev", "cosmos1xyz", "5ukiln"}, kb...), nd...)...)
	if outB, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(outB), "address") {
		t.Fatalf("bad address: err=%v output=%s", err, outB)
	}

	// Staking: delegate to the validator (its operator is the dev account).
	var vals struct {
		Validators []struct {
			Operator string `json:"operator"`
			Tokens   string `json:"tokens"`
		} `json:"validators"`
	}
	json.Unmarshal([]byte(kiln(t, "query", "staking", "validators", "--node", rpc, "-o", "json")), &vals)
	if len(vals.Validators) != 1 {
		t.Fatalf("validators = %+v", vals)
	}
	kiln(t, append(append([]string{"tx", "staking", "delegate", "dev", vals.Validators[0].Operator, "2000000ukiln"}, kb...), nd...)...)
	json.Unmarshal([]byte(kiln(t, "query", "staking", "validators", "--node", rpc, "-o", "json")), &vals)
	if vals.Validators[0].Tokens != "10002000000" {
		t.Fatalf("tokens after delegation = %s", vals.Validators[0].Tokens)
	}

	// Registry: register a provider from an inventory file.
	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.toml")
	os.WriteFile(inv, []byte("region = \"eu-west\"\ncpu_cores = 64\nmemory = \"512Gi\"\nstorage = \"4Ti\"\n[[gpus]]\nmodel = \"h100\"\nmemory = \"80Gi\"\ninterface = \"sxm\"\ncount = 8\n"), 0o644)
	certPath := filepath.Join(dir, "provider.pem")
	os.WriteFile(certPath, selfSignedPEM(t), 0o644)
	kiln(t, append(append([]string{"tx", "registry", "register-provider", "dev", "--inventory", inv, "--endpoint", "https://127.0.0.1:8443", "--cert", certPath, "--stake", "100000000ukiln"}, kb...), nd...)...)
	provs := kiln(t, "query", "registry", "providers", "--node", rpc)
	if !strings.Contains(provs, "8xh100") || !strings.Contains(provs, "declared") {
		t.Fatalf("query registry providers:\n%s", provs)
	}
	// A bad inventory is refused with the field named, and nothing changes.
	os.WriteFile(inv, []byte("region = \"eu-west\"\ncpu_cores = -4\nmemory = \"512Gi\"\nstorage = \"4Ti\"\n"), 0o644)
	cmd = exec.Command(kilnBin, append(append([]string{"tx", "registry", "update-provider", "dev", "--inventory", inv}, kb...), nd...)...)
	if outB, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(outB), "cpu_cores") {
		t.Fatalf("negative cpu_cores: err=%v output=%s", err, outB)
	}
	p.term(t)
}

func selfSignedPEM(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
