package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node/pidfile"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/staking"
)

// LocalnetOptions configure `kiln localnet init`.
type LocalnetOptions struct {
	Dir        string
	Validators int
	ChainID    string
	BlockTime  time.Duration
}

// LocalnetNode describes one validator of a localnet.
type LocalnetNode struct {
	Name     string        `json:"name"`
	Home     string        `json:"home"`
	RPC      string        `json:"rpc"`
	P2P      string        `json:"p2p"`
	NodeID   string        `json:"node_id"`
	Operator types.Address `json:"operator"`
}

// Localnet is the layout written to DIR/localnet.json.
type Localnet struct {
	ChainID string         `json:"chain_id"`
	Dev     types.Address  `json:"dev"`
	Nodes   []LocalnetNode `json:"nodes"`
}

// LocalnetFile is the layout file's name inside the localnet directory.
const LocalnetFile = "localnet.json"

// InitLocalnet writes N validator homes under dir (node0 … nodeN-1) sharing one
// genesis, each with its own loopback ports and every other node as a persistent peer.
// Each home's test keyring holds its operator key ("validator"); node0's also holds a
// funded "dev" key.
func InitLocalnet(o LocalnetOptions) (Localnet, error) {
	if o.Validators < 1 || o.Validators > 32 {
		return Localnet{}, fmt.Errorf("--validators %d: must be 1 to 32", o.Validators)
	}
	if !chainIDRe.MatchString(o.ChainID) {
		return Localnet{}, fmt.Errorf("chain-id %q: must be 1-49 of [a-zA-Z0-9._-]", o.ChainID)
	}
	if o.BlockTime <= 0 {
		o.BlockTime = DefaultBlockTime
	}
	if _, err := os.Stat(filepath.Join(o.Dir, LocalnetFile)); err == nil {
		return Localnet{}, fmt.Errorf("%s already holds a localnet (remove it to start over)", o.Dir)
	}
	ln := Localnet{ChainID: o.ChainID}
	g := app.DefaultGenesis()
	var pvs []cmttypes.PrivValidator
	var confs []*cfg.Config
	for i := 0; i < o.Validators; i++ {
		name := fmt.Sprintf("node%d", i)
		home := filepath.Join(o.Dir, name)
		conf := DefaultConfig(home, name, o.BlockTime)
		rpc, p2p, err := LoopbackAddrs()
		if err != nil {
			return ln, err
		}
		conf.RPC.ListenAddress, conf.P2P.ListenAddress = rpc, p2p
		pv, nk, err := writeNodeKeys(conf)
		if err != nil {
			return ln, err
		}
		kr, err := keyring.Open(home, keyring.BackendTest, nil)
		if err != nil {
			return ln, err
		}
		op, _, err := kr.Add("validator")
		if err != nil {
			return ln, err
		}
		if i == 0 {
			dev, _, err := kr.Add(DevKeyName)
			if err != nil {
				return ln, err
			}
			ln.Dev = dev.Address
			g.Bank.Balances = append(g.Bank.Balances, bank.GenesisBalance{Address: dev.Address, Coins: types.Coins{types.NewCoin(types.NativeDenom, DevFunds)}})
		}
		g.Bank.Balances = append(g.Bank.Balances, bank.GenesisBalance{Address: op.Address, Coins: types.Coins{types.NewCoin(types.NativeDenom, 1_000_000_000)}})
		g.Staking.Validators = append(g.Staking.Validators, staking.GenesisValidator{Operator: op.Address, ConsPubKey: pv.Key.PubKey.Bytes(), Moniker: name, Tokens: ValidatorStake})
		pvs = append(pvs, pv)
		confs = append(confs, conf)
		ln.Nodes = append(ln.Nodes, LocalnetNode{Name: name, Home: home, RPC: rpc, P2P: p2p, NodeID: string(nk.ID()), Operator: op.Address})
	}
	for i, conf := range confs {
		var peers []string
		for j, n := range ln.Nodes {
			if j != i {
				peers = append(peers, n.NodeID+"@"+strings.TrimPrefix(n.P2P, "tcp://"))
			}
		}
		conf.P2P.PersistentPeers = strings.Join(peers, ",")
		if err := WriteGenesis(conf.GenesisFile(), o.ChainID, g, pvs); err != nil {
			return ln, err
		}
		cfg.WriteConfigFile(filepath.Join(conf.RootDir, "config", "config.toml"), conf)
	}
	b, _ := json.MarshalIndent(ln, "", "  ")
	return ln, os.WriteFile(filepath.Join(o.Dir, LocalnetFile), b, 0o644)
}

// LoadLocalnet reads DIR/localnet.json.
func LoadLocalnet(dir string) (Localnet, error) {
	var ln Localnet
	b, err := os.ReadFile(filepath.Join(dir, LocalnetFile))
	if err != nil {
		return ln, fmt.Errorf("%s: %w (run `kiln localnet init --dir %s` first)", dir, err, dir)
	}
	if err := json.Unmarshal(b, &ln); err != nil {
		return ln, fmt.Errorf("%s: %w", filepath.Join(dir, LocalnetFile), err)
	}
	return ln, nil
}

