package ports

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestPickGivesDistinctFreePorts(t *testing.T) {
	got, err := Pick("127.0.0.1", 64)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range got {
		if p < 1 || p > 65535 || seen[p] {
			t.Fatalf("Pick(127.0.0.1, 64) = %v: port %d repeated or out of range", got, p)
		}
		seen[p] = true
		if err := Free("127.0.0.1", p); err != nil {
			t.Errorf("Free(127.0.0.1, %d) right after Pick = %v, want nil", p, err)
		}
	}
}

func TestPickRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		host string
		n    int
	}{
		{"127.0.0.1", 0},
		{"127.0.0.1", -1},
		{"127.0.0.1", 1025},
		{"localhost", 1},
		{"", 1},
		{"127.0.0.1:80", 1},
	} {
		if got, err := Pick(tc.host, tc.n); err == nil {
			t.Errorf("Pick(%q, %d) = %v, want an error", tc.host, tc.n, got)
		}
	}
}

func TestInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	_, bindErr := net.Listen("tcp", held.Addr().String())
	if bindErr == nil {
		t.Fatalf("second listen on %s succeeded", held.Addr())
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"the bind error", bindErr, true},
		{"wrapped", fmt.Errorf("start CometBFT node: %w", bindErr), true},
		{"flattened into text", fmt.Errorf("failed to listen on 127.0.0.1:%d: %v", port, bindErr), true},
		{"Free on the held port", Free("127.0.0.1", port), true},
		{"another error", errors.New("connection refused"), false},
		{"a bad address", func() error { _, err := net.Listen("tcp", "127.0.0.1:99999"); return err }(), false},
	} {
		if got := InUse(tc.err); got != tc.want {
			t.Errorf("InUse(%s: %v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
