// Package executortest is the conformance suite every executor.Executor implementation passes.
package executortest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/executor"
)

// Env tells the suite how to run the test program under the executor at hand.
type Env struct {
	// Command runs the test program (see testprog): the binary's host path
	// for process, its path in the test image for docker.
	Command []string
	// Image is the test image (docker); empty for process.
	Image string
	// MemoryHogLimit is the memory limit of the hog test; it must be low
	// enough to be hit by a 512 MiB hog and high enough for the program to
	// start under it.
	MemoryHogLimit int64
	// OOMAsError accepts a memory hog reported as a failed exit with an error
	// instead of OOMKilled, for executors that cannot tell.
	OOMAsError bool
	// CheckGone, if set, is called after Destroy and fails t if anything of
	// the task or its lease is left in the backend.
	CheckGone func(t *testing.T, h executor.Handle)
}

// Timeouts of the suite. Each covers one wait on a task doing little; they
// are loose because CI machines are shared and slow.
const (
	// waitTimeout bounds a Wait for a task expected to end by itself.
	waitTimeout = 30 * time.Second
	// readyTimeout bounds the wait for a task's "ready" line in its log.
	readyTimeout = 20 * time.Second
)

// Run runs the suite. newExec returns a fresh executor; two calls with the
// same t must share the backing state (state dir, daemon objects), as an
// executor re-created after a daemon restart does.
func Run(t *testing.T, newExec func(t *testing.T) executor.Executor, env Env) {
	s := &suite{newExec: newExec, env: env}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Fingerprint", s.fingerprint},
		{"StartLogsOutputsExit", s.startLogsOutputsExit},
		{"InputsInOutputsOut", s.inputsOutputs},
		{"Endpoints", s.endpoints},
		{"NonZeroExit", s.nonZeroExit},
		{"StopWithGrace", s.stopWithGrace},
		{"StopKillsAfterGrace", s.stopKillsAfterGrace},
		{"TimeLimit", s.timeLimit},
		{"MemoryHogKilled", s.memoryHog},
		{"Stats", s.stats},
		{"DestroyLeavesNothing", s.destroy},
		{"RecoverReattaches", s.recover},
		{"SameLeaseConcurrently", s.sameLease},
		{"UnknownAndDuplicateTasks", s.unknownAndDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct {
	newExec func(t *testing.T) executor.Executor
	env     Env
}

// task returns a task with fresh ids running the test program with args.
func (s *suite) task(t *testing.T, args ...string) executor.Task {
	t.Helper()
	lease := "l" + randHex(t, 6)
	return executor.Task{
		ID:      executor.TaskID(lease, "svc", 0),
		LeaseID: lease,
		Image:   s.env.Image,
		Command: s.env.Command,
		Args:    args,
		Env:     []string{"KILN_TEST=1"},
	}
}

// start starts tk and destroys it when the test ends.
func start(t *testing.T, ex executor.Executor, tk executor.Task) executor.Handle {
	t.Helper()
	ctx := context.Background()
	h, err := ex.Start(ctx, tk)
	if err != nil {
		t.Fatalf("Start(%s) = %v", tk.ID, err)
	}
	t.Cleanup(func() {
		if err := ex.Destroy(context.Background(), tk.ID); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
			t.Errorf("cleanup: Destroy(%s) = %v", tk.ID, err)
		}
	})
	return h
}

func wait(t *testing.T, ex executor.Executor, id string) executor.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := ex.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s) = %v", id, err)
	}
	return res
}

// WaitReady follows the task's log until a line contains "ready".
func WaitReady(t *testing.T, ex executor.Executor, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	rc, err := ex.Logs(ctx, id, true)
	if err != nil {
		t.Fatalf("Logs(%s, follow) = %v", id, err)
	}
	defer rc.Close()
	go func() { <-ctx.Done(); rc.Close() }()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "ready") {
			return
		}
	}
	t.Fatalf("task %s: no \"ready\" line in its log (scan: %v, ctx: %v)", id, sc.Err(), ctx.Err())
}

func (s *suite) fingerprint(t *testing.T) {
	ex := s.newExec(t)
	fp, err := ex.Fingerprint(context.Background())
	if err != nil {
		t.Fatalf("Fingerprint() = %v", err)
	}
	if fp.Driver == "" || fp.Version == "" {
		t.Errorf("Fingerprint() = %+v, want driver and version set", fp)
	}
}

