package e2e

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

type nodeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	rpc  string // the RPC address the node bound, from its log
}

// runningRe finds the node's start line in its log, with the RPC address it bound.
var runningRe = regexp.MustCompile(`msg="kiln node running" .*\brpc=(\S+)`)

// startNode runs `kiln node` on home with RPC and P2P on free loopback ports that the
// node binds itself (nothing picked ahead for another program to take), and waits
// until it logs the RPC address it got.
func startNode(t *testing.T, home string, extra ...string) *nodeProc {
	t.Helper()
	logPath := filepath.Join(home, "node.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := logf.Stat()
	from := st.Size()
	args := append([]string{"node", "--home", home, "--rpc.laddr", node.AnyLoopbackPort, "--p2p.laddr", node.AnyLoopbackPort, "--check-invariants"}, extra...)
	cmd := exec.Command(kilnBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	// 40 s covers a start with handshake replay on a loaded 2-core machine.
	deadline := time.Now().Add(40 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) >= from {
			if m := runningRe.FindSubmatch(b[from:]); m != nil {
				p.rpc = string(m[1])
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("kiln node exited before it ran:\n%s", tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln node did not log its start in 40 s:\n%s", tail(logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *nodeProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *nodeProc) term(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second): // a clean stop takes well under a second
		t.Fatal("node did not stop on SIGTERM")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("node exited %d on SIGTERM", code)
	}
}

// A node killed with SIGKILL at random moments, while transfers are being committed,
// restarts every time with no committed transfer lost and the chain continuing.
func TestSIGKILLLosesNoCommittedTx(t *testing.T) {
	rounds := 20
	if s := os.Getenv("KILN_KILL_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	home := node.TempHome(t)
	kiln(t, "init", "--home", home, "--chain-id", "crash-1", "--keyring-backend", "test", "--block-time", "150ms")
	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	devKey, dev, err := kr.PrivKey(node.DevKeyName)
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ := kr.Add("bob")
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	var committed, inflight uint64 // ukiln sent to bob in committed txs / in txs whose fate is unknown
	var lastHeight int64
	for round := 0; round < rounds; round++ {
		p := startNode(t, home)
		c, err := client.New(p.rpc)
		if err != nil {
			t.Fatal(err)
		}
		// 40 s covers a restart with handshake replay on a loaded machine.
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		// lastHeight is the app's height at the kill. CometBFT's block store may be
		// one block ahead (replayed at the handshake) and its WAL may hold the
		// proposal for the block after that, which may carry a tx in doubt: once
		// the app has committed lastHeight+2, every tx in doubt is settled (the
		// mempool does not survive the kill).
		if err := c.WaitHeight(ctx, lastHeight+2); err != nil {
			cancel()
			t.Fatalf("round %d: node did not come back past height %d: %v\n%s", round, lastHeight, err, tail(filepath.Join(home, "node.log")))
		}
		bal := balance(t, ctx, c, bob.Address)
		if bal < committed || bal > committed+inflight {
			cancel()
			t.Fatalf("round %d: bob has %d ukiln; committed txs sent %d, with %d in doubt", round, bal, committed, inflight)
		}
		committed, inflight = bal, 0 // every tx in doubt is now settled one way or the other
		acc, _, err := c.Account(ctx, dev.Address)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		seq := acc.Sequence
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		gr := rand.New(rand.NewSource(r.Int63())) // the sender's own source: rand.Rand is not safe to share
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				amt := uint64(1 + gr.Intn(1000))
				s := seq
				mu.Lock()
				inflight += amt
				mu.Unlock()
				_, err := c.Send(ctx, ed25519.PrivateKey(devKey), client.SignOptions{ChainID: "crash-1", Sequence: &s},
					&bank.MsgSend{From: dev.Address, To: bob.Address, Amount: types.Coins{types.NewCoin("ukiln", amt)}})
				mu.Lock()
				var te *client.TxError
				switch {
				case err == nil:
					committed += amt
					inflight -= amt
					seq++
				case errors.As(err, &te):
					inflight -= amt // refused: it changed nothing
				}
				mu.Unlock()
				if err != nil {
					return // the node is gone (or refused); stop until the next round
				}
			}
		}()
		time.Sleep(time.Duration(r.Intn(1500)) * time.Millisecond)
		p.kill()
		close(stop)
		wg.Wait()
		cancel()
		st, _ := readHeight(home)
		if st > lastHeight {
			lastHeight = st
		}
	}
	// A final clean run: the chain goes on and the balance is exactly what was committed
	// (within what was in doubt at the last kill).
	p := startNode(t, home)
	c, err := client.New(p.rpc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, lastHeight+3); err != nil {
		t.Fatalf("chain did not continue after %d kills: %v", rounds, err)
	}
	if bal := balance(t, ctx, c, bob.Address); bal < committed || bal > committed+inflight {
		t.Fatalf("after %d kills bob has %d, committed %d (+%d in doubt)", rounds, bal, committed, inflight)
	}
	if committed == 0 {
		t.Fatal("no transfer was ever committed; the test proved nothing")
	}
	p.term(t)
}

func balance(t *testing.T, ctx context.Context, c *client.Client, a types.Address) uint64 {
	t.Helper()
	var bals types.Coins
	var err error
	for i := 0; i < 50; i++ { // the RPC may answer status before queries during start-up
		if bals, err = c.Balances(ctx, a); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bals {
		if b.Denom == "ukiln" {
			return b.Amount
		}
	}
	return 0
}

// readHeight reads the last height the app committed, from its state database (the
// node is stopped).
func readHeight(home string) (int64, error) {
	conf, err := node.LoadConfig(home)
	if err != nil {
		return 0, err
	}
	db, err := openState(conf)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return db.Height(), nil
}
