package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/infer"
	"github.com/kiln-network/kiln/node"
	xinfer "github.com/kiln-network/kiln/x/infer"
)

// On-chain inference through the CLI, as users run it: three providers serve the
// built-in model with `kiln infer serve`, one of them cheating; a request resolves with
// the two honest answers (k = 2) and the cheater is outvoted and unpaid; with the
// servers stopped, a request nobody answers is refunded after its deadline; the books
// balance throughout (the node runs with --check-invariants, and /bank/accounting is
// conserved at the end).
func TestInferCLI(t *testing.T) {
	home := node.TempHome(t)
	kiln(t, "init", "--home", home, "--chain-id", "infer-1", "--keyring-backend", "test", "--block-time", "200ms")
	p := startNode(t, home)
	c, _ := client.New(p.rpc)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second) // start-up, three servers, two requests and a 10-block deadline at 200 ms
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	kb := []string{"--home", home, "--keyring-backend", "test"}
	nd := []string{"--node", p.rpc, "--chain-id", "infer-1"}
	tx := func(args ...string) string { return kiln(t, append(append(args, kb...), nd...)...) }

	dir := t.TempDir()
	inv := filepath.Join(dir, "inventory.toml")
	os.WriteFile(inv, []byte("region = \"eu-west\"\ncpu_cores = 4\nmemory = \"8Gi\"\nstorage = \"100Gi\"\n"), 0o644)
	certPath := filepath.Join(dir, "provider.pem")
	os.WriteFile(certPath, selfSignedPEM(t), 0o644)
	tx("tx", "infer", "register-model", "dev", infer.TinyID)
	names := []string{"alice", "bob", "mallory"}
	for _, n := range names {
		kiln(t, append([]string{"keys", "add", n}, kb...)...)
		addr := strings.TrimSpace(kiln(t, append([]string{"keys", "show", n, "-a"}, kb...)...))
		tx("tx", "bank", "send", "dev", addr, "200000000ukiln")
		tx("tx", "registry", "register-provider", n, "--inventory", inv, "--endpoint", "https://127.0.0.1:8443", "--cert", certPath, "--stake", "100000000ukiln")
		tx("tx", "infer", "serve", n, infer.TinyID)
	}
	var servers []*exec.Cmd
	for _, n := range names {
		args := append(append([]string{"infer", "serve", n}, kb...), "--node", p.rpc)
		if n == "mallory" {
			args = append(args, "--corrupt")
		}
		s := exec.Command(kilnBin, args...)
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	stopServers := func() {
		for _, s := range servers {
			s.Process.Signal(os.Interrupt)
			s.Wait()
		}
		servers = nil
	}
	defer stopServers()

	want, _ := infer.NewTiny().Infer([]byte("hello kiln"))
	tx("tx", "infer", "request", "dev", "--model", infer.TinyID, "--input", "hello kiln", "--max-fee", "1000ukiln")
	r := waitRequest(ctx, t, p.rpc, 1, xinfer.StateResolved)
	if string(r.Output) != string(want) || r.Via != "k_agree" {
		t.Fatalf("request 1 = %+v, want the built-in model's output %s agreed by k", r, want)
	}
	outvoted := 0
	for _, a := range r.Answers {
		if a.Outcome == "outvoted" {
			outvoted++
			if a.Paid != 0 {
				t.Errorf("outvoted answer paid %d", a.Paid)
			}
		}
	}
	if r.Answers[0].Outcome == "" || (len(r.Answers) == 3 && outvoted != 1) {
		t.Errorf("answers %+v: want 2 agreed and, if the cheater answered in time, 1 outvoted", r.Answers)
	}
	if text := kiln(t, "query", "infer", "request", "1", "--node", p.rpc); !strings.Contains(text, "result (k_agree") {
		t.Errorf("query infer request 1:\n%s", text)
	}

	stopServers()
	tx("tx", "infer", "request", "dev", "--model", infer.TinyID, "--input", "anyone?", "--max-fee", "777ukiln")
	r = waitRequest(ctx, t, p.rpc, 2, xinfer.StateExpired)
	if r.Refunded != 777 {
		t.Fatalf("request 2 = %+v, want expired with 777 refunded", r)
	}
	var acc struct {
		Conserved bool     `json:"conserved"`
		Problems  []string `json:"problems"`
	}
	json.Unmarshal([]byte(kiln(t, "query", "bank", "accounting", "--node", p.rpc, "-o", "json")), &acc)
	if !acc.Conserved {
		t.Fatalf("accounting not conserved: %v", acc.Problems)
	}
	p.term(t)
}

// waitRequest polls `kiln query infer request ID -o json` until the request is in
// state want.
func waitRequest(ctx context.Context, t *testing.T, rpc string, id int, want string) xinfer.Request {
	t.Helper()
	var r xinfer.Request
	for ctx.Err() == nil {
		code, out, _ := run(t, "query", "infer", "request", strconv.Itoa(id), "--node", rpc, "-o", "json")
		if code == 0 && json.Unmarshal([]byte(out), &r) == nil && r.State == want {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("request %d never became %s (last %+v)", id, want, r)
	return r
}
