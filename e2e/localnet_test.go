package e2e

import (
	"context"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// A 4-validator localnet, one process per validator, keeps committing with one
// validator stopped (3 of 4 hold more than 2/3 of the power), and the stopped one
// catches up when restarted.
func TestLocalnetSurvivesOneStoppedValidator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 validator processes; skipped with -short")
	}
	dir := node.TempHome(t)
	kiln(t, "localnet", "init", "--validators", "4", "--dir", dir, "--block-time", "300ms", "--chain-id", "ln-1")
	ln, err := node.LoadLocalnet(dir)
	if err != nil {
		t.Fatal(err)
	}
	start := exec.Command(kilnBin, "localnet", "start", "--dir", dir)
	logf, _ := os.Create(filepath.Join(dir, "localnet.log"))
	start.Stdout, start.Stderr = logf, logf
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start.Process.Signal(syscall.SIGTERM)
		start.Wait()
		logf.Close()
	})
	clients := make([]*client.Client, len(ln.Nodes))
	for i, n := range ln.Nodes {
		clients[i], _ = client.New(n.RPC)
	}
	// 90 s: four CometBFT processes start, dial each other and agree on 3 blocks on a
	// 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i, c := range clients {
		if err := c.WaitHeight(ctx, 3); err != nil {
			t.Fatalf("node%d did not reach height 3: %v\n%s", i, err, tail(filepath.Join(ln.Nodes[i].Home, "node.log")))
		}
	}

	// Stop node3 (SIGTERM to the pid localnet start recorded).
	victim := ln.Nodes[3]
	pidB, err := os.ReadFile(filepath.Join(victim.Home, "node.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidB)))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ { // wait for it to exit (well under a second normally)
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stoppedAt, _ := clients[0].Status(ctx)

	// The other three go on: a transfer commits and the height advances.
	kr, _ := keyring.Open(ln.Nodes[0].Home, keyring.BackendTest, nil)
	devKey, dev, err := kr.PrivKey(node.DevKeyName)
	if err != nil {
		t.Fatal(err)
	}
	to := ln.Nodes[1].Operator
	if _, err := clients[0].Send(ctx, ed25519.PrivateKey(devKey), client.SignOptions{},
		&bank.MsgSend{From: dev.Address, To: to, Amount: types.Coins{types.NewCoin("ukiln", 777)}}); err != nil {
		t.Fatalf("transfer with one validator down: %v", err)
	}
	if err := clients[1].WaitHeight(ctx, stoppedAt.Height+5); err != nil {
		t.Fatalf("chain stalled with one of four validators stopped: %v", err)
	}

	// Restart node3 by hand; it catches up with the others.
	p := startNode(t, victim.Home, victim.RPC, victim.P2P)
	target, _ := clients[0].Status(ctx)
	if err := clients[3].WaitHeight(ctx, target.Height); err != nil {
		t.Fatalf("restarted node3 did not catch up to %d: %v\n%s", target.Height, err, tail(filepath.Join(victim.Home, "node.log")))
	}
	// node3's state (replayed from the others' blocks) matches node0's: the transfer is
	// there, with the proposer's fee share on top of it.
	bal3, err := clients[3].Balances(ctx, to)
	bal0, err0 := clients[0].Balances(ctx, to)
	if err != nil || err0 != nil || len(bal3) == 0 || bal3[0].Amount < 1_000_000_000+777 || bal3.String() != bal0.String() {
		t.Fatalf("after catching up node3 sees %v (%v), node0 sees %v (%v)", bal3, err, bal0, err0)
	}
	p.term(t)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
