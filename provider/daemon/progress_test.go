package daemon_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/ports"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor/executortest"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/x/market"
)

// kiln deploy shows each bid as it is placed, though with a one-block bid window the
// auction closes in the block the bids land in (they are never in the chain's state
// between blocks), and says what it waits for; a service deploy ends with the ingress
// URL and a curl command line that reaches the service as it is.
func TestDeployShowsBidsAndServiceAccess(t *testing.T) {
	n := startNet(t)
	n.startDaemon(t, filepath.Join(t.TempDir(), "provider"))
	// 60 s: a service deployment at 200 ms blocks and a few requests, on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// NB: the process executor's program binds the port itself, so it is picked ahead.
	picked, err := ports.Pick("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	port := picked[0]
	plan := batchPlan("")
	plan.Kind = market.KindService
	svc := &plan.Manifest.Services[0]
	svc.Command = []string{executortest.BuildTestProg(t), "serve-http", strconv.Itoa(port)}
	svc.Expose = []api.Expose{{Port: uint32(port), Global: true, Proto: "tcp"}}
	var prog, waits progressLog
	certDir := filepath.Join(t.TempDir(), "certs dir") // NB: a space, for the curl line's quoting
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, plan, tenant.Options{CertDir: certDir, Progress: prog.add, Waiting: waits.add})
	if err != nil {
		t.Fatal(err)
	}
	defer n.c.Send(context.Background(), n.tenantKey, client.SignOptions{}, &market.MsgCloseLease{Sender: n.tenant, LeaseID: r.OrderID})
	if !prog.has("bid from " + n.prov.String() + ": ") {
		t.Errorf("deploy showed no bid of %s; progress:\n%s", n.prov, strings.Join(prog.lines, "\n"))
	}
	if !waits.has("waiting for bids") {
		t.Errorf("deploy never said it was waiting for bids; waits: %q", waits.lines)
	}
	if want := "/v1/leases/" + strconv.FormatUint(r.OrderID, 10) + "/ingress/"; !strings.HasPrefix(r.IngressURL, r.Endpoint) || !strings.HasSuffix(r.IngressURL, want) {
		t.Fatalf("ingress URL %q, want %s...%s", r.IngressURL, r.Endpoint, want)
	}
	if !strings.Contains(r.Curl, "--cacert '"+tenant.ProviderCertPath(certDir, n.prov)+"'") || !prog.has(r.Curl) {
		t.Fatalf("curl line %q, want the provider's certificate in %s, and shown", r.Curl, certDir)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("curl is not installed here: the curl line is not run (%v)", err)
	}
	// Until the service has bound its port.
	poll.WaitFor(t, timeLeft(ctx), func() error {
		out, err := exec.CommandContext(ctx, "sh", "-c", r.Curl+" -sS").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) == "ok" {
			return nil
		}
		return fmt.Errorf("%s: %v\n%s", r.Curl, err, out)
	})
}