func (s *suite) startLogsOutputsExit(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "ticker", "3", ";", "write-out", "result.txt", "hello-kiln", ";", "echo", "done")
	h := start(t, ex, tk)
	if h.TaskID != tk.ID || h.LeaseID != tk.LeaseID {
		t.Errorf("Start() = %+v, want ids %s/%s", h, tk.ID, tk.LeaseID)
	}

	// A followed log streams while the task runs and ends when it exits.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	rc, err := ex.Logs(ctx, tk.ID, true)
	if err != nil {
		t.Fatalf("Logs(follow) = %v", err)
	}
	go func() { <-ctx.Done(); rc.Close() }()
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read followed logs: %v (got %q)", err, b)
	}
	for _, want := range []string{"tick 0\n", "tick 2\n", "wrote result.txt\n", "done\n", "stderr: done\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("followed logs = %q, want it to contain %q", b, want)
		}
	}

	res := wait(t, ex, tk.ID)
	if res.ExitCode != 0 || res.OOMKilled || res.Err != nil {
		t.Errorf("Wait() = %+v, want exit 0", res)
	}
	if got := readOutput(t, ex, tk.LeaseID, "result.txt"); got != "hello-kiln" {
		t.Errorf("output result.txt = %q, want %q", got, "hello-kiln")
	}

	// The log stays readable after exit, without follow.
	rc, err = ex.Logs(context.Background(), tk.ID, false)
	if err != nil {
		t.Fatalf("Logs(no follow) after exit = %v", err)
	}
	b2, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b2), "done") {
		t.Errorf("logs after exit = %q, want %q", b2, "done")
	}
}

// readOutput reads the lease's output name through the executor; a missing
// or unreadable output fails t.
func readOutput(t *testing.T, ex executor.Executor, lease, name string) string {
	t.Helper()
	outs, err := ex.Outputs(context.Background(), lease)
	if err != nil {
		t.Fatalf("Outputs(%s) = %v", lease, err)
	}
	b, err := fs.ReadFile(outs, name)
	if err != nil {
		t.Fatalf("read output %s of lease %s: %v", name, lease, err)
	}
	return string(b)
}

// outputNames lists the lease's outputs through the executor, with their
// kinds when not regular files.
func outputNames(t *testing.T, ex executor.Executor, lease string) []string {
	t.Helper()
	outs, err := ex.Outputs(context.Background(), lease)
	if err != nil {
		t.Fatalf("Outputs(%s) = %v", lease, err)
	}
	ents, err := fs.ReadDir(outs, ".")
	if err != nil {
		t.Fatalf("list outputs of lease %s: %v", lease, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() {
			n += " (" + e.Type().Type().String() + ")"
		}
		names = append(names, n)
	}
	return names
}

// inputsOutputs moves data only through the interface: inputs put before the
// start are what the task reads, what it writes comes out, a link it leaves
// is reported as one and never followed, and ClearData leaves nothing.
func (s *suite) inputsOutputs(t *testing.T) {
	ex := s.newExec(t)
	ctx := context.Background()
	tk := s.task(t, "copy-in", "a.txt", ";", "copy-in", "b.bin", ";", "link-out", "/etc/passwd", "link", ";", "write-out", "c.txt", "made")
	bin := make([]byte, 1<<20)
	rand.Read(bin)
	for name, data := range map[string][]byte{"a.txt": []byte("first input"), "b.bin": bin} {
		if err := ex.PutInput(ctx, tk.LeaseID, name, strings.NewReader(string(data))); err != nil {
			t.Fatalf("PutInput(%s) = %v", name, err)
		}
	}
	// A second put of a name replaces the first.
	if err := ex.PutInput(ctx, tk.LeaseID, "a.txt", strings.NewReader("tenant input")); err != nil {
		t.Fatalf("PutInput(a.txt again) = %v", err)
	}
	for _, bad := range []string{"../x", "a/b", "", ".."} {
		if err := ex.PutInput(ctx, tk.LeaseID, bad, strings.NewReader("x")); err == nil {
			t.Errorf("PutInput(%q) = nil, want the name refused", bad)
		}
	}
	start(t, ex, tk)
	if res := wait(t, ex, tk.ID); res.ExitCode != 0 {
		t.Fatalf("Wait() = %+v, want exit 0", res)
	}
	if got := readOutput(t, ex, tk.LeaseID, "a.txt"); got != "tenant input" {
		t.Errorf("output a.txt = %q, want the input the task read, %q", got, "tenant input")
	}
	if got := readOutput(t, ex, tk.LeaseID, "b.bin"); got != string(bin) {
		t.Errorf("output b.bin: %d bytes, want the 1 MiB input back", len(got))
	}
	want := []string{"a.txt", "b.bin", "c.txt", "link (L---------)"}
	if got := outputNames(t, ex, tk.LeaseID); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("outputs = %q, want %q", got, want)
	}
	outs, err := ex.Outputs(ctx, tk.LeaseID)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(outs, "link"); err == nil {
		t.Errorf("read output link = %d bytes, want the link not followed", len(b))
	}
	if err := ex.ClearData(ctx, tk.LeaseID); err != nil {
		t.Fatalf("ClearData() = %v", err)
	}
	if names := outputNames(t, ex, tk.LeaseID); len(names) != 0 {
		t.Errorf("outputs after ClearData = %v, want none", names)
	}
	// The inputs are gone too: a task of the lease finds none.
	again := tk
	again.ID, again.Args = executor.TaskID(tk.LeaseID, "svc", 1), []string{"copy-in", "a.txt"}
	start(t, ex, again)
	if res := wait(t, ex, again.ID); res.ExitCode == 0 {
		t.Errorf("a task reading a.txt after ClearData exited 0, want the input gone")
	}
	if err := ex.ClearData(ctx, "l"+randHex(t, 6)); err != nil {
		t.Errorf("ClearData(lease without data) = %v, want nil", err)
	}
}

