package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cfg "github.com/cometbft/cometbft/config"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/ports"
)

// faultResult is what a perturbation measured.
type faultResult struct {
	recover  time.Duration
	joinedAt int64
	extra    int // index of a node the fault added (statesync's joiner, byzantine's twin), -1 if none
	byz      *Byzantine
	dropped  int64 // packets the loss scenario dropped
	problems []string
}

// fault perturbs node i for about d and heals it, measuring the recovery.
func (n *net) fault(ctx context.Context, scenario string, i int, d time.Duration) (faultResult, error) {
	fr := faultResult{extra: -1}
	all := make([]int, len(n.ln.Nodes))
	for j := range all {
		all[j] = j
	}
	switch scenario {
	case "kill":
		if err := n.kill9(i); err != nil {
			return fr, err
		}
		n.logf("node%d killed (SIGKILL)", i)
		sleep(ctx, d)
		h := maxOf(n.heights(ctx))
		start := time.Now()
		if err := n.start(ctx, i); err != nil {
			return fr, fmt.Errorf("restart after kill -9: %w", err)
		}
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
	case "pause":
		if err := n.signal(i, syscall.SIGSTOP); err != nil {
			return fr, err
		}
		n.paused[i] = true
		n.logf("node%d paused (SIGSTOP)", i)
		sleep(ctx, d)
		h := maxOf(n.heights(ctx))
		start := time.Now()
		if err := n.signal(i, syscall.SIGCONT); err != nil {
			return fr, err
		}
		delete(n.paused, i)
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
	case "partition":
		// 1 vs 3: the other three keep 3/4 of the power and go on.
		rest := others(all, i)
		if err := n.ns.split([]int{i}, rest, true); err != nil {
			return fr, err
		}
		n.logf("node%d cut off from %v (blackhole routes): 1 vs %d", i, rest, len(rest))
		sleep(ctx, d)
		h := maxOf(n.heights(ctx))
		start := time.Now()
		if err := n.ns.split([]int{i}, rest, false); err != nil {
			return fr, err
		}
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
	case "partition-2v2":
		// 2 vs 2: neither half has more than 2/3 of the power, so the chain must halt
		// (and neither half commit anything alone) until the halves meet again.
		a, b := all[:len(all)/2], all[len(all)/2:]
		if err := n.ns.split(a, b, true); err != nil {
			return fr, err
		}
		n.logf("nodes %v and %v split (blackhole routes): the chain halts", a, b)
		// A block being committed as the split starts may still land.
		sleep(ctx, min(d/4, 2*time.Second))
		h0 := maxOf(n.heights(ctx))
		sleep(ctx, d-min(d/4, 2*time.Second))
		h := maxOf(n.heights(ctx))
		if h > h0 {
			fr.problems = append(fr.problems, fmt.Sprintf("a half of a 2-vs-2 split committed: heights %d -> %d while split", h0, h))
		}
		start := time.Now()
		if err := n.ns.split(a, b, false); err != nil {
			return fr, err
		}
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
		n.logf("halted at height %d while split; every node past it %v after the heal", h, fr.recover.Round(time.Millisecond))
	case "loss":
		if err := n.ns.lose(lossPct, true); err != nil {
			return fr, err
		}
		n.logf("every node drops %d%% of the packets it sends to the others (nftables)", lossPct)
		sleep(ctx, d)
		h := maxOf(n.heights(ctx))
		start := time.Now()
		k, err := n.ns.dropped()
		if err != nil {
			return fr, err
		}
		fr.dropped = k
		n.logf("%d packets dropped", k)
		if err := n.ns.lose(lossPct, false); err != nil {
			return fr, err
		}
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
	case "latency":
		n.delay.set(100*time.Millisecond, 20*time.Millisecond)
		n.logf("every peer link delayed 100ms ±20ms each way")
		sleep(ctx, d)
		h := maxOf(n.heights(ctx))
		start := time.Now()
		n.delay.set(0, 0)
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
	case "skew":
		// The last validator's clock an hour slow, then an hour fast.
		n.skewed = true
		for _, off := range []time.Duration{-skewBy, skewBy} {
			n.skew.set(off)
			n.logf("node%d's votes signed with its clock off by %v", i, off)
			sleep(ctx, d/2)
		}
		h := maxOf(n.heights(ctx))
		start := time.Now()
		n.skew.set(0)
		if err := n.recoverWait(ctx, all, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
	case "statesync":
		start := time.Now()
		j, h, err := n.addJoiner(ctx)
		if err != nil {
			return fr, fmt.Errorf("state-sync joiner: %w", err)
		}
		fr.extra = j
		if err := n.recoverWait(ctx, []int{j}, h); err != nil {
			return fr, err
		}
		fr.recover = time.Since(start)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.cl[j].RPC.Status(cctx)
		cancel()
		if err != nil {
			return fr, err
		}
		fr.joinedAt = st.SyncInfo.EarliestBlockHeight
		if fr.joinedAt <= 1 {
			return fr, fmt.Errorf("the joiner's block store starts at height %d: it replayed the chain instead of restoring a snapshot", fr.joinedAt)
		}
		n.logf("joiner restored a snapshot: its block store starts at %d; following the chain after %v", fr.joinedAt, fr.recover.Round(time.Millisecond))
		if rest := d - time.Since(start); rest > 0 {
			sleep(ctx, rest)
		}
	case "byzantine":
		start := time.Now()
		b, err := n.byzantine(ctx, i)
		if err != nil {
			return b, err
		}
		fr = b
		if rest := d - time.Since(start); rest > 0 {
			sleep(ctx, rest)
		}
	default:
		return fr, fmt.Errorf("scenario %q is not implemented", scenario)
	}
	return fr, nil
}

// skewBy is the skew scenario's clock error: far beyond any drift, so that a block
// time moved by it cannot go unseen.
const skewBy = time.Hour

// lossPct is the loss scenario's packet loss on every node-to-node packet: a bad
// link, which TCP can still carry (each direction of a connection loses it).
const lossPct = 10

// others is idx without i.
func others(idx []int, i int) []int {
	var out []int
	for _, k := range idx {
		if k != i {
			out = append(out, k)
		}
	}
	return out
}

// recoverWait waits until the nodes in idx are past height h: up to 3 minutes while
// the network makes progress (see waitAllPast).
func (n *net) recoverWait(ctx context.Context, idx []int, h int64) error {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := n.waitAllPast(wctx, idx, h); err != nil {
		return fmt.Errorf("no recovery: %w", err)
	}
	return nil
}

// extraHome makes the home of a node that is not in the genesis' layout (the
// state-sync joiner, the byzantine twin): fresh node key, the chain's genesis, its own
// loopback ports, and the localnet's validators as persistent peers. The caller
// adjusts conf and then adds it with addExtra.
func (n *net) extraHome(name string) (*cfg.Config, node.InitResult, error) {
	home := filepath.Join(n.dir, name)
	ir, err := node.Init(node.InitOptions{Home: home, ChainID: n.ln.ChainID, KeyringBackend: keyring.BackendTest})
	if err != nil {
		return nil, ir, err
	}
	gen, err := os.ReadFile(filepath.Join(n.ln.Nodes[0].Home, "config", "genesis.json"))
	if err != nil {
		return nil, ir, err
	}
	if err := os.WriteFile(filepath.Join(home, "config", "genesis.json"), gen, 0o644); err != nil {
		return nil, ir, err
	}
	conf, err := node.LoadConfig(home)
	if err != nil {
		return nil, ir, err
	}
	p, err := ports.Pick("127.0.0.1", 2)
	if err != nil {
		return nil, ir, err
	}
	conf.RPC.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p[0])
	conf.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p[1])
	var peers []string
	for _, nd := range n.ln.Nodes {
		peers = append(peers, nd.NodeID+"@"+strings.TrimPrefix(nd.P2P, "tcp://"))
	}
	conf.P2P.PersistentPeers = strings.Join(peers, ",")
	return conf, ir, nil
}

