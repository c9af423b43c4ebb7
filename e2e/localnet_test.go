package e2e

import (
	"context"
	"crypto/ed25519"
	"fmt"
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

	// Stop node3 (SIGTERM to the pid in its pid file); it removes its pid file.
	victim := ln.Nodes[3]
	pid := readPID(t, victim.Home)
	stopPID(t, pid, syscall.SIGTERM)
	if _, err := os.Stat(node.PIDPath(victim.Home)); !os.IsNotExist(err) {
		t.Fatalf("node3's pid file after SIGTERM: %v, want it removed", err)
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

	// Restart node3 as README says: detached, logging to its node.log.
	logBefore, _ := os.Stat(filepath.Join(victim.Home, "node.log"))
	out := kiln(t, "localnet", "start", "--dir", dir, "--node", "3")
	pid = readPID(t, victim.Home)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if want := fmt.Sprintf("node3: pid %d", pid); !strings.Contains(out, want) {
		t.Fatalf("localnet start --node 3 printed %q, want %q", out, want)
	}
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
	if logAfter, _ := os.Stat(filepath.Join(victim.Home, "node.log")); logAfter == nil || logBefore == nil || logAfter.Size() <= logBefore.Size() {
		t.Fatalf("the restarted node3 did not log to its node.log")
	}

	// A node already running is not started twice: localnet start and kiln node both
	// refuse, naming the pid, and exit 1.
	for _, args := range [][]string{{"localnet", "start", "--dir", dir, "--node", "3"}, {"node", "--home", victim.Home}} {
		code, stdout, stderr := run(t, args...)
		if want := fmt.Sprintf("kill %d", pid); code != 1 || stdout != "" || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("kiln %v with node3 running: exit %d, stdout %q, stderr %q; want exit 1 and one line saying %q", args, code, stdout, stderr, want)
		}
	}

	// Killed with SIGKILL, node3 leaves its pid file behind; the next start sees that
	// its process is gone and replaces it.
	stopPID(t, pid, syscall.SIGKILL)
	if b, err := os.ReadFile(node.PIDPath(victim.Home)); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("pid file after SIGKILL = %q, %v; want the dead pid %d", b, err, pid)
	}
	out = kiln(t, "localnet", "start", "--dir", dir, "--node", "3")
	stale := pid
	pid = readPID(t, victim.Home)
	if pid == stale || !strings.Contains(out, fmt.Sprintf("replaced a stale pid file (pid %d is gone)", stale)) {
		t.Fatalf("localnet start --node 3 over a stale pid file (pid %d) printed %q; pid file names %d", stale, out, pid)
	}
	if err := clients[3].WaitHeight(ctx, target.Height+3); err != nil {
		t.Fatalf("node3 restarted over a stale pid file does not follow the chain: %v", err)
	}
	stopPID(t, pid, syscall.SIGTERM)
}

// readPID returns the pid in a node home's pid file.
func readPID(t *testing.T, home string) int {
	t.Helper()
	b, err := os.ReadFile(node.PIDPath(home))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %q", node.PIDPath(home), b)
	}
	return pid
}

// stopPID sends sig to pid and waits until the process is gone.
func stopPID(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
	// 20 s: a clean stop takes well under a second.
	for deadline := time.Now().Add(20 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs 20 s after %v", pid, sig)
		}
	}
}

// alive reports whether pid runs. NB: a detached node's parent is gone, so whether it
// is reaped at once depends on who adopts it; a zombie counts as gone.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name in parentheses, which may hold spaces.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
