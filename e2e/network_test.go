package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/node"
)

// The network as separate processes, driven only through the CLI: a validator, a
// provider daemon (`kiln provider run`), and a tenant using `kiln deploy`, `kiln lease`
// and `kiln fetch`; then an order no provider can serve, explained.
func TestNetworkCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a validator and a provider daemon as processes; skipped with -short")
	}
	home := node.TempHome(t)
	kiln(t, "init", "--home", home, "--chain-id", "net-1", "--keyring-backend", "test", "--block-time", "200ms")
	kb := []string{"--home", home, "--keyring-backend", "test"}
	nodeP := startNode(t, home)
	rpc := nodeP.rpc
	nd := []string{"--node", rpc}
	c, _ := client.New(rpc)
	// 60 s covers start-up and the few dozen 200 ms blocks this test needs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prov", "tenant"} {
		kiln(t, append([]string{"keys", "add", name}, kb...)...)
		addr := strings.TrimSpace(kiln(t, append([]string{"keys", "show", name, "-a"}, kb...)...))
		kiln(t, append(append([]string{"tx", "bank", "send", "dev", addr, "1000000000ukiln"}, kb...), nd...)...)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "provider.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen = "127.0.0.1:0"
state_dir = %q
[executor]
kind = "process"
[executor.process]
allow_unisolated = true
[inventory]
region = "eu-west"
cpu_cores = 16
memory = "64Gi"
storage = "1Ti"
[[inventory.gpus]]
model = "h100"
memory = "80Gi"
interface = "sxm"
count = 2
[pricing]
block_time = "200ms"
cpu_core_hour = 10000
[pricing.gpu_hour]
h100 = 2000000
`, filepath.Join(dir, "provider-state"))), 0o644)
	provLog, _ := os.Create(filepath.Join(dir, "provider.log"))
	prov := exec.Command(kilnBin, append(append([]string{"provider", "run", "--key", "prov", "--config", cfg}, kb...), nd...)...)
	prov.Stdout, prov.Stderr = provLog, provLog
	if err := prov.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Process.Signal(syscall.SIGTERM); prov.Wait(); provLog.Close() })
	for {
		out := kilnOut(t, "query", "registry", "providers", "--node", rpc, "-o", "json")
		if strings.Contains(out, "h100") {
			break
		}
		if ctx.Err() != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "provider.log"))
			t.Fatalf("provider did not register:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A batch job with an input, deployed with the CLI; outputs come back checked.
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("hello kiln\n"), 0o644)
	spec := filepath.Join(dir, "job.yaml")
	os.WriteFile(spec, []byte(`kind: batch
max_price: 5000ukiln
groups:
  - name: upper
    cpu: "1"
    memory: 256Mi
    storage: 1Gi
    gpu: {units: 1, models: [{model: h100}]}
services:
  - name: upper
    command: [sh, -c, 'tr a-z A-Z < "$KILN_IN/in.txt" > "$KILN_OUT/out.txt" && mkdir "$KILN_OUT/tree" && echo converted']