// endpoints reaches a task's port at the address its handle gives.
func (s *suite) endpoints(t *testing.T) {
	ex := s.newExec(t)
	port := freePort(t)
	tk := s.task(t, "serve-http", strconv.Itoa(port))
	tk.Ports = []executor.Port{{ContainerPort: port}}
	h := start(t, ex, tk)
	addr := h.Endpoints[port]
	if addr == "" {
		t.Fatalf("Start() endpoints = %v, want one for port %d", h.Endpoints, port)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		t.Fatalf("endpoint %q: %v, want host:port", addr, err)
	}
	// The program binds its port a moment after it starts.
	c := &http.Client{Timeout: 2 * time.Second}
	poll.WaitFor(t, readyTimeout, func() error {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			t.Fatalf("GET %s = %q, want %q", addr, b, "ok")
		}
		return nil
	})
}

// freePort is a TCP port free on this host a moment ago: the process
// executor binds a task's port on the host itself.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *suite) nonZeroExit(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "exit", "7")
	start(t, ex, tk)
	res := wait(t, ex, tk.ID)
	if res.ExitCode != 7 || res.OOMKilled {
		t.Errorf("Wait() = %+v, want exit code 7", res)
	}
}

func (s *suite) stopWithGrace(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "sleep", "5m")
	start(t, ex, tk)
	WaitReady(t, ex, tk.ID)
	began := time.Now()
	// 20 s grace: the program exits on SIGTERM at once, far before.
	if err := ex.Stop(context.Background(), tk.ID, 20*time.Second); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	res := wait(t, ex, tk.ID)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Stop() took %s, want the task to exit on SIGTERM", took)
	}
	if res.ExitCode != 143 {
		t.Errorf("Wait() after Stop = %+v, want exit code 143 from the SIGTERM handler", res)
	}
	// Stop of an exited task is a no-op.
	if err := ex.Stop(context.Background(), tk.ID, time.Second); err != nil {
		t.Errorf("second Stop() = %v, want nil", err)
	}
}

func (s *suite) stopKillsAfterGrace(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "sleep-ignore-term", "5m")
	start(t, ex, tk)
	WaitReady(t, ex, tk.ID)
	const grace = time.Second
	began := time.Now()
	if err := ex.Stop(context.Background(), tk.ID, grace); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	res := wait(t, ex, tk.ID)
	took := time.Since(began)
	if took < grace-100*time.Millisecond || took > 15*time.Second {
		t.Errorf("Stop(grace %s) took %s, want the grace then a kill", grace, took)
	}
	if res.ExitCode == 0 {
		t.Errorf("Wait() after kill = %+v, want a non-zero exit", res)
	}
}

func (s *suite) timeLimit(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "sleep", "5m")
	tk.TimeLimit = time.Second
	start(t, ex, tk)
	res := wait(t, ex, tk.ID)
	if !errors.Is(res.Err, executor.ErrTimeLimit) || res.ExitCode == 0 {
		t.Errorf("Wait() = %+v, want a non-zero exit with ErrTimeLimit", res)
	}
}

func (s *suite) memoryHog(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "hog-mem", "512")
	tk.Resources.MemoryBytes = s.env.MemoryHogLimit
	start(t, ex, tk)
	res := wait(t, ex, tk.ID)
	if res.ExitCode == 0 {
		t.Fatalf("Wait() = %+v, want the 512 MiB hog to fail under a %d byte limit", res, tk.Resources.MemoryBytes)
	}
	if !res.OOMKilled && !(s.env.OOMAsError && res.Err != nil && strings.Contains(res.Err.Error(), "memory")) {
		t.Errorf("Wait() = %+v, want OOMKilled", res)
	}
}

