package lease_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/lease"
)

// memberJob is a cluster rank: it records its epoch and the epochs before it in
// its outputs (a checkpoint that must survive a restart), reads the hostfile,
// checks it runs in a namespace with no interface but lo, and fails in epoch 0.
const memberJob = `set -e
ls "$KILN_OUT" > "$KILN_OUT/seen-$KILN_CLUSTER_EPOCH"
echo "epoch $KILN_CLUSTER_EPOCH" > "$KILN_OUT/ckpt-$KILN_CLUSTER_EPOCH"
cp "$KILN_IN/hostfile" "$KILN_OUT/hostfile-$KILN_CLUSTER_EPOCH"
cat /proc/net/dev > "$KILN_OUT/ifaces-$KILN_CLUSTER_EPOCH"
[ "$KILN_CLUSTER_EPOCH" != 0 ]`

func memberNet(t *testing.T, e *env, id uint64, epoch uint32) lease.Net {
	t.Helper()
	ns, err := e.ex.LeaseNetNS(context.Background(), lease.ExecLeaseID(id))
	if err != nil {
		t.Fatalf("LeaseNetNS() = %v", err)
	}
	return lease.Net{NetNS: ns, Env: []string{"KILN_CLUSTER_EPOCH=" + string(rune('0'+epoch))},
		Files: map[string]string{"hostfile": "10.128.0.1 slots=1\n"}, Epoch: epoch}
}

// A cluster member's failed rank is held (not sealed, not reported); Restart in
// the next epoch starts new tasks before destroying the old, so the outputs of
// epoch 0 are there for epoch 1, which completes and is reported.
func TestMemberHeldThenRestarted(t *testing.T) {
	if why := netns.Available(); why != "" {
		t.Skip("network namespaces: " + why)
	}
	held := make(chan uint64, 1)
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 1), hold: func(id uint64) bool { held <- id; return true }}
	m := e.newManager(t)
	defer m.Close()
	const id = 21
	net0 := memberNet(t, e, id, 0)
	if err := m.DeployIn(context.Background(), info(id), job(memberJob, 1), net0); err != nil {
		t.Fatalf("DeployIn() = %v", err)
	}
	select {
	case <-held:
	case <-time.After(waitTimeout):
		t.Fatal("the failed rank was never offered to Hold")
	}
	poll.WaitFor(t, waitTimeout, func() error {
		if !m.Held(id) {
			return errors.New("not held yet")
		}
		return nil
	})
	select {
	case <-e.completed:
		t.Fatal("a held lease was reported")
	default:
	}
	if err := m.Restart(context.Background(), id, net0); err == nil {
		t.Fatal("Restart() in the same epoch succeeded")
	}
	if err := m.Restart(context.Background(), id, memberNet(t, e, id, 1)); err != nil {
		t.Fatalf("Restart() = %v", err)
	}
	st := waitDone(t, m, id)
	if st.State != api.StateCompleted || len(st.Tasks) != 1 || st.Tasks[0].ID != "21-job-0-e1" {
		t.Fatalf("Status() = %+v, want completed by task 21-job-0-e1", st)
	}
	select {
	case <-e.completed:
	case <-time.After(waitTimeout):
		t.Fatal("the restarted lease's completion was not reported")
	}
	names := map[string]bool{}
	for _, f := range st.Outputs {
		names[f.Name] = true
	}
	for _, n := range []string{"ckpt-0", "ckpt-1", "seen-1", "hostfile-1", "ifaces-1"} {
		if !names[n] {
			t.Errorf("outputs %v lack %s", names, n)
		}
	}
	// Epoch 1 saw epoch 0's checkpoint; it ran with only lo and no other interface
	// (the overlay is the daemon's to add).
	for name, want := range map[string]string{"seen-1": "ckpt-0", "ifaces-1": "lo"} {
		if got := output(t, e, id, name); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to hold %q", name, got, want)
		}
	}
	if got := output(t, e, id, "ifaces-1"); strings.Contains(got, "eth") {
		t.Errorf("ifaces-1 = %q: the task ran in the host's network", got)
	}
	if err := m.Stop(context.Background(), id); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if netns.Exists(net0.NetNS) {
		t.Errorf("namespace %s left after Stop", net0.NetNS)
	}
}

// A held member whose cluster will not restart is finished: sealed and reported
// failed.
func TestMemberHeldThenFinished(t *testing.T) {
	if why := netns.Available(); why != "" {
		t.Skip("network namespaces: " + why)
	}
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 1), hold: func(uint64) bool { return true }}
	m := e.newManager(t)
	defer m.Close()
	const id = 22
	if err := m.DeployIn(context.Background(), info(id), job(memberJob, 1), memberNet(t, e, id, 0)); err != nil {
		t.Fatalf("DeployIn() = %v", err)
	}
	poll.WaitFor(t, waitTimeout, func() error {
		if !m.Held(id) {
			return errors.New("not held yet")
		}
		return nil
	})
	if err := m.Finish(id); err != nil {
		t.Fatalf("Finish() = %v", err)
	}
	select {
	case <-e.completed:
	case <-time.After(waitTimeout):
		t.Fatal("Finish did not report the lease")
	}
	st, _ := m.Status(context.Background(), id)
	if st.State != api.StateFailed || len(st.Outputs) == 0 || m.Held(id) {
		t.Fatalf("Status() = %+v, held %v; want failed with its outputs sealed, not held", st, m.Held(id))
	}
	ns := memberNet(t, e, id, 0).NetNS
	if err := m.Stop(context.Background(), id); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if netns.Exists(ns) {
		t.Errorf("namespace %s left after Stop", ns)
	}
}

func output(t *testing.T, e *env, id uint64, name string) string {
	t.Helper()
	vl, err := e.v.Lease(id)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := vl.OutputReader(name)
	if err != nil {
		t.Fatalf("output %s: %v", name, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}
