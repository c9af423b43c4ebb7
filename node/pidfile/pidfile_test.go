package pidfile

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// held is the pid file the helper process holds until it is killed.
var held *File

// TestMain lets the test binary play a second process that holds a pid file.
func TestMain(m *testing.M) {
	if path := os.Getenv("PIDFILE_HOLD"); path != "" {
		p, err := Acquire(path)
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		// NB: held in a global so it stays reachable: an unreachable *os.File is
		// closed by its finalizer, which would drop the lock.
		held = p
		os.Stdout.WriteString("held\n")
		for { // until killed (a bare select{} would be reported as a deadlock)
			time.Sleep(time.Hour)
		}
	}
	os.Exit(m.Run())
}

// holder starts a process holding path and returns it once it holds it.
func holder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIDFILE_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		t.Fatalf("holder process: %q, %v", line, err)
	}
	return cmd
}

func TestAcquireRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.pid")
	p, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := Read(path); err != nil || st != (State{Exists: true, Running: true, PID: os.Getpid()}) {
		t.Fatalf("Read(%q) while held = %+v, %v; want running with pid %d", path, st, err, os.Getpid())
	}
	// The lock is per open file: a second claim in the same process fails too.
	_, err = Acquire(path)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire = %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatalf("second Release = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file after Release: %v, want it removed", err)
	}
	if st, err := Read(path); err != nil || st.Exists {
		t.Fatalf("Read after Release = %+v, %v", st, err)
	}
}

// A pid file held by another process names it; once that process is killed (no
// chance to clean up) the file is stale: Read says so and Acquire takes it over.
func TestStaleAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.pid")
	h := holder(t, path)
	_, err := Acquire(path)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != h.Process.Pid || le.Path != path {
		t.Fatalf("Acquire while another process holds it = %v, want LockedError{%s, %d}", err, path, h.Process.Pid)
	}
	if st, _ := Read(path); !st.Running || st.PID != h.Process.Pid {
		t.Fatalf("Read = %+v, want running pid %d", st, h.Process.Pid)
	}
	h.Process.Kill()
	h.Wait()
	st, err := Read(path)
	if err != nil || !st.Exists || st.Running || st.PID != h.Process.Pid {
		t.Fatalf("Read after kill = %+v, %v; want a stale file naming %d", st, err, h.Process.Pid)
	}
	p, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire of a stale pid file: %v", err)
	}
	defer p.Release()
	b, _ := os.ReadFile(path)
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file = %q, want %d", got, os.Getpid())
	}
}

// A file with a pid but no lock (written by something else, or by an old version)
// is not trusted.
func TestUnlockedFileIsStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.pid")
	os.WriteFile(path, []byte("1\n"), 0o644)
	if st, err := Read(path); err != nil || st != (State{Exists: true, PID: 1}) {
		t.Fatalf("Read = %+v, %v; want a stale file naming pid 1", st, err)
	}
	p, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
}

// Claims racing with releases never leave two holders: a release removes the file
// before it unlocks, and a claim won on a removed file starts over.
func TestNoTwoHolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.pid")
	var holders, overlaps, wins atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(500 * time.Millisecond) // a few thousand claims
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				p, err := Acquire(path)
				if errors.Is(err, ErrLocked) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				// A holder's file must be the one at path: a lock won on a
				// removed file would let the next claim create another.
				if holders.Add(1) > 1 || !samePath(p.f, path) {
					overlaps.Add(1)
				}
				wins.Add(1)
				time.Sleep(100 * time.Microsecond) // hold it for a moment, as a node would
				holders.Add(-1)
				p.Release()
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() != 0 || wins.Load() == 0 {
		t.Fatalf("%d of %d claims overlapped another holder or held a removed file, want none", overlaps.Load(), wins.Load())
	}
}

// FuzzRead checks that any pid file content reads without panic as a pid of 0 (none)
// or the positive number the file holds.
func FuzzRead(f *testing.F) {
	for _, s := range []string{"123\n", "", "0", "-5", "abc", "99999999999999999999", " 42 ", "+7"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(dir, "node.pid")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := Read(path)
		if err != nil || !st.Exists || st.Running {
			t.Fatalf("Read(%q) = %+v, %v; want an existing, stale file", content, st, err)
		}
		if st.PID < 0 || st.PID > 0 && len(content) >= 64 {
			t.Fatalf("Read(%q) = pid %d", content, st.PID)
		}
		if st.PID > 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(string(content))); err != nil || n != st.PID {
				t.Fatalf("Read(%q) = pid %d, want what the file says (%d, %v)", content, st.PID, n, err)
			}
		}
	})
}
