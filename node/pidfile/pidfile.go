// Package pidfile claims a directory for one process with a pid file that also holds
// an advisory lock.
//
// The lock (flock) is what says whether the owner runs: the kernel drops it when the
// process ends, however it ends, so a pid file left behind by a killed process is
// told apart from a live one without trusting the pid in it (which the system may
// have given to another process since).
package pidfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is matched (errors.Is) by the *LockedError Acquire returns when another
// process holds the pid file.
var ErrLocked = errors.New("locked by another process")

// LockedError says which pid file is held, and by which pid if the file names one.
type LockedError struct {
	Path string
	// PID is the pid written in the file; 0 if it holds none yet.
	PID int
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%s is locked by another process", e.Path)
	}
	return fmt.Sprintf("%s is locked by process %d", e.Path, e.PID)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// File is a held pid file.
type File struct {
	f    *os.File
	path string
}

// busyRetries: a Read of the file takes a shared lock for an instant; Acquire retries
// a little before it believes the file is held.
const (
	busyRetries = 5
	busyWait    = 20 * time.Millisecond
)

// Acquire creates path (or takes over a stale one), locks it and writes the calling
// process's pid in it. It returns a *LockedError if a live process holds it. The lock
// is per open file, so a second Acquire of the same path in the same process fails
// too.
func Acquire(path string) (*File, error) {
	busy := 0
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open pid file: %w", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := readPID(f)
			f.Close()
			if busy++; busy <= busyRetries {
				time.Sleep(busyWait)
				continue
			}
			return nil, &LockedError{Path: path, PID: pid}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock pid file %s: %w", path, err)
		}
		// NB: the owner removes the file before it lets the lock go (Release), so a
		// lock won on a file that is no longer at path is worthless: open it again.
		if !samePath(f, path) {
			f.Close()
			continue
		}
		b := []byte(strconv.Itoa(os.Getpid()) + "\n")
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("write pid file %s: %w", path, err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("write pid file %s: %w", path, err)
		}
		return &File{f: f, path: path}, nil
	}
}

func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// readPID returns the pid f holds: a positive decimal and white space, under 64 bytes;
// 0 for anything else.
func readPID(f *os.File) int {
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	if n == len(b) {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Path returns the pid file's path.
func (p *File) Path() string { return p.path }

// Release removes the pid file and then drops its lock. It is safe to call twice.
func (p *File) Release() error {
	if p == nil || p.f == nil {
		return nil
	}
	err := os.Remove(p.path)
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f = nil
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// State is what Read finds at a pid file's path.
type State struct {
	// Exists is false when there is no pid file.
	Exists bool
	// Running is true when a live process holds the file's lock.
	Running bool
	// PID is the pid the file names (0: none). With Running false it is stale: that
	// process is gone, or the pid was written by one that never took the lock.
	PID int
}

// Read reports whether the pid file at path is held by a live process, without
// taking it over.
func Read(path string) (State, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read pid file: %w", err)
	}
	defer f.Close()
	st := State{Exists: true, PID: readPID(f)}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		st.Running = true
	case err != nil:
		return st, fmt.Errorf("probe pid file %s: %w", path, err)
	default:
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	}
	return st, nil
}
