package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
	"github.com/kiln-network/kiln/ports"
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
	// NB: every port at once, so that no two nodes (nor a node's RPC and P2P) get the
	// same one. They are written down here and bound at `localnet start`; one taken in
	// between is moved then.
	picked, err := ports.Pick(localnetHost, 2*o.Validators)
	if err != nil {
		return ln, err
	}
	g := app.DefaultGenesis()
	var pvs []cmttypes.PrivValidator
	var confs []*cfg.Config
	for i := 0; i < o.Validators; i++ {
		name := fmt.Sprintf("node%d", i)
		home := filepath.Join(o.Dir, name)
		conf := DefaultConfig(home, name, o.BlockTime)
		rpc, p2p := tcpAddr(picked[2*i]), tcpAddr(picked[2*i+1])
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
	// NB: one genesis, written once and copied: its time is the clock's second when it
	// is made, and nodes whose genesis times differ never agree on block 1.
	if err := WriteGenesis(confs[0].GenesisFile(), o.ChainID, g, pvs); err != nil {
		return ln, err
	}
	gen, err := os.ReadFile(confs[0].GenesisFile())
	if err != nil {
		return ln, err
	}
	for i, conf := range confs {
		conf.P2P.PersistentPeers = ln.peersOf(i)
		if err := os.WriteFile(conf.GenesisFile(), gen, 0o644); err != nil {
			return ln, err
		}
		cfg.WriteConfigFile(filepath.Join(conf.RootDir, "config", "config.toml"), conf)
	}
	return ln, ln.save(o.Dir)
}

// localnetHost is where localnet nodes listen.
const localnetHost = "127.0.0.1"

func tcpAddr(port int) string { return fmt.Sprintf("tcp://%s:%d", localnetHost, port) }

// peersOf is node i's persistent_peers: every other node.
func (ln Localnet) peersOf(i int) string {
	var peers []string
	for j, n := range ln.Nodes {
		if j != i {
			peers = append(peers, n.NodeID+"@"+strings.TrimPrefix(n.P2P, "tcp://"))
		}
	}
	return strings.Join(peers, ",")
}

func (ln Localnet) save(dir string) error {
	b, _ := json.MarshalIndent(ln, "", "  ")
	return writeFileAtomic(filepath.Join(dir, LocalnetFile), b)
}

// writeFileAtomic replaces path with b, never leaving it half written.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
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
//
// The ports were picked at init and written into the nodes' configs: another program
// may have taken one since. A node that fails to start because its address is
// already in use is moved to fresh ports and started again, up to ports.Attempts
// starts, saying so on status; its config.toml, every other node's persistent_peers
// and localnet.json are rewritten, so that later starts use the new ports. Nodes
// already running keep dialing the old address; the moved node dials them.
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
	var procs []*localProc
	var wg sync.WaitGroup
	for i := range ln.Nodes {
		if ctx.Err() != nil {
			break // stopped while starting: start no more
		}
		p, err := startLocalNode(ctx, bin, dir, &ln, i, status)
		if err != nil {
			stopAll(procs)
			return err
		}
		procs = append(procs, p)
		wg.Add(1)
		go func(i int, p *localProc) {
			defer wg.Done()
			<-p.done
			if ctx.Err() == nil {
				fmt.Fprintf(status, "%s exited: %v (restart it with: kiln localnet start --dir %s --node %d)\n", p.name, p.err, dir, i)
			}
		}(i, p)
	}
	<-ctx.Done()
	stopAll(procs)
	wg.Wait()
	return nil
}

// localProc is one node process of a localnet.
type localProc struct {
	name, home string
	cmd        *exec.Cmd
	logPath    string
	logFrom    int64         // the log's size when this process started
	done       chan struct{} // closed once the process exited; err is then set
	err        error
}

// spawnNode starts `BIN node` for n with its output appended to HOME/node.log: in its
// own process group (stopped with the localnet), or detached in its own session (it
// outlives the caller and the terminal).
func spawnNode(bin string, n LocalnetNode, detached bool) (*localProc, error) {
	p := &localProc{name: n.Name, home: n.Home, logPath: filepath.Join(n.Home, "node.log"), done: make(chan struct{})}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if st, err := logf.Stat(); err == nil {
		p.logFrom = st.Size()
	}
	p.cmd = exec.Command(bin, "node", "--home", n.Home)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !detached, Setsid: detached}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", n.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// logSinceStart is what the process wrote to its log, at most the last 64 KiB.
func (p *localProc) logSinceStart() string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	from := p.logFrom
	if st, err := f.Stat(); err == nil && st.Size()-from > 64<<10 {
		from = st.Size() - 64<<10
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, from, 64<<10))
	return string(b)
}

// nodeStartTimeout bounds the wait for a node's RPC to answer after its process
// started: the handshake replays blocks, on a loaded 2-core machine.
const nodeStartTimeout = 60 * time.Second