inputs: [in.txt]
`), 0o644)
	out := filepath.Join(dir, "out")
	js := kilnOut(t, append(append([]string{"deploy", spec, "--from", "tenant", "--out", out, "-o", "json"}, kb...), nd...)...)
	var res struct {
		OrderID     string `json:"order_id"`
		State       string `json:"state"`
		LeaseBlocks int64  `json:"order_to_lease_blocks"`
		GPUs        string `json:"gpus"`
	}
	if err := json.Unmarshal([]byte(js), &res); err != nil || res.State != "completed" || !strings.Contains(res.GPUs, "h100") {
		t.Fatalf("kiln deploy -o json = %s (%v)", js, err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "out.txt")); string(b) != "HELLO KILN\n" {
		t.Fatalf("output = %q", b)
	}
	if l := kilnOut(t, append(append([]string{"lease", "list", "--from", "tenant", "-o", "json"}, kb...), nd...)...); !strings.Contains(l, `"id": "`+res.OrderID+`"`) {
		t.Fatalf("lease list lacks lease %s:\n%s", res.OrderID, l)
	}
	st := kilnOut(t, append(append([]string{"lease", "status", res.OrderID, "--from", "tenant"}, kb...), nd...)...)
	if !strings.Contains(st, "output out.txt") || !strings.Contains(st, `skipped "tree": directory`) || !strings.Contains(st, "outputs root on chain: ") {
		t.Fatalf("lease status:\n%s", st)
	}
	// Asked by an account that does not own the lease, the provider refuses: lease
	// status prints the chain's part and the provider's refusal as its one error
	// line, and exits 1.
	code, stdout, stderr := run(t, append(append([]string{"lease", "status", res.OrderID, "--from", "prov"}, kb...), nd...)...)
	if code != 1 || !strings.Contains(stdout, "on chain") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "not_lease_owner") {
		t.Fatalf("lease status by another account: exit %d, stdout %q, stderr %q; want exit 1 with the provider's not_lease_owner", code, stdout, stderr)
	}
	// Logs, and logs -f, which ends by itself once the job has ended (20 s bounds a hang).
	for _, follow := range []string{"--follow=false", "-f"} {
		lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
		cmd := exec.CommandContext(lctx, kilnBin, append(append([]string{"lease", "logs", res.OrderID, follow, "--from", "tenant"}, kb...), nd...)...)
		if outB, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(outB), "converted") {
			lcancel()
			t.Fatalf("kiln lease logs %s: %v\n%s", follow, err, outB)
		}
		lcancel()
	}
	out2 := filepath.Join(dir, "fetched")
	kiln(t, append(append([]string{"fetch", res.OrderID, "--out", out2, "--from", "tenant"}, kb...), nd...)...)
	if b, _ := os.ReadFile(filepath.Join(out2, "out.txt")); string(b) != "HELLO KILN\n" {
		t.Fatalf("fetched output = %q", b)
	}
	// Without --out, fetch makes a new directory lease-ID; a second fetch there replaces
	// none of the tenant's files (exit 1, naming them) unless --force.
	cwd := filepath.Join(dir, "cwd")
	os.Mkdir(cwd, 0o755)
	fetch := func(extra ...string) (string, int) {
		cmd := exec.Command(kilnBin, append(append(append([]string{"fetch", res.OrderID, "--from", "tenant"}, extra...), kb...), nd...)...)
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	leaseDir := filepath.Join(cwd, "lease-"+res.OrderID)
	if o, code := fetch(); code != 0 || !strings.Contains(o, "verified against the root committed on chain") || !strings.Contains(o, `"tree" (directory`) {
		t.Fatalf("kiln fetch (exit %d):\n%s", code, o)
	}
	if b, _ := os.ReadFile(filepath.Join(leaseDir, "out.txt")); string(b) != "HELLO KILN\n" {
		t.Fatalf("fetched into lease-%s: out.txt = %q", res.OrderID, b)
	}
	os.WriteFile(filepath.Join(leaseDir, "out.txt"), []byte("mine"), 0o644)
	if o, code := fetch(); code != 1 || !strings.Contains(o, "already holds out.txt") {
		t.Fatalf("kiln fetch over an existing file (exit %d):\n%s", code, o)
	}
	if b, _ := os.ReadFile(filepath.Join(leaseDir, "out.txt")); string(b) != "mine" {
		t.Fatalf("a refused fetch changed the tenant's out.txt to %q", b)
	}
	if o, code := fetch("--force"); code != 0 {
		t.Fatalf("kiln fetch --force (exit %d):\n%s", code, o)
	}
	if b, _ := os.ReadFile(filepath.Join(leaseDir, "out.txt")); string(b) != "HELLO KILN\n" {
		t.Fatalf("fetch --force left out.txt = %q", b)
	}
	// A job that fails: lease status says why, as the provider reported it.
	failing := filepath.Join(dir, "fail.yaml")
	// NB: CPU only: the provider keeps a finished lease's GPUs through its output
	// retention, and the manual deploy below needs the other H100.
	fspec := strings.Replace(string(mustRead(t, spec)), `command: [sh, -c, 'tr`, `command: [sh, -c, 'echo no luck >&2; exit 3; tr`, 1)
	os.WriteFile(failing, []byte(strings.Replace(fspec, "    gpu: {units: 1, models: [{model: h100}]}\n", "", 1)), 0o644)
	fo, ferr := exec.Command(kilnBin, append(append([]string{"deploy", failing, "--from", "tenant"}, kb...), nd...)...).CombinedOutput()
	m := regexp.MustCompile(`order (\d+) placed`).FindSubmatch(fo)
	if ferr == nil || m == nil {
		t.Fatalf("deploy of a failing job: %v\n%s", ferr, fo)
	}
	if st := kilnOut(t, append(append([]string{"lease", "status", string(m[1]), "--from", "tenant"}, kb...), nd...)...); !strings.Contains(st, "provider error: task") || !strings.Contains(st, "(exit 3)") {
		t.Fatalf("lease status of a failed job shows no provider error:\n%s", st)
	}

	// The provider reports completion: the lease closes on chain with its reason.
	for {
		l := kilnOut(t, "query", "market", "lease", res.OrderID, "--node", rpc, "-o", "json")
		if strings.Contains(l, `"close_reason": "completed"`) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("lease never closed as completed:\n%s", l)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A manual order: deploy waits while the tenant picks the provider's bid itself.
	manual := exec.Command(kilnBin, append(append([]string{"deploy", spec, "--from", "tenant", "--manual", "--out", filepath.Join(dir, "out-manual"), "-o", "json"}, kb...), nd...)...)
	var manualOut strings.Builder
	manual.Stdout = &manualOut
	var manualErr strings.Builder
	manual.Stderr = &manualErr
	if err := manual.Start(); err != nil {
		t.Fatal(err)
	}
	provAddr := strings.TrimSpace(kiln(t, append([]string{"keys", "show", "prov", "-a"}, kb...)...))
	var picked bool
	for !picked && ctx.Err() == nil {
		var orders struct {
			Orders []struct {
				ID     string `json:"id"`
				Manual bool   `json:"manual"`
				State  string `json:"state"`
			} `json:"orders"`
		}
		json.Unmarshal([]byte(kilnOut(t, "query", "market", "orders", "--node", rpc, "-o", "json")), &orders)
		for _, o := range orders.Orders {
			if !o.Manual || o.State != "open" {
				continue
			}
			bids := kilnOut(t, "query", "market", "bids", "--order", o.ID, "--node", rpc, "-o", "json")
			if strings.Contains(bids, provAddr) {
				kiln(t, append(append([]string{"tx", "market", "create-lease", "tenant", o.ID, provAddr}, kb...), nd...)...)
				picked = true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := manual.Wait(); err != nil || !picked || !strings.Contains(manualOut.String(), `"state": "completed"`) {
		t.Fatalf("manual deploy: picked=%v err=%v\n%s\n%s", picked, err, manualOut.String(), manualErr.String())
	}

	// An order nobody can serve: deploy says which constraint fails, and refunds.
	bad := filepath.Join(dir, "b200.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(mustRead(t, spec)), "model: h100", "model: b200", 1)), 0o644)
	cmd := exec.Command(kilnBin, append(append([]string{"deploy", bad, "--from", "tenant", "--lease-timeout", "3s"}, kb...), nd...)...)
	outB, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outB), "gpu_model") || !strings.Contains(string(outB), "refunded") {
		t.Fatalf("deploy of an unservable order: err=%v\n%s", err, outB)
	}
	nodeP.term(t)
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
