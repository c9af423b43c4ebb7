package node

import (
	"context"
	"os"
	"time"

	"github.com/kiln-network/kiln/keyring"
)

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

// StartTestNode initializes a single-validator home for chainID (100 ms blocks, a
// test keyring with the funded dev key), starts its node on free ports, stopped when
// the test ends, and waits until it has committed height 2.
func StartTestNode(tb interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}, chainID string) (*Node, InitResult, string) {
	tb.Helper()
	home := TempHome(tb)
	res, err := Init(InitOptions{Home: home, ChainID: chainID, BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest})
	if err != nil {
		tb.Fatal(err)
	}
	n := StartHome(tb, home)
	return n, res, home
}

// StartHome starts the node of an initialized home on free ports, stopped when the
// test ends, and waits until it has committed height 2.
func StartHome(tb interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}, home string) *Node {
	tb.Helper()
	conf, err := LoadConfig(home)
	if err != nil {
		tb.Fatal(err)
	}
	UseFreePorts(conf)
	n, err := Start(conf, Options{CheckInvariants: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Stop() })
	// 30 s covers node start-up and a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n.App.Height() < 2 {
		select {
		case <-ctx.Done():
			tb.Fatal("the node did not commit height 2 within 30 s")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return n
}
