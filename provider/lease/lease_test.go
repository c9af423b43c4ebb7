package lease_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/provider/vault"
)

// waitTimeout covers a tiny shell job from start to sealed outputs.
const waitTimeout = 30 * time.Second

type env struct {
	dir       string
	v         *vault.Vault
	ex        *process.Executor
	completed chan [32]byte
	// hold is the manager's Config.Hold.
	hold func(uint64) bool
	// beforeSeal is the manager's Config.BeforeSeal.
	beforeSeal func(uint64, fs.ReadDirFS) (fs.ReadDirFS, error)
}

// newManager returns a manager over dir; two calls with one env share state,
// as a restarted daemon does.
func (e *env) newManager(t *testing.T) *lease.Manager {
	t.Helper()
	pcfg := process.DefaultConfig()
	pcfg.AllowUnisolated, pcfg.Dir = true, filepath.Join(e.dir, "exec")
	ex, err := process.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(vault.Config{Dir: filepath.Join(e.dir, "vault")})
	if err != nil {
		t.Fatal(err)
	}
	e.v, e.ex = v, ex
	cfg := lease.DefaultConfig()
	cfg.Hold, cfg.BeforeSeal = e.hold, e.beforeSeal
	cfg.Dir, cfg.StopGrace = filepath.Join(e.dir, "state"), time.Second
	cfg.OnComplete = func(_ uint64, root [32]byte, _ map[string]int) { e.completed <- root }
	m, err := lease.New(cfg, ex, v)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func info(id uint64) api.LeaseInfo {
	return api.LeaseInfo{ID: id, Owner: "kiln1x", Active: true, Kind: api.KindBatch,
		Resources: []api.ResourceUnit{{ID: 1, Count: 2, CPUMilli: 1000, MemoryBytes: 256 << 20}}}
}

func job(script string, count uint32) api.Manifest {
	return api.Manifest{Services: []api.Service{{Name: "job", Command: []string{"/bin/sh", "-c", script}, Count: count,
		Resources: api.ServiceResources{CPUMilli: 100, MemoryBytes: 64 << 20}}}}
}

func waitDone(t *testing.T, m *lease.Manager, id uint64) api.LeaseStatus {
	t.Helper()
	var st api.LeaseStatus
	poll.WaitFor(t, waitTimeout, func() error {
		var err error
		if st, err = m.Status(context.Background(), id); err != nil {
			t.Fatalf("Status(%d) = %v", id, err)
		}
		if st.State != api.StateCompleted && st.State != api.StateFailed {
			return fmt.Errorf("lease %d is %s, want completed or failed", id, st.State)
		}
		return nil
	})
	return st
}

func TestFailedReplicaFailsLease(t *testing.T) {
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 1)}
	m := e.newManager(t)
	defer m.Close()
	if err := m.Deploy(context.Background(), info(1), job(`echo out > "$KILN_OUT/r$KILN_TASK_ID"; [ "$KILN_TASK_ID" = 1-job-0 ]`, 2)); err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	st := waitDone(t, m, 1)
	if st.State != api.StateFailed || len(st.Tasks) != 2 || len(st.Outputs) != 2 {
		t.Errorf("Status() = %+v, want failed with 2 tasks and both outputs sealed", st)
	}
	<-e.completed
	if err := m.Deploy(context.Background(), info(1), job("true", 1)); !errors.Is(err, api.ErrAlreadyDeployed) {
		t.Errorf("second Deploy() = %v, want ErrAlreadyDeployed", err)
	}
}

func TestRecoverFinishesBatchLease(t *testing.T) {
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 1)}
	m := e.newManager(t)
	vl, _ := e.v.Lease(7)
	vl.PutInput("in.txt", strings.NewReader("abc"), 0)
	if err := m.Deploy(context.Background(), info(7), job(`sleep 1; cat "$KILN_IN/in.txt" > "$KILN_OUT/out.txt"`, 1)); err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	m.Close() // the daemon goes down; the task keeps running

	m2 := e.newManager(t)
	defer m2.Close()
	ids, err := m2.Recover(context.Background())
	if err != nil || len(ids) != 1 || ids[0] != 7 {
		t.Fatalf("Recover() = %v, %v; want [7]", ids, err)
	}
	st := waitDone(t, m2, 7)
	if st.State != api.StateCompleted || len(st.Outputs) != 1 || st.Outputs[0].Name != "out.txt" || st.Outputs[0].Size != 3 {
		t.Fatalf("Status() after Recover = %+v, want completed with out.txt", st)
	}
	select {
	case <-e.completed:
	case <-time.After(waitTimeout):
		t.Fatal("OnComplete not called after Recover")
	}

	if err := m2.Stop(context.Background(), 7); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if _, err := m2.Status(context.Background(), 7); !errors.Is(err, api.ErrNotDeployed) {
		t.Errorf("Status() after Stop = %v, want ErrNotDeployed", err)
	}
	for _, d := range []string{"vault", "state", "exec/leases/7", "exec/tasks"} {
		if n := countFiles(filepath.Join(e.dir, d)); n != 0 {
			t.Errorf("%s holds %d files after Stop, want none", d, n)
		}
	}
}

