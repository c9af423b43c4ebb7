package daemon_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor/hostdir"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// batchPlan is a CPU-only batch job running script with sh.
func batchPlan(script string) tenant.Plan {
	g := market.Group{Name: "job", Count: 1, CPUMilli: 500, MemoryBytes: 128 * registry.Mi, StorageBytes: 64 * registry.Mi}
	return tenant.Plan{Name: "job", Kind: market.KindBatch, Groups: []market.Group{g}, MaxPrice: 5000,
		Deposit: types.NewCoin(types.NativeDenom, 5000*600), Source: "kiln",
		Manifest: api.Manifest{Services: []api.Service{{Name: "job", Command: []string{"sh", "-c", script}, Count: 1,
			Resources: api.ServiceResources{Unit: 1, CPUMilli: 500, MemoryBytes: 128 * registry.Mi, StorageBytes: 64 * registry.Mi}}}}}
}

// progressLog collects Progress lines.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, s)
}

func (p *progressLog) has(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.lines, func(l string) bool { return strings.Contains(l, sub) })
}

// dirNames lists dir's entries, or fails.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A batch job's outputs reach the tenant checked against the Merkle root its provider
// committed on chain, into a new directory, never over the tenant's own files, with
// what the provider skipped named; a provider that changes the bytes it serves, or
// lists other outputs than it committed, is refused and nothing is written.
func TestFetchVerifiesAgainstChain(t *testing.T) {
	n := startNet(t)
	stateDir := filepath.Join(t.TempDir(), "provider")
	d := n.startDaemon(t, stateDir)
	// 90 s: a deployment of a job of milliseconds, a daemon restart and a few fetches
	// at 200 ms blocks, with room for a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	certDir := t.TempDir()

	plan := batchPlan(`printf HELLO > "$KILN_OUT/out.txt"; printf rc > "$KILN_OUT/.profile"; ` +
		`mkdir "$KILN_OUT/tree"; ln -s out.txt "$KILN_OUT/link"; mkfifo "$KILN_OUT/pipe"`)
	deployed := filepath.Join(t.TempDir(), "deployed")
	var prog progressLog
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, plan, tenant.Options{CertDir: certDir, OutDir: deployed, Progress: prog.add})
	if err != nil {
		t.Fatal(err)
	}
	id := r.OrderID
	l, err := n.c.Lease(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OutputsVerified || r.OutputsRoot != l.OutputHash || r.OutDir != deployed {
		t.Fatalf("deploy: verified %v, root %s, dir %s; want verified against the chain's %s in %s", r.OutputsVerified, r.OutputsRoot, r.OutDir, l.OutputHash, deployed)
	}
	if got := dirNames(t, deployed); !slices.Equal(got, []string{".profile", "out.txt"}) || readFile(t, filepath.Join(deployed, "out.txt")) != "HELLO" {
		t.Fatalf("deployed outputs %v, want .profile and out.txt = HELLO", got)
	}
	if len(r.Skipped) != 3 || !prog.has(`the provider skipped 3 entries`) || !prog.has(`"pipe" (named pipe (FIFO)`) || !prog.has(`"tree" (directory`) || !prog.has(`"link" (symbolic link`) {
		t.Fatalf("deploy told the tenant of skipped %+v, progress:\n%s", r.Skipped, strings.Join(prog.lines, "\n"))
	}
	pc, err := tenant.ConnectAs(ctx, n.c, n.tenantKey, certDir, n.prov)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	t.Run("new directory, never overwrites", func(t *testing.T) {
		work := t.TempDir()
		t.Chdir(work)
		fr, err := tenant.Fetch(ctx, n.c, pc, id, tenant.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := fmt.Sprintf("lease-%d", id)
		if fr.Dir != dir || !fr.Verified || fr.Root != l.OutputHash || len(fr.Files) != 2 || fr.SkippedTotal != 3 {
			t.Fatalf("Fetch() = %+v, want 2 files verified in %s", fr, dir)
		}
		// The tenant's own files of the same names, a dotfile among them, are never
		// replaced: the fetch is refused before anything is downloaded.
		os.WriteFile(filepath.Join(dir, ".profile"), []byte("mine"), 0o644)
		os.Remove(filepath.Join(dir, "out.txt"))
		_, err = tenant.Fetch(ctx, n.c, pc, id, tenant.FetchOptions{Dir: dir})
		if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), ".profile") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("Fetch() into a directory holding .profile = %v, want refused naming .profile and --force", err)
		}
		if got := readFile(t, filepath.Join(dir, ".profile")); got != "mine" || slices.Contains(dirNames(t, dir), "out.txt") {
			t.Fatalf("after a refused fetch: .profile = %q, entries %v; want the tenant's file untouched and nothing written", got, dirNames(t, dir))
		}
		if _, err := tenant.Fetch(ctx, n.c, pc, id, tenant.FetchOptions{Dir: dir, Force: true}); err != nil {
			t.Fatalf("Fetch(Force) = %v", err)
		}
		if readFile(t, filepath.Join(dir, ".profile")) != "rc" || readFile(t, filepath.Join(dir, "out.txt")) != "HELLO" {
			t.Fatal("Fetch(Force) did not replace the files with the verified outputs")
		}
		if got := dirNames(t, work); !slices.Equal(got, []string{dir}) {
			t.Fatalf("work dir holds %v, want only %s (no staging left behind)", got, dir)
		}
	})

	t.Run("provider serves other bytes", func(t *testing.T) {
		// The provider replaces out.txt in its vault after committing the root: its
		// listing still has the committed hash, the bytes and their header do not.
		v, err := vault.Open(vault.Config{Dir: filepath.Join(stateDir, "vault")})
		if err != nil {
			t.Fatal(err)
		}
		vl, err := v.Find(id)
		if err != nil {
			t.Fatal(err)
		}
		evil := t.TempDir()
		os.WriteFile(filepath.Join(evil, "out.txt"), []byte("EVIL!"), 0o644)
		if _, err := vl.Seal(hostdir.FS(evil), 0); err != nil {
			t.Fatal(err)
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "out")
		_, err = tenant.Fetch(ctx, n.c, pc, id, tenant.FetchOptions{Dir: dir})
		if !errors.Is(err, tenant.ErrOutputsMismatch) || !strings.Contains(err.Error(), "out.txt") {
			t.Fatalf("Fetch() of changed bytes = %v, want ErrOutputsMismatch naming out.txt", err)
		}
		if got := dirNames(t, parent); len(got) != 0 {
			t.Fatalf("after a refused fetch %s holds %v, want nothing", parent, got)
		}
	})

	t.Run("provider lists other outputs", func(t *testing.T) {
		// A provider that lists the changed file with its true hash (a restarted daemon
		// reading an edited lease state) is refused before any download: the listing's
		// root is not the one on chain.
		d.stop(t)
		sf := filepath.Join(stateDir, "leases", fmt.Sprintf("%d.json", id))
		b, err := os.ReadFile(sf)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte("EVIL!"))
		for _, o := range st["outputs"].([]any) {
			if f := o.(map[string]any); f["name"] == "out.txt" {
				f["size"], f["sha256"] = 5, hex.EncodeToString(sum[:])
			}
		}
		b, _ = json.Marshal(st)
		if err := os.WriteFile(sf, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n.startDaemon(t, stateDir)
		pc2, err := tenant.ConnectAs(ctx, n.c, n.tenantKey, certDir, n.prov) // NB: the restarted daemon has a new port
		if err != nil {
			t.Fatal(err)
		}
		defer pc2.Close()
		parent := t.TempDir()
		_, err = tenant.Fetch(ctx, n.c, pc2, id, tenant.FetchOptions{Dir: filepath.Join(parent, "out")})
		if !errors.Is(err, tenant.ErrOutputsMismatch) || !strings.Contains(err.Error(), "lists 2 outputs whose Merkle root is") {
			t.Fatalf("Fetch() of a listing with another root = %v, want ErrOutputsMismatch on the root", err)
		}
		if got := dirNames(t, parent); len(got) != 0 {
			t.Fatalf("after a refused fetch %s holds %v, want nothing", parent, got)
		}
	})
}

