package e2e

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
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
	startLocalnet(t, dir)
	// 90 s: four CometBFT processes start, dial each other and agree on 3 blocks on a
	// 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ln, clients := waitLocalnet(t, ctx, dir, 3)

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

// A port written at `localnet init` and taken by another program before `localnet
// start` (the race made certain: the test holds it) is replaced by a fresh one: the
// node starts on it, says so, and the configs and localnet.json follow, so that the
// validators find each other and commit.
func TestLocalnetMovesTakenPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts validator processes; skipped with -short")
	}
	dir := node.TempHome(t)
	kiln(t, "localnet", "init", "--validators", "2", "--dir", dir, "--block-time", "300ms", "--chain-id", "ln-ports")
	before, err := node.LoadLocalnet(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Another program takes node0's RPC port and node1's P2P port.
	var held []string
	for _, addr := range []string{before.Nodes[0].RPC, before.Nodes[1].P2P} {
		l, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
		if err != nil {
			t.Fatalf("hold %s: %v", addr, err)
		}
		t.Cleanup(func() { l.Close() })
		held = append(held, addr)
	}
	logPath := startLocalnet(t, dir)
	// 60 s: two CometBFT processes start (one or two of them twice), dial each other
	// and agree on 3 blocks on a 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	after, _ := waitLocalnet(t, ctx, dir, 3)
	if after.Nodes[0].RPC == held[0] || after.Nodes[1].P2P == held[1] {
		t.Fatalf("localnet.json still names the taken ports %v: %+v", held, after.Nodes)
	}
	for i, n := range after.Nodes {
		conf, err := node.LoadConfig(n.Home)
		if err != nil {
			t.Fatal(err)
		}
		if conf.RPC.ListenAddress != n.RPC || conf.P2P.ListenAddress != n.P2P {
			t.Errorf("node%d config.toml listens on rpc %s p2p %s, localnet.json says %s %s", i, conf.RPC.ListenAddress, conf.P2P.ListenAddress, n.RPC, n.P2P)
		}
		other := after.Nodes[1-i]
		if want := other.NodeID + "@" + strings.TrimPrefix(other.P2P, "tcp://"); conf.P2P.PersistentPeers != want {
			t.Errorf("node%d persistent_peers = %q, want %q", i, conf.P2P.PersistentPeers, want)
		}
	}
	b, _ := os.ReadFile(logPath)
	if got := strings.Count(string(b), "another program took its port"); got != 2 {
		t.Errorf("localnet start said %d times that a port was taken, want 2:\n%s", got, b)
	}
}

// startLocalnet runs `kiln localnet start` on dir until the test ends, its output in
// DIR/localnet.log, whose path it returns.
func startLocalnet(t *testing.T, dir string) string {
	t.Helper()
	start := exec.Command(kilnBin, "localnet", "start", "--dir", dir)
	logPath := filepath.Join(dir, "localnet.log")
	logf, _ := os.Create(logPath)
	start.Stdout, start.Stderr = logf, logf
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start.Process.Signal(syscall.SIGTERM)
		start.Wait()
		logf.Close()
	})
	return logPath
}

// waitLocalnet waits until every node of the localnet in dir has reached height,
// reading localnet.json afresh each time: `localnet start` rewrites it when it moves a
// node off a taken port.
func waitLocalnet(t *testing.T, ctx context.Context, dir string, height int64) (node.Localnet, []*client.Client) {
	t.Helper()
	for {
		ln, err := node.LoadLocalnet(dir)
		if err != nil {
			t.Fatal(err)
		}
		clients := make([]*client.Client, len(ln.Nodes))
		behind := -1
		for i, n := range ln.Nodes {
			if clients[i], err = client.New(n.RPC); err != nil {
				t.Fatal(err)
			}
			if behind >= 0 {
				continue
			}
			// 2 s: a status answer takes milliseconds; a port that another program holds
			// (before localnet start moves the node off it) never answers.
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if st, err := clients[i].Status(sctx); err != nil || st.Height < height {
				behind = i
			}
			cancel()
		}
		if behind < 0 {
			return ln, clients
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(filepath.Join(dir, "localnet.log"))
			t.Fatalf("node%d did not reach height %d: %v\nlocalnet start:\n%s\nnode%d:\n%s", behind, height, ctx.Err(), b,
				behind, tail(filepath.Join(ln.Nodes[behind].Home, "node.log")))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
