package process

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/executor"
)

// TestRecoverForeignProcess covers a real daemon restart: the task's process
// is not a child of the new executor, which can only watch its pid and
// cannot learn its exit status.
func TestRecoverForeignProcess(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowUnisolated = true
	cfg.Dir = t.TempDir()
	ex, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A process started by "someone else", in its own group like a task.
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	ticks, err := startTicks(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	const id, lease = "l1-svc-0", "l1"
	if err := os.MkdirAll(ex.taskDir(id), 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ex.taskDir(id), "log"), []byte("ready\n"), 0o640)
	if err := writeJSON(filepath.Join(ex.taskDir(id), "state.json"), state{
		TaskID: id, LeaseID: lease, PID: cmd.Process.Pid, StartTicks: ticks, StartedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	// A state file whose pid was recycled: same pid, other start time.
	const stale = "l2-svc-0"
	os.MkdirAll(ex.taskDir(stale), 0o750)
	writeJSON(filepath.Join(ex.taskDir(stale), "state.json"), state{
		TaskID: stale, LeaseID: "l2", PID: cmd.Process.Pid, StartTicks: ticks + 1, StartedAt: time.Now(),
	})

	hs, err := ex.Recover(context.Background())
	if err != nil {
		t.Fatalf("Recover() = %v", err)
	}
	got := map[string]executor.Handle{}
	for _, h := range hs {
		got[h.TaskID] = h
	}
	if h := got[id]; h.TaskID != id || h.Exited {
		t.Errorf("Recover() %s = %+v, want running", id, h)
	}
	if h := got[stale]; h.TaskID != stale || !h.Exited {
		t.Errorf("Recover() %s = %+v, want exited (its pid belongs to another process now)", stale, h)
	}
	if err := ex.Stop(context.Background(), id, 5*time.Second); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // the poll sees the exit within 100 ms
	defer cancel()
	res, err := ex.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	if !errors.Is(res.Err, executor.ErrExitUnknown) || res.ExitCode != -1 {
		t.Errorf("Wait() = %+v, want exit -1 with ErrExitUnknown", res)
	}
	for _, id := range []string{id, stale} {
		if err := ex.Destroy(context.Background(), id); err != nil {
			t.Errorf("Destroy(%s) = %v", id, err)
		}
	}
}