// Outputs the provider erased after its output retention are reported expired, not
// fetched as nothing; a lease still running has no committed root, so its outputs are
// unverified; a lease closed before completing committed nothing to fetch.
func TestFetchExpiredAndUnverified(t *testing.T) {
	n := startNet(t)
	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	cfg.OutputRetention = daemon.Duration(time.Second)
	n.startDaemonWith(t, cfg)
	// 60 s: two deployments, a second of retention, at 200 ms blocks, on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	certDir := t.TempDir()

	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, batchPlan(`printf HELLO > "$KILN_OUT/out.txt"`), tenant.Options{CertDir: certDir})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tenant.ConnectAs(ctx, n.c, n.tenantKey, certDir, n.prov)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Until the retention is over and the provider erased the outputs.
	poll.WaitFor(t, timeLeft(ctx), func() error {
		st, err := pc.Status(ctx, r.OrderID)
		if err == nil && st.State == api.StateClosed && len(st.Outputs) == 0 {
			return nil
		}
		return fmt.Errorf("outputs of lease %d not erased: %+v, %v", r.OrderID, st, err)
	})
	parent := t.TempDir()
	_, err = tenant.Fetch(ctx, n.c, pc, r.OrderID, tenant.FetchOptions{Dir: filepath.Join(parent, "out")})
	if !errors.Is(err, tenant.ErrOutputsExpired) || !strings.Contains(err.Error(), "no longer holds them") {
		t.Fatalf("Fetch() after retention = %v, want ErrOutputsExpired", err)
	}
	if got := dirNames(t, parent); len(got) != 0 {
		t.Fatalf("after an expired fetch %s holds %v, want nothing", parent, got)
	}

	// A job still running: no root on chain yet.
	r, err = tenant.Deploy(ctx, n.c, n.tenantKey, batchPlan(`sleep 30`), tenant.Options{CertDir: certDir, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tenant.Fetch(ctx, n.c, pc, r.OrderID, tenant.FetchOptions{Dir: filepath.Join(parent, "out")})
	if !errors.Is(err, tenant.ErrOutputsUnverified) || !strings.Contains(err.Error(), "--unverified") {
		t.Fatalf("Fetch() of a running lease = %v, want ErrOutputsUnverified", err)
	}
	if _, err := tenant.Fetch(ctx, n.c, pc, r.OrderID, tenant.FetchOptions{Dir: filepath.Join(parent, "out"), Unverified: true}); err == nil || !strings.Contains(err.Error(), "no outputs yet") {
		t.Fatalf("Fetch(Unverified) of a running lease = %v, want no outputs yet", err)
	}
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &market.MsgCloseLease{Sender: n.tenant, LeaseID: r.OrderID}); err != nil {
		t.Fatal(err)
	}
	_, err = tenant.Fetch(ctx, n.c, pc, r.OrderID, tenant.FetchOptions{Dir: filepath.Join(parent, "out")})
	if err == nil || !strings.Contains(err.Error(), "without committing any outputs") {
		t.Fatalf("Fetch() of a lease closed by its tenant = %v, want nothing to fetch", err)
	}
	if got := dirNames(t, parent); len(got) != 0 {
		t.Fatalf("%s holds %v, want nothing", parent, got)
	}
}