func (s *suite) stats(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "hog-mem", "16")
	start(t, ex, tk)
	// Memory shows once the hog has allocated, after "allocated".
	poll.WaitFor(t, readyTimeout, func() error {
		st, err := ex.Stats(context.Background(), tk.ID)
		if err != nil {
			t.Fatalf("Stats() = %v", err)
		}
		if st.MemoryBytes < 8<<20 || st.Time.IsZero() {
			return fmt.Errorf("Stats() = %+v, want >= 8 MiB of memory for a 16 MiB hog", st)
		}
		return nil
	})
}

func (s *suite) destroy(t *testing.T) {
	ex := s.newExec(t)
	tk := s.task(t, "write-out", "x.txt", "x", ";", "sleep", "5m")
	h := start(t, ex, tk)
	WaitReady(t, ex, tk.ID)
	if err := ex.Destroy(context.Background(), tk.ID); err != nil {
		t.Fatalf("Destroy() = %v", err)
	}
	if _, err := ex.Wait(context.Background(), tk.ID); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Wait() after Destroy = %v, want ErrTaskNotFound", err)
	}
	if _, err := ex.Logs(context.Background(), tk.ID, false); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Logs() after Destroy = %v, want ErrTaskNotFound", err)
	}
	if names := outputNames(t, ex, tk.LeaseID); len(names) != 0 {
		t.Errorf("outputs after Destroy = %v, want none", names)
	}
	if s.env.CheckGone != nil {
		s.env.CheckGone(t, h)
	}
	// A re-created executor finds nothing either.
	hs, err := s.newExec(t).Recover(context.Background())
	if err != nil {
		t.Fatalf("Recover() = %v", err)
	}
	for _, h := range hs {
		if h.TaskID == tk.ID {
			t.Errorf("Recover() after Destroy returned %+v", h)
		}
	}
}