// addExtra writes conf, adds the node to the layout and starts it; it returns the
// node's index and the chain's height just before it started.
func (n *net) addExtra(ctx context.Context, name string, conf *cfg.Config, nodeID string) (int, int64, error) {
	cfg.WriteConfigFile(filepath.Join(conf.RootDir, "config", "config.toml"), conf)
	n.ln.Nodes = append(n.ln.Nodes, node.LocalnetNode{Name: name, Home: conf.RootDir, RPC: conf.RPC.ListenAddress, P2P: conf.P2P.ListenAddress, NodeID: nodeID})
	if err := writeLocalnet(n.dir, n.ln); err != nil {
		return 0, 0, err
	}
	j := len(n.ln.Nodes) - 1
	c, err := client.New(conf.RPC.ListenAddress)
	if err != nil {
		return 0, 0, err
	}
	n.cl = append(n.cl, c)
	h := maxOf(n.heights(ctx))
	if err := n.start(ctx, j); err != nil {
		return 0, 0, err
	}
	return j, h, nil
}

// addJoiner starts a non-validator node that joins through CometBFT's state sync,
// trusting a recent header of node0's. It returns the joiner's index and the chain's
// height when it started.
func (n *net) addJoiner(ctx context.Context) (int, int64, error) {
	conf, ir, err := n.extraHome("joiner")
	if err != nil {
		return 0, 0, err
	}
	var rpcs []string
	for _, nd := range n.ln.Nodes {
		rpcs = append(rpcs, "http://"+strings.TrimPrefix(nd.RPC, "tcp://"))
	}
	// Trust a header a few blocks back: the light client verifies from there to the
	// snapshot's height.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := n.cl[0].Status(cctx)
	if err != nil {
		return 0, 0, err
	}
	trust := max(st.Height-3, 1)
	blk, err := n.cl[0].RPC.Block(cctx, &trust)
	if err != nil {
		return 0, 0, fmt.Errorf("block %d of node0: %w", trust, err)
	}
	conf.StateSync.Enable = true
	conf.StateSync.RPCServers = rpcs[:2]
	conf.StateSync.TrustHeight = trust
	conf.StateSync.TrustHash = fmt.Sprintf("%X", blk.BlockID.Hash)
	conf.StateSync.TrustPeriod = time.Hour
	conf.StateSync.DiscoveryTime = 5 * time.Second
	return n.addExtra(ctx, "joiner", conf, ir.NodeID)
}

// writeLocalnet rewrites DIR/localnet.json (the layout node.StartLocalnetNode reads).
func writeLocalnet(dir string, ln node.Localnet) error {
	b, err := json.MarshalIndent(ln, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, node.LocalnetFile), b, 0o644)
}