// startLocalNode starts node i and waits until its RPC answers or it exits. A node
// that exits because its address is in use is moved to fresh ports and started
// again (see StartLocalnet).
func startLocalNode(ctx context.Context, bin, dir string, ln *Localnet, i int, status io.Writer) (*localProc, error) {
	for attempt := 1; ; attempt++ {
		n := ln.Nodes[i]
		p, err := spawnNode(bin, n, false)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(status, "%s: pid %d, rpc %s, home %s\n", n.Name, p.cmd.Process.Pid, n.RPC, n.Home)
		if !waitAnswers(ctx, p, n) {
			return p, nil // running but not answering yet, or stopped: reported by StartLocalnet
		}
		select {
		case <-p.done:
		default:
			return p, nil
		}
		out := p.logSinceStart()
		if !ports.InUseText(out) {
			return p, nil // exited for another reason: reported by StartLocalnet
		}
		if attempt == ports.Attempts {
			return nil, fmt.Errorf("%s: an address was in use at each of %d starts, on fresh ports each time; last: %s", n.Name, attempt, inUseLine(out))
		}
		if err := ln.move(dir, i); err != nil {
			return nil, fmt.Errorf("%s: move to fresh ports: %w", n.Name, err)
		}
		fmt.Fprintf(status, "%s: another program took its port (%s); moved to rpc %s, p2p %s and starting again (start %d of %d)\n",
			n.Name, inUseLine(out), ln.Nodes[i].RPC, ln.Nodes[i].P2P, attempt+1, ports.Attempts)
	}
}

// waitAnswers waits until the node's RPC answers /status as this node (not some
// other program that holds the port), the process exits, ctx ends or
// nodeStartTimeout passes. It reports whether to look at the process again: false
// when the wait gave up (ctx, timeout) with the process still running.
func waitAnswers(ctx context.Context, p *localProc, n LocalnetNode) bool {
	url := "http://" + strings.TrimPrefix(n.RPC, "tcp://") + "/status"
	hc := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(nodeStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return true
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
		}
		if statusID(hc, url) == n.NodeID {
			return true
		}
	}
}

// statusID is the node ID that the CometBFT RPC at url reports, or "".
func statusID(hc *http.Client, url string) string {
	resp, err := hc.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var st struct {
		Result struct {
			NodeInfo struct {
				ID string `json:"id"`
			} `json:"node_info"`
		} `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil {
		return ""
	}
	return st.Result.NodeInfo.ID
}

// inUseLine is the line of a node's log that says an address was in use.
func inUseLine(log string) string {
	for _, l := range strings.Split(log, "\n") {
		if ports.InUseText(l) {
			return strings.TrimPrefix(strings.TrimSpace(l), "Error: ")
		}
	}
	return ""
}

// move gives node i fresh RPC and P2P ports, different from every other node's, and
// rewrites the configs and localnet.json to match.
func (ln *Localnet) move(dir string, i int) error {
	used := map[string]bool{}
	for j, n := range ln.Nodes {
		if j != i {
			used[n.RPC], used[n.P2P] = true, true
		}
	}
	var rpc, p2p string
	for try := 0; ; try++ {
		picked, err := ports.Pick(localnetHost, 2)
		if err != nil {
			return err
		}
		rpc, p2p = tcpAddr(picked[0]), tcpAddr(picked[1])
		if !used[rpc] && !used[p2p] && rpc != ln.Nodes[i].RPC && p2p != ln.Nodes[i].P2P {
			break
		}
		if try == 100 {
			return fmt.Errorf("no fresh ports on %s after 100 picks", localnetHost)
		}
	}
	ln.Nodes[i].RPC, ln.Nodes[i].P2P = rpc, p2p
	for j, n := range ln.Nodes {
		conf, err := LoadConfig(n.Home)
		if err != nil {
			return err
		}
		conf.RPC.ListenAddress, conf.P2P.ListenAddress = n.RPC, n.P2P
		conf.P2P.PersistentPeers = ln.peersOf(j)
		cfg.WriteConfigFile(filepath.Join(n.Home, "config", "config.toml"), conf)
	}
	return ln.save(dir)
}

// stopAll stops the processes with SIGTERM, and kills those still running after
// stopTimeout.
func stopAll(procs []*localProc) {
	for _, p := range procs {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(stopTimeout)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			for _, p := range procs {
				p.cmd.Process.Kill()
			}
			for _, p := range procs {
				<-p.done
			}
			return
		}
	}
}

// stopTimeout bounds a clean stop, which takes well under a second.
const stopTimeout = 10 * time.Second

// Started is a node StartLocalnetNode started.
type Started struct {
	LocalnetNode
	PID int    `json:"pid"`
	Log string `json:"log"`
	// StalePID is the pid a stale pid file named (its process was gone), 0 if none.
	StalePID int `json:"stale_pid,omitempty"`
}

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
	p, err := spawnNode(bin, n, true)
	if err != nil {
		return s, err
	}
	s.PID = p.cmd.Process.Pid
	rpcAddr := strings.TrimPrefix(n.RPC, "tcp://")
	deadline := time.NewTimer(nodeStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return s, fmt.Errorf("%s exited at start (%v); the end of %s:\n%s", n.Name, p.err, s.Log, tail(p.logSinceStart(), 1500))
		case <-ctx.Done():
			p.cmd.Process.Signal(syscall.SIGTERM)
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

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