func (s *suite) recover(t *testing.T) {
	ex1 := s.newExec(t)
	tk := s.task(t, "write-out", "r.txt", "before-restart", ";", "sleep", "5m")
	start(t, ex1, tk)
	done := s.task(t, "exit", "5")
	start(t, ex1, done)
	WaitReady(t, ex1, tk.ID)
	wait(t, ex1, done.ID)

	// The daemon restarts: a new executor over the same state.
	ex2 := s.newExec(t)
	hs, err := ex2.Recover(context.Background())
	if err != nil {
		t.Fatalf("Recover() = %v", err)
	}
	got := map[string]executor.Handle{}
	for _, h := range hs {
		got[h.TaskID] = h
	}
	if h, ok := got[tk.ID]; !ok || h.Exited || h.LeaseID != tk.LeaseID {
		t.Errorf("Recover() running task = %+v (found %v), want it re-attached, not exited", h, ok)
	}
	if out := readOutput(t, ex2, tk.LeaseID, "r.txt"); out != "before-restart" {
		t.Errorf("output r.txt through the recovered executor = %q, want %q", out, "before-restart")
	}
	if h, ok := got[done.ID]; !ok || !h.Exited {
		t.Errorf("Recover() exited task = %+v (found %v), want it kept as exited", h, ok)
	} else if res := wait(t, ex2, done.ID); res.ExitCode != 5 {
		t.Errorf("Wait() on recovered exited task = %+v, want exit code 5", res)
	}

	// The new executor controls the task: logs, stop, wait, destroy.
	rc, err := ex2.Logs(context.Background(), tk.ID, false)
	if err != nil {
		t.Fatalf("Logs() after Recover = %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(b), "ready") {
		t.Errorf("Logs() after Recover = %q, want %q", b, "ready")
	}
	if err := ex2.Stop(context.Background(), tk.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop() after Recover = %v", err)
	}
	res := wait(t, ex2, tk.ID)
	if res.ExitCode == 0 {
		t.Errorf("Wait() after Recover and Stop = %+v, want a non-zero exit", res)
	}
	for _, id := range []string{tk.ID, done.ID} {
		if err := ex2.Destroy(context.Background(), id); err != nil {
			t.Errorf("Destroy(%s) after Recover = %v", id, err)
		}
	}
}

func (s *suite) sameLease(t *testing.T) {
	ex := s.newExec(t)
	base := s.task(t)
	const n = 3
	tasks := make([]executor.Task, n)
	handles := make([]executor.Handle, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range tasks {
		tk := base
		tk.ID = executor.TaskID(base.LeaseID, "svc", i)
		tk.Args = []string{"write-out", "f" + strconv.Itoa(i), strconv.Itoa(i)}
		tasks[i] = tk
		wg.Add(1)
		go func() {
			defer wg.Done()
			handles[i], errs[i] = ex.Start(context.Background(), tk)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Start(%s) = %v", tasks[i].ID, err)
		}
		id := tasks[i].ID
		t.Cleanup(func() { ex.Destroy(context.Background(), id) })
	}
	for i, tk := range tasks {
		if res := wait(t, ex, tk.ID); res.ExitCode != 0 {
			t.Errorf("Wait(%s) = %+v, want exit 0", tk.ID, res)
		}
		if got := readOutput(t, ex, base.LeaseID, "f"+strconv.Itoa(i)); got != strconv.Itoa(i) {
			t.Errorf("output f%d = %q, want %q", i, got, strconv.Itoa(i))
		}
	}
	// The lease's outputs outlive all but its last task.
	for _, tk := range tasks[:n-1] {
		if err := ex.Destroy(context.Background(), tk.ID); err != nil {
			t.Fatalf("Destroy(%s) = %v", tk.ID, err)
		}
	}
	if got := readOutput(t, ex, base.LeaseID, "f0"); got != "0" {
		t.Errorf("lease output f0 after destroying %d of %d tasks = %q, want kept", n-1, n, got)
	}
	if err := ex.Destroy(context.Background(), tasks[n-1].ID); err != nil {
		t.Fatalf("Destroy(%s) = %v", tasks[n-1].ID, err)
	}
	if names := outputNames(t, ex, base.LeaseID); len(names) != 0 {
		t.Errorf("lease outputs after its last task's Destroy = %v, want none", names)
	}
	if s.env.CheckGone != nil {
		s.env.CheckGone(t, handles[n-1])
	}
}

func (s *suite) unknownAndDuplicate(t *testing.T) {
	ex := s.newExec(t)
	ctx := context.Background()
	const id = "no-such-task"
	if _, err := ex.Wait(ctx, id); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Wait(unknown) = %v, want ErrTaskNotFound", err)
	}
	if err := ex.Stop(ctx, id, time.Second); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Stop(unknown) = %v, want ErrTaskNotFound", err)
	}
	if err := ex.Destroy(ctx, id); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Destroy(unknown) = %v, want ErrTaskNotFound", err)
	}
	if _, err := ex.Logs(ctx, id, false); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Logs(unknown) = %v, want ErrTaskNotFound", err)
	}
	if _, err := ex.Stats(ctx, id); !errors.Is(err, executor.ErrTaskNotFound) {
		t.Errorf("Stats(unknown) = %v, want ErrTaskNotFound", err)
	}
	tk := s.task(t, "sleep", "5m")
	start(t, ex, tk)
	if _, err := ex.Start(ctx, tk); !errors.Is(err, executor.ErrTaskExists) {
		t.Errorf("second Start(%s) = %v, want ErrTaskExists", tk.ID, err)
	}
	bad := s.task(t, "echo")
	bad.ID = "../escape"
	if _, err := ex.Start(ctx, bad); err == nil {
		t.Errorf("Start(id %q) = nil error, want the id refused", bad.ID)
	}
}

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random id: %v", err)
	}
	return hex.EncodeToString(b)
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildTestProg compiles testprog as a static binary once per test process
// and returns its path. The binary is cached in the OS temp dir under the hash
// of its source, so runs share it until the source changes.
func BuildTestProg(t testing.TB) string {
	t.Helper()
	p, err := TestProg()
	if err != nil {
		t.Fatalf("build testprog: %v", err)
	}
	return p
}

// TestProg is BuildTestProg for callers without a testing.TB, like TestMain.
func TestProg() (string, error) {
	buildOnce.Do(func() { buildPath, buildErr = buildTestProg() })
	return buildPath, buildErr
}

// TestProgHash returns the hash of testprog's source, for cache keys and image tags.
func TestProgHash() (string, error) {
	src, err := os.ReadFile(filepath.Join(testProgDir(), "main.go"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(src, runtime.Version()...))
	return hex.EncodeToString(sum[:8]), nil
}

func testProgDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testprog")
}

func buildTestProg() (string, error) {
	hash, err := TestProgHash()
	if err != nil {
		return "", err
	}
	out := filepath.Join(os.TempDir(), "kiln-testprog-"+hash, "testprog")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp := out + ".tmp-" + strconv.Itoa(os.Getpid())
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = testProgDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", errors.New(string(b) + err.Error())
	}
	return out, os.Rename(tmp, out)
}
