package daemon_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/verify"
)

// unitsScript writes one render tile unit (bytes that are not a real tile: nobody
// re-renders it here), its units.json and a job.json a verifier could read.
const unitsScript = `sleep 1 && cd "$KILN_OUT" && printf TILE > f0001-r00-c00.png && ` +
	`printf '{"f0001-r00-c00":{"file":"f0001-r00-c00.png","sha256":"%s"}}' $(sha256sum f0001-r00-c00.png | cut -d" " -f1) > units.json && ` +
	`printf '{"kind":"render","params":{"renderer":"go","width":8,"height":8,"frame_start":1,"frame_end":1,"tiles":1,"samples":1,"seed":1}}' > job.json`

// A provider daemon stopped after its job completed locally but before it told the
// chain (neither the completion nor the work commitment sent) commits the work when it
// starts again: the commitment is kept in its state until the chain shows it.
func TestCommitSurvivesRestart(t *testing.T) {
	n := startNet(t)
	stateDir := filepath.Join(t.TempDir(), "provider")
	var first atomic.Pointer[runningDaemon]
	// NB: the daemon is stopped as its job's outputs are sealed: it records the
	// completion, but its context is over and it sends nothing.
	d := n.startDaemonDeps(t, testConfig(stateDir), daemon.Deps{BeforeSeal: func(_ uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error) {
		if r := first.Load(); r != nil {
			r.cancel()
		}
		return outs, nil
	}})
	first.Store(d)
	// 60 s: a deployment, a daemon restart and a few blocks, at 200 ms blocks, on a
	// loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, batchPlan(unitsScript), tenant.Options{CertDir: t.TempDir(), NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	id := r.OrderID
	select {
	case <-d.done:
		d.done <- nil // for stop
	case <-ctx.Done():
		t.Fatal("the daemon did not stop when its job completed")
	}
	d.stop(t)
	if l, err := n.c.Lease(ctx, id); err != nil || l.State != market.LeaseActive {
		t.Fatalf("lease %d after the stop = %+v, %v; want active (its completion not sent)", id, l, err)
	}
	if cs, err := n.c.Commitments(ctx, client.CommitmentFilter{Lease: id}); err != nil || len(cs) != 0 {
		t.Fatalf("commitments of lease %d after the stop = %+v, %v; want none yet", id, cs, err)
	}

	// NB: two blocks, so that the stopped daemon's last txs have left the mempool and
	// the restarted one registers its new endpoint at the sequence the chain expects.
	st, err := n.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.c.WaitHeight(ctx, st.Height+2); err != nil {
		t.Fatal(err)
	}
	n.startDaemon(t, stateDir)
	poll.WaitFor(t, timeLeft(ctx), func() error {
		cs, err := n.c.Commitments(ctx, client.CommitmentFilter{Lease: id})
		if err != nil || len(cs) != 1 {
			return fmt.Errorf("commitments of lease %d: %+v, %v", id, cs, err)
		}
		if cs[0].Kind != "render" || cs[0].Units != 1 || cs[0].Provider != n.prov {
			t.Fatalf("commitment = %+v, want the provider's 1 render unit", cs[0])
		}
		return nil
	})
	l := n.waitLease(t, ctx, id, "completed", closed)
	if l.CloseReason != market.ReasonCompleted {
		t.Fatalf("lease %d closed %s, want completed", id, l.CloseReason)
	}
	if b, _ := hex.DecodeString(l.OutputHash); len(b) != 32 {
		t.Fatalf("lease %d output hash %q", id, l.OutputHash)
	}
}

// A verifiable job's units.json reaches the tenant checked against the work commitment
// its provider made for verifiers; a provider that committed other units for
// verification than the units.json it serves (so that verifiers check work the tenant
// never gets) is refused before anything is downloaded.
func TestFetchChecksUnitsAgainstCommitment(t *testing.T) {
	n := startNet(t)
	n.startDaemon(t, filepath.Join(t.TempDir(), "provider"))
	// 60 s: two deployments of a job of a second and a few fetches, at 200 ms blocks.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	certDir := t.TempDir()
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, batchPlan(unitsScript), tenant.Options{CertDir: certDir, OutDir: filepath.Join(t.TempDir(), "out")})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := tenant.ConnectAs(ctx, n.c, n.tenantKey, certDir, n.prov)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	fr, err := tenant.Fetch(ctx, n.c, pc, r.OrderID, tenant.FetchOptions{Dir: filepath.Join(t.TempDir(), "again")})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := n.c.Commitments(ctx, client.CommitmentFilter{Lease: r.OrderID})
	if err != nil || len(cs) != 1 {
		t.Fatalf("commitments of lease %d: %+v, %v", r.OrderID, cs, err)
	}
	if u := fr.Units; u == nil || u.Count != 1 || u.Root != cs[0].Root || u.Commitment != cs[0].ID || u.State == "" {
		t.Fatalf("Fetch().Units = %+v, want 1 unit with commitment %d's root %s", fr.Units, cs[0].ID, cs[0].Root)
	}

	// The provider commits another root for verification while the job runs; its
	// daemon's own commitment is then refused as a duplicate.
	r, err = tenant.Deploy(ctx, n.c, n.tenantKey, batchPlan(unitsScript), tenant.Options{CertDir: certDir, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("other units"))
	poll.WaitFor(t, timeLeft(ctx), func() error {
		// NB: retried: the daemon sends with the same key, and a tx of its may hold the
		// sequence this one read.
		_, err := n.c.Send(ctx, n.provKey, client.SignOptions{}, &verify.MsgCommit{Provider: n.prov, LeaseID: r.OrderID, Kind: "render",
			Root: other[:], Units: 1, Job: []byte(`{"kind":"render","params":{}}`)})
		return err
	})
	n.waitLease(t, ctx, r.OrderID, "completed", closed)
	parent := t.TempDir()
	_, err = tenant.Fetch(ctx, n.c, pc, r.OrderID, tenant.FetchOptions{Dir: filepath.Join(parent, "out")})
	if !errors.Is(err, tenant.ErrOutputsMismatch) || !strings.Contains(err.Error(), "committed 1 units with root "+hex.EncodeToString(other[:])[:12]) {
		t.Fatalf("Fetch() of units other than committed = %v, want ErrOutputsMismatch naming the committed root", err)
	}
	if got := dirNames(t, parent); len(got) != 0 {
		t.Fatalf("after a refused fetch %s holds %v, want nothing", parent, got)
	}
}