// StartLocalnet runs every node of the localnet in dir as a separate `BIN node`
// process (logs appended to HOME/node.log; each node holds HOME/node.pid while it runs)
// until ctx ends, then stops them with SIGTERM. It refuses to start if a node of the
// localnet already runs. A node that exits (say, stopped by hand to test fault
// tolerance) is reported on status and not restarted; StartLocalnetNode restarts it.
func StartLocalnet(ctx context.Context, bin, dir string, status io.Writer) error {
	ln, err := LoadLocalnet(dir)
	if err != nil {
		return err
	}
	for _, n := range ln.Nodes {
		st, err := pidfile.Read(PIDPath(n.Home))
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if st.Running {
			return fmt.Errorf("%s already runs (pid %d, %s): stop it first (kill %d), or start the other nodes one by one with --node N", n.Name, st.PID, PIDPath(n.Home), st.PID)
		}
	}
	var wg sync.WaitGroup
	var procs []*exec.Cmd
	for i, n := range ln.Nodes {
		c, logf, err := nodeCommand(bin, n, &syscall.SysProcAttr{Setpgid: true})
		if err != nil {
			stopAll(procs)
			return err
		}
		if err := c.Start(); err != nil {
			logf.Close()
			stopAll(procs)
			return fmt.Errorf("start %s: %w", n.Name, err)
		}
		fmt.Fprintf(status, "%s: pid %d, rpc %s, home %s\n", n.Name, c.Process.Pid, n.RPC, n.Home)
		procs = append(procs, c)
		wg.Add(1)
		go func(i int, n LocalnetNode, c *exec.Cmd, logf *os.File) {
			defer wg.Done()
			err := c.Wait()
			logf.Close()
			if ctx.Err() == nil {
				fmt.Fprintf(status, "%s exited: %v (restart it with: kiln localnet start --dir %s --node %d)\n", n.Name, err, dir, i)
			}
		}(i, n, c, logf)
	}
	<-ctx.Done()
	stopAll(procs)
	wg.Wait()
	return nil
}

// nodeCommand returns the `BIN node` command of n with its output appended to
// HOME/node.log.
func nodeCommand(bin string, n LocalnetNode, attr *syscall.SysProcAttr) (*exec.Cmd, *os.File, error) {
	logf, err := os.OpenFile(filepath.Join(n.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	c := exec.Command(bin, "node", "--home", n.Home)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = attr
	return c, logf, nil
}

// Started is a node StartLocalnetNode started.
type Started struct {
	LocalnetNode
	PID int    `json:"pid"`
	Log string `json:"log"`
	// StalePID is the pid a stale pid file named (its process was gone), 0 if none.
	StalePID int `json:"stale_pid,omitempty"`
}

// nodeStartTimeout bounds how long StartLocalnetNode waits for a node to take its home
// and open its RPC port: opening the state and CometBFT's handshake replay take a few
// seconds on a loaded 2-core machine.
const nodeStartTimeout = 60 * time.Second

// StartLocalnetNode starts node index of the localnet in dir as a detached `BIN node`
// process (its own session, so it outlives the caller and the terminal; output
// appended to HOME/node.log) and returns once it holds its pid file and its RPC port
// answers. A node already running is refused; a stale pid file (its process gone) is
// not trusted, and the new node replaces it. If the node exits first, the error
// carries the end of its log.
func StartLocalnetNode(ctx context.Context, bin, dir string, index int) (Started, error) {
	ln, err := LoadLocalnet(dir)
	if err != nil {
		return Started{}, err
	}
	if index < 0 || index >= len(ln.Nodes) {
		return Started{}, fmt.Errorf("--node %d: the localnet in %s has nodes 0 to %d", index, dir, len(ln.Nodes)-1)
	}
	n := ln.Nodes[index]
	st, err := pidfile.Read(PIDPath(n.Home))
	if err != nil {
		return Started{}, fmt.Errorf("%s: %w", n.Name, err)
	}
	if st.Running {
		return Started{}, fmt.Errorf("%s already runs (pid %d, %s): stop it first (kill %d)", n.Name, st.PID, PIDPath(n.Home), st.PID)
	}
	s := Started{LocalnetNode: n, Log: filepath.Join(n.Home, "node.log"), StalePID: st.PID}
	c, logf, err := nodeCommand(bin, n, &syscall.SysProcAttr{Setsid: true})
	if err != nil {
		return s, err
	}
	defer logf.Close() // the child has its own descriptor
	if err := c.Start(); err != nil {
		return s, fmt.Errorf("start %s: %w", n.Name, err)
	}
	s.PID = c.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	rpcAddr := strings.TrimPrefix(n.RPC, "tcp://")
	deadline := time.NewTimer(nodeStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return s, fmt.Errorf("%s exited at start (%v); the end of %s:\n%s", n.Name, err, s.Log, logTail(s.Log, 1500))
		case <-ctx.Done():
			c.Process.Signal(syscall.SIGTERM)
			return s, fmt.Errorf("start %s: %w", n.Name, ctx.Err())
		case <-deadline.C:
			return s, fmt.Errorf("%s (pid %d) did not open its RPC port %s within %v; see %s", n.Name, s.PID, rpcAddr, nodeStartTimeout, s.Log)
		case <-tick.C:
			if now, err := pidfile.Read(PIDPath(n.Home)); err != nil || !now.Running || now.PID != s.PID {
				continue
			}
			if conn, err := net.DialTimeout("tcp", rpcAddr, time.Second); err == nil {
				conn.Close()
				return s, nil
			}
		}
	}
}

// logTail returns about the last n bytes of the file at path, from a line start.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}

func stopAll(procs []*exec.Cmd) {
	for _, c := range procs {
		if c.ProcessState == nil {
			c.Process.Signal(syscall.SIGTERM)
		}
	}
	done := make(chan struct{})
	go func() {
		for _, c := range procs {
			for i := 0; i < 100 && c.ProcessState == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a clean stop takes well under a second
		for _, c := range procs {
			c.Process.Kill()
		}
	}
}
