// Package ports picks TCP ports ahead of a bind, for the few places where a port must
// be written down before the program that binds it starts, and recognises the
// "address already in use" that follows when another program took the port in between.
//
// Anything that can bind port 0 and report the address it got must do that instead:
// a port picked here is free when Pick returns and anyone's a moment later.
package ports

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
)

// Attempts bounds how many times a start is tried, with fresh ports each time, when
// a port picked ahead turns out to be taken: a port is lost only to a program that
// binds it within the moment between the pick and the bind, so losing five in a row
// means something binds every port it can and retrying further will not help.
const Attempts = 5

// Pick returns n distinct TCP ports that nothing listened on at host (an IP address,
// "127.0.0.1" for loopback). It holds every port until the last is chosen, so the n
// ports differ from each other, and releases them all before it returns.
func Pick(host string, n int) ([]int, error) {
	if n < 1 || n > 1024 {
		return nil, fmt.Errorf("pick %d ports: must be 1 to 1024", n)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("pick ports on %q: not an IP address", host)
	}
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	out := make([]int, 0, n)
	for len(out) < n {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("pick a port on %s: %w", host, err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Free reports whether a TCP listener could bind host:port right now; err says why
// not. It is a hint, with the same race as Pick, used to move off a port that is
// already known to be taken before starting anything on it.
func Free(host string, port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

// InUse reports whether err says a listen failed because its address was taken
// (EADDRINUSE), also when a library flattened the error into text.
func InUse(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, syscall.EADDRINUSE) || InUseText(err.Error())
}

// InUseText reports whether s, the text of an error or a log, carries the system's
// "address already in use" message.
func InUseText(s string) bool {
	return strings.Contains(s, syscall.EADDRINUSE.Error())
}
