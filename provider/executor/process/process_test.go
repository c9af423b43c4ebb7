package process_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/executortest"
	"github.com/kiln-network/kiln/provider/executor/process"
)

// newFactory returns executors whose state dir is one per test, so that two
// calls in one test see the same tasks, as a restarted daemon does.
func newFactory() func(t *testing.T) executor.Executor {
	var dirs sync.Map // *testing.T → string
	return func(t *testing.T) executor.Executor {
		t.Helper()
		d, _ := dirs.LoadOrStore(t, t.TempDir())
		cfg := process.DefaultConfig()
		cfg.AllowUnisolated = true
		cfg.Dir = d.(string)
		ex, err := process.New(cfg)
		if err != nil {
			t.Fatalf("process.New() = %v", err)
		}
		return ex
	}
}

func TestConformance(t *testing.T) {
	prog := executortest.BuildTestProg(t)
	executortest.Run(t, newFactory(), executortest.Env{
		Command: []string{prog},
		// 128 MiB: a Go program needs about 70 MiB of RLIMIT_DATA to start.
		MemoryHogLimit: 128 << 20,
		OOMAsError:     true,
	})
}

func TestNetNS(t *testing.T) {
	prog := executortest.BuildTestProg(t)
	executortest.RunNetNS(t, newFactory(), executortest.Env{Command: []string{prog}})
}

func TestRefusesUnlessEnabled(t *testing.T) {
	cfg := process.DefaultConfig()
	cfg.Dir = t.TempDir()
	_, err := process.New(cfg)
	if !errors.Is(err, executor.ErrNotEnabled) {
		t.Fatalf("New(AllowUnisolated=false) = %v, want ErrNotEnabled", err)
	}
}

func TestRecoverRemovesOrphans(t *testing.T) {
	root := t.TempDir()
	newExec := func(t *testing.T) executor.Executor {
		cfg := process.DefaultConfig()
		cfg.AllowUnisolated, cfg.Dir = true, root
		ex, err := process.New(cfg)
		if err != nil {
			t.Fatalf("process.New() = %v", err)
		}
		return ex
	}
	// Dirs that an earlier instance could leave behind: a task dir without
	// state and a lease dir without a task.
	orphans := []string{
		filepath.Join(root, "tasks", "orphan-task"),
		filepath.Join(root, "leases", "orphan-lease", "out"),
	}
	for _, d := range orphans {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := newExec(t).Recover(context.Background())
	if err != nil || len(hs) != 0 {
		t.Fatalf("Recover() = %v, %v; want no tasks", hs, err)
	}
	for _, d := range orphans {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan %s after Recover: stat = %v, want gone", d, err)
		}
	}
}

// A task that fails on its own, or is stopped, is not reported out of memory because
// the daemon that started it is large: Go starts children with vfork, and Linux folds
// the parent's peak RSS into the child's ru_maxrss at exec.
func TestOOMVerdictIgnoresTheDaemonsMemory(t *testing.T) {
	// This process's peak RSS: 96 MiB touched, above half the tasks' 128 MiB limit.
	big := make([]byte, 96<<20)
	for i := range big {
		big[i] = 1
	}
	ex := newFactory()(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	task := func(id string, script string) executor.Task {
		return executor.Task{ID: id, LeaseID: "oom-" + id, Command: []string{"/bin/sh", "-c", script},
			Resources: executor.Resources{MemoryBytes: 128 << 20}}
	}
	if _, err := ex.Start(ctx, task("fails", "exit 3")); err != nil {
		t.Fatal(err)
	}
	res, err := ex.Wait(ctx, "fails")
	if err != nil || res.ExitCode != 3 || res.OOMKilled {
		t.Errorf("a task that exits 3: %+v, %v; want exit 3, not out of memory", res, err)
	}
	if _, err := ex.Start(ctx, task("stopped", "sleep 30")); err != nil {
		t.Fatal(err)
	}
	if err := ex.Stop(ctx, "stopped", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	res, err = ex.Wait(ctx, "stopped")
	if err != nil || res.ExitCode == 0 || res.OOMKilled {
		t.Errorf("a stopped task: %+v, %v; want a non-zero exit, not out of memory", res, err)
	}
	runtime.KeepAlive(big)
}
