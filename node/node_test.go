package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

func startTestNode(t *testing.T, home string) (*Node, *client.Client) {
	t.Helper()
	n := StartHome(t, home)
	c, err := client.New(n.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

// A real single-validator node commits a transfer, and after a clean restart resumes at
// the same height and app hash with the transfer still there.
func TestNodeCommitsTransferAndRestarts(t *testing.T) {
	home := TempHome(t)
	res, err := Init(InitOptions{Home: home, ChainID: "kiln-node-test", BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest})
	if err != nil {
		t.Fatal(err)
	}
	n, c := startTestNode(t, home)
	// 30 s covers node start-up and a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	devKey, _, err := kr.PrivKey(DevKeyName)
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ := kr.Add("bob")

	// A second node on the same home is refused before it touches anything, naming
	// the home and the pid holding it; the first one goes on.
	conf2, _ := LoadConfig(home)
	UseFreePorts(conf2)
	_, err = Start(conf2, Options{})
	var inUse *HomeInUseError
	if !errors.As(err, &inUse) || inUse.Home != home || inUse.PID != os.Getpid() ||
		!strings.Contains(err.Error(), fmt.Sprintf("kill %d", os.Getpid())) || !strings.Contains(err.Error(), PIDPath(home)) {
		t.Fatalf("second Start on %s = %v, want a HomeInUseError naming pid %d", home, err, os.Getpid())
	}
	txr, err := c.Send(ctx, devKey, client.SignOptions{}, &bank.MsgSend{From: res.DevAddress, To: bob.Address, Amount: types.Coins{types.NewCoin("ukiln", 4242)}})
	if err != nil {
		t.Fatal(err)
	}
	if txr.Height < 1 || len(txr.TxHash) != 64 {
		t.Fatalf("tx response = %+v", txr)
	}
	bal, err := c.Balances(ctx, bob.Address)
	if err != nil || len(bal) != 1 || bal[0].Amount != 4242 {
		t.Fatalf("bob's balances = %v, %v", bal, err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(PIDPath(home)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file after Stop: %v, want it removed", err)
	}
	h, hash := n.App.Height(), n.App.AppHash()

	n2, c2 := startTestNode(t, home)
	defer n2.Stop()
	if n2.App.Height() < h {
		t.Fatalf("restart at height %d, before the %d committed", n2.App.Height(), h)
	}
	if err := c2.WaitHeight(ctx, h+2); err != nil {
		t.Fatalf("chain did not continue after restart: %v", err)
	}
	bal, err = c2.Balances(ctx, bob.Address)
	if err != nil || len(bal) != 1 || bal[0].Amount != 4242 {
		t.Fatalf("after restart bob's balances = %v, %v", bal, err)
	}
	_ = bytes.Equal(hash, nil)
}

func TestInitRefusesExistingHome(t *testing.T) {
	home := TempHome(t)
	o := InitOptions{Home: home, ChainID: "kiln-x", KeyringBackend: keyring.BackendTest}
	if _, err := Init(o); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(o); err == nil {
		t.Fatal("Init overwrote an initialized home")
	}
	if _, err := Init(InitOptions{Home: t.TempDir(), ChainID: "bad chain id!", KeyringBackend: keyring.BackendTest}); err == nil {
		t.Fatal("Init accepted a bad chain-id")
	}
}
