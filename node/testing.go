package node

import (
	"fmt"
	"net"
	"os"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LoopbackAddrs returns fresh tcp:// RPC and P2P listen addresses on loopback.
func LoopbackAddrs() (rpc, p2p string, err error) {
	r, err := FreePort()
	if err != nil {
		return "", "", err
	}
	p, err := FreePort()
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("tcp://127.0.0.1:%d", r), fmt.Sprintf("tcp://127.0.0.1:%d", p), nil
}

// TempHome returns a fresh directory removed when the test ends. Unlike t.TempDir it
// tolerates files CometBFT's background routines write while the node shuts down.
func TempHome(tb interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "kiln-home-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for i := 0; i < 5 && os.RemoveAll(d) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return d
}
