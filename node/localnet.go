package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
// process (logs in HOME/node.log, pid in HOME/node.pid) until ctx ends, then stops them
// with SIGTERM. A node that exits (say, stopped by hand to test fault tolerance) is
// reported on status and not restarted; restart it with `kiln node --home HOME`.
func StartLocalnet(ctx context.Context, bin, dir string, status io.Writer) error {
	ln, err := LoadLocalnet(dir)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var procs []*exec.Cmd
	for _, n := range ln.Nodes {
		logf, err := os.OpenFile(filepath.Join(n.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		c := exec.Command(bin, "node", "--home", n.Home)
		c.Stdout, c.Stderr = logf, logf
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			stopAll(procs)
			return fmt.Errorf("start %s: %w", n.Name, err)
		}
		os.WriteFile(filepath.Join(n.Home, "node.pid"), []byte(fmt.Sprint(c.Process.Pid)), 0o644)
		fmt.Fprintf(status, "%s: pid %d, rpc %s, home %s\n", n.Name, c.Process.Pid, n.RPC, n.Home)
		procs = append(procs, c)
		wg.Add(1)
		go func(n LocalnetNode, c *exec.Cmd, logf *os.File) {
			defer wg.Done()
			err := c.Wait()
			logf.Close()
			if ctx.Err() == nil {
				fmt.Fprintf(status, "%s exited: %v (restart it with: kiln node --home %s)\n", n.Name, err, n.Home)
			}
		}(n, c, logf)
	}
	<-ctx.Done()
	stopAll(procs)
	wg.Wait()
	return nil
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
