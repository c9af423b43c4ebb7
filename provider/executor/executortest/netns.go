package executortest

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/provider/executor"
)

// RunNetNS runs the suite of executor.Namespacer: a lease's namespace is its
// own, its tasks run in it, and Destroy and Recover leave none behind. It
// skips where namespaces cannot be made (not root, no ip).
func RunNetNS(t *testing.T, newExec func(t *testing.T) executor.Executor, env Env) {
	if why := netns.Available(); why != "" {
		t.Skipf("lease network namespaces: %s", why)
	}
	s := &suite{newExec: newExec, env: env}
	if _, ok := newExec(t).(executor.Namespacer); !ok {
		t.Fatalf("%T does not implement executor.Namespacer", newExec(t))
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"TasksRunInTheirLeaseNamespace", s.netnsTasks},
		{"RefusesAnotherLeaseNamespace", s.netnsRefusesOther},
		{"DestroyRemovesNamespace", s.netnsDestroy},
		{"RecoverRemovesOrphanNamespace", s.netnsRecover},
		{"ReleaseLeaseNetNS", s.netnsRelease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

// leaseNS makes tk's lease namespace and sets tk.NetNS to it.
func (s *suite) leaseNS(t *testing.T, ex executor.Executor, tk *executor.Task) string {
	t.Helper()
	p, err := ex.(executor.Namespacer).LeaseNetNS(context.Background(), tk.LeaseID)
	if err != nil {
		t.Fatalf("LeaseNetNS(%s) = %v", tk.LeaseID, err)
	}
	if again, err := ex.(executor.Namespacer).LeaseNetNS(context.Background(), tk.LeaseID); err != nil || again != p {
		t.Fatalf("LeaseNetNS(%s) again = %q, %v, want %q (idempotent)", tk.LeaseID, again, err, p)
	}
	if !netns.Exists(p) {
		t.Fatalf("LeaseNetNS(%s) = %s, not a network namespace", tk.LeaseID, p)
	}
	tk.NetNS = p
	// After the test's tasks are destroyed (cleanups run last-in first-out),
	// a restarted executor sweeps a namespace a failed test left.
	t.Cleanup(func() { s.newExec(t).Recover(context.Background()) })
	return p
}

func (s *suite) netnsTasks(t *testing.T) {
	ex := s.newExec(t)
	a := s.task(t)
	p := s.leaseNS(t, ex, &a)
	// A server on the loopback of lease a's namespace only.
	var ln net.Listener
	if err := netns.Do(p, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	a.Args = []string{"connect", addr}
	start(t, ex, a)
	if res := wait(t, ex, a.ID); res.ExitCode != 0 {
		t.Fatalf("task in lease %s's namespace: connect %s = %+v (log %q), want connected", a.LeaseID, addr, res, logs(t, ex, a.ID))
	}
	// Lease b's task, in b's namespace, does not see a's loopback.
	b := s.task(t, "connect", addr)
	s.leaseNS(t, ex, &b)
	start(t, ex, b)
	if res := wait(t, ex, b.ID); res.ExitCode != 3 {
		t.Fatalf("task of lease %s: connect %s (lease %s's loopback) = %+v (log %q), want refused (exit 3)", b.LeaseID, addr, a.LeaseID, res, logs(t, ex, b.ID))
	}
}

func (s *suite) netnsRefusesOther(t *testing.T) {
	ex := s.newExec(t)
	a, b := s.task(t, "exit", "0"), s.task(t, "exit", "0")
	s.leaseNS(t, ex, &a)
	b.NetNS = a.NetNS
	if _, err := ex.Start(context.Background(), b); err == nil {
		ex.Destroy(context.Background(), b.ID)
		t.Fatalf("Start(task of lease %s in lease %s's namespace) succeeded, want refused", b.LeaseID, a.LeaseID)
	}
	b.NetNS = "/proc/1/ns/net"
	if _, err := ex.Start(context.Background(), b); err == nil {
		ex.Destroy(context.Background(), b.ID)
		t.Fatalf("Start(task in the host's namespace) succeeded, want refused")
	}
	a.Ports = []executor.Port{{ContainerPort: 8080}}
	if _, err := ex.Start(context.Background(), a); err == nil {
		ex.Destroy(context.Background(), a.ID)
		t.Fatalf("Start(task with NetNS and ports) succeeded, want refused")
	}
}

func (s *suite) netnsDestroy(t *testing.T) {
	ex := s.newExec(t)
	a := s.task(t, "sleep", "5m")
	p := s.leaseNS(t, ex, &a)
	a2 := a
	a2.ID = executor.TaskID(a.LeaseID, "svc", 1)
	start(t, ex, a)
	start(t, ex, a2)
	if err := ex.Destroy(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	if !netns.Exists(p) {
		t.Fatalf("Destroy of one of lease %s's two tasks removed its namespace", a.LeaseID)
	}
	if err := ex.Destroy(context.Background(), a2.ID); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(p) {
		t.Fatalf("Destroy of lease %s's last task left its namespace %s", a.LeaseID, p)
	}
}

func (s *suite) netnsRecover(t *testing.T) {
	ex := s.newExec(t)
	live, orphan := s.task(t, "sleep", "5m"), s.task(t)
	pl := s.leaseNS(t, ex, &live)
	po := s.leaseNS(t, ex, &orphan)
	start(t, ex, live)
	WaitReady(t, ex, live.ID)
	if _, err := s.newExec(t).Recover(context.Background()); err != nil {
		t.Fatalf("Recover() = %v", err)
	}
	if netns.Exists(po) {
		t.Errorf("Recover left the namespace %s of lease %s, which has no task", po, orphan.LeaseID)
	}
	if !netns.Exists(pl) {
		t.Errorf("Recover removed the namespace %s of lease %s, whose task runs", pl, live.LeaseID)
	}
}

func (s *suite) netnsRelease(t *testing.T) {
	ex := s.newExec(t)
	r, ok := ex.(executor.NetNSReleaser)
	if !ok {
		t.Fatalf("%T does not implement executor.NetNSReleaser", ex)
	}
	ctx := context.Background()
	// A running task keeps its namespace: the release removes nothing.
	a := s.task(t, "sleep", "5m")
	pa := s.leaseNS(t, ex, &a)
	start(t, ex, a)
	if err := r.ReleaseLeaseNetNS(ctx, a.LeaseID); err != nil {
		t.Fatalf("ReleaseLeaseNetNS(%s) with a running task = %v, want nil", a.LeaseID, err)
	}
	if !netns.Exists(pa) {
		t.Fatalf("ReleaseLeaseNetNS(%s) removed the namespace %s of its running task", a.LeaseID, pa)
	}
	// An exited task does not: its namespace goes, the task stays until Destroy.
	x := s.task(t, "exit", "0")
	px := s.leaseNS(t, ex, &x)
	start(t, ex, x)
	wait(t, ex, x.ID)
	if err := r.ReleaseLeaseNetNS(ctx, x.LeaseID); err != nil || netns.Exists(px) {
		t.Fatalf("ReleaseLeaseNetNS(%s) after its task exited = %v, namespace left: %t; want it gone", x.LeaseID, err, netns.Exists(px))
	}
	// A lease whose task never started: its namespace goes, and again is a no-op.
	b := s.task(t)
	pb := s.leaseNS(t, ex, &b)
	for i := 0; i < 2; i++ {
		if err := r.ReleaseLeaseNetNS(ctx, b.LeaseID); err != nil {
			t.Fatalf("ReleaseLeaseNetNS(%s) #%d = %v, want nil", b.LeaseID, i+1, err)
		}
	}
	if netns.Exists(pb) {
		t.Fatalf("ReleaseLeaseNetNS(%s) left its namespace %s", b.LeaseID, pb)
	}
	// The lease can have one again, and lose it again.
	pb = s.leaseNS(t, ex, &b)
	if err := r.ReleaseLeaseNetNS(ctx, b.LeaseID); err != nil || netns.Exists(pb) {
		t.Fatalf("second ReleaseLeaseNetNS(%s) = %v, namespace left: %t", b.LeaseID, err, netns.Exists(pb))
	}
	if err := r.ReleaseLeaseNetNS(ctx, "../x"); err == nil {
		t.Fatalf("ReleaseLeaseNetNS(../x) = nil, want an invalid lease id error")
	}
}

func logs(t *testing.T, ex executor.Executor, id string) string {
	t.Helper()
	rc, err := ex.Logs(context.Background(), id, false)
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 4096))
	return string(b)
}
