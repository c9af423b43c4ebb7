// Package netns creates, enters and removes Linux network namespaces.
//
// Named namespaces live under RunDir (as `ip netns add` makes them); Do runs a
// function with the calling goroutine's thread inside any namespace given by
// path (a RunDir entry or /proc/PID/ns/net). Sockets, TUN devices and child
// processes created inside Do belong to that namespace for their whole life.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// RunDir is where `ip netns` keeps named namespaces.
const RunDir = "/run/netns"

// Available says why namespaces cannot be made here, or "" when they can.
func Available() string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip (iproute2) is not installed"
	}
	return ""
}

// Path returns where the named namespace is mounted.
func Path(name string) string { return filepath.Join(RunDir, name) }

// Add creates the named namespace with its loopback up and returns its path.
// It is idempotent: an existing namespace of that name is kept and returned.
func Add(name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	p := Path(name)
	if Exists(p) {
		return p, nil
	}
	if err := IP("netns", "add", name); err != nil {
		// NB: two callers may race to add the same name; the loser sees "File exists".
		if Exists(p) {
			return p, nil
		}
		return "", err
	}
	if err := IP("-n", name, "link", "set", "lo", "up"); err != nil {
		_ = Delete(name)
		return "", err
	}
	return p, nil
}

// Delete removes the named namespace and every link in it. A namespace that
// does not exist is not an error.
func Delete(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if !Exists(Path(name)) {
		return nil
	}
	if err := IP("netns", "del", name); err != nil && Exists(Path(name)) {
		return err
	}
	return nil
}

// List returns the names of the namespaces under RunDir that start with prefix.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir(RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", RunDir, err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Exists reports whether path names a network namespace.
func Exists(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// A mounted namespace file is on nsfs; the bare file under RunDir left by
	// a failed `ip netns add` is not.
	return st.Type == unix.NSFS_MAGIC
}

// Do runs fn on a thread inside the namespace at path. fn runs on a goroutine
// of its own, locked to its thread, so the caller's thread never changes
// namespace; goroutines fn starts are not in the namespace. After fn the
// thread moves back; if it cannot, it stays locked and the runtime discards it
// with the goroutine, so no other code ever runs in the wrong namespace.
func Do(path string, fn func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", path, err))
			return // NB: still locked: the thread dies with this goroutine.
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// IP runs the ip(8) command with args in the caller's namespace (or, inside
// Do, in that one) and returns its output in the error when it fails.
func IP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." {
		return fmt.Errorf("network namespace name %q: must be 1-64 characters without '/' or spaces", name)
	}
	return nil
}