func TestStopErasesUndeployedInputs(t *testing.T) {
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 1)}
	m := e.newManager(t)
	defer m.Close()
	vl, _ := e.v.Lease(3)
	vl.PutInput("x", strings.NewReader("secret"), 0)
	if err := m.Stop(context.Background(), 3); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if n := countFiles(filepath.Join(e.dir, "vault")); n != 0 {
		t.Errorf("vault holds %d files after Stop, want none", n)
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// While a batch lease's outputs seal (minutes for large ones), Status answers at once,
// and says running with no outputs until they are sealed: the provider daemon asks
// every block, and its heartbeats wait for the answer.
func TestStatusAnswersWhileOutputsSeal(t *testing.T) {
	sealing, release := make(chan struct{}), make(chan struct{})
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 1), beforeSeal: func(_ uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error) {
		close(sealing)
		<-release
		return outs, nil
	}}
	m := e.newManager(t)
	defer m.Close()
	if err := m.Deploy(context.Background(), info(1), job(`echo out > "$KILN_OUT/result"`, 1)); err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	select {
	case <-sealing:
	case <-time.After(waitTimeout):
		t.Fatal("the outputs were never sealed")
	}
	answered := make(chan api.LeaseStatus, 1)
	go func() {
		st, err := m.Status(context.Background(), 1)
		if err != nil {
			t.Errorf("Status() during the seal = %v", err)
		}
		answered <- st
	}()
	select {
	case st := <-answered:
		if st.State != api.StateRunning || len(st.Outputs) != 0 || st.OutputsRoot != "" {
			t.Errorf("Status() during the seal = %+v, want running with no outputs yet", st)
		}
	// 10 s: a Status is microseconds; only a wait for the seal takes longer.
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("Status() waited for the outputs' seal")
	}
	close(release)
	st := waitDone(t, m, 1)
	if st.State != api.StateCompleted || len(st.Outputs) != 1 || st.OutputsRoot == "" {
		t.Errorf("Status() after the seal = %+v, want completed with 1 output", st)
	}
	<-e.completed
}

// A Stop that comes while a batch lease's outputs seal waits for the seal before it
// destroys anything: the outputs are sealed whole (the root reported is that of the same
// job not stopped), then the lease is erased.
func TestStopWaitsForSeal(t *testing.T) {
	sealing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e := &env{dir: t.TempDir(), completed: make(chan [32]byte, 2), beforeSeal: func(id uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error) {
		if id == 1 {
			once.Do(func() { close(sealing) })
			<-release
		}
		return outs, nil
	}}
	m := e.newManager(t)
	defer m.Close()
	const script = `echo out > "$KILN_OUT/result"`
	if err := m.Deploy(context.Background(), info(1), job(script, 1)); err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	select {
	case <-sealing:
	case <-time.After(waitTimeout):
		t.Fatal("the outputs were never sealed")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop(context.Background(), 1) }()
	// NB: time for a Stop that does not wait to destroy the task and its outputs.
	time.Sleep(300 * time.Millisecond)
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop() = %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Stop() did not return after the seal")
	}
	stoppedRoot := <-e.completed
	left, _ := filepath.Glob(filepath.Join(e.dir, "state", "*"))
	if len(left) != 0 || len(m.Leases()) != 0 {
		t.Fatalf("after Stop: state files %v, leases %v; want none", left, m.Leases())
	}
	if err := m.Deploy(context.Background(), info(2), job(script, 1)); err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	if st := waitDone(t, m, 2); st.State != api.StateCompleted {
		t.Fatalf("the same job not stopped: %+v", st)
	}
	if want := <-e.completed; stoppedRoot != want {
		t.Fatalf("outputs root of the job stopped while sealing %x, of the same job not stopped %x: the seal lost outputs", stoppedRoot, want)
	}
}
