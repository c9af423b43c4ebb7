package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	cfg "github.com/cometbft/cometbft/config"

	"github.com/kiln-network/kiln/node"
)

// Network namespaces: each node runs in its own namespace "kfn<pid>r<k>-<i>" (k: the
// harness's run), linked by a veth pair (host end "kfn<pid>r<k>v<i>") to a bridge
// "kfn<pid>r<k>br" that holds the harness's address. Every name starts with nsPrefix
// and carries the harness's pid, so
// that a later run sweeps what a killed one left behind (its pid gone) and never
// touches another live run's, nor any other interface.
const nsPrefix = "kfn"

// nsRuns numbers this process's runs, so that runs in parallel (tests) get names and
// subnets of their own.
var nsRuns atomic.Int32

// nsNet is the namespaces, veths and bridge of one run.
type nsNet struct {
	id     string // nsPrefix + pid
	subnet string // "10.213.X", a /24 of the harness's
	n      int
}

// nsAvailable says why scenario's namespaces cannot be made here, or "" when they can.
func nsAvailable(scenario string) string {
	if os.Geteuid() != 0 {
		return "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip (iproute2) is not installed"
	}
	if _, err := exec.LookPath("nft"); err != nil && scenario == "loss" {
		return "nft (nftables) is not installed"
	}
	return ""
}

func ipCmd(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// sweepStale removes namespaces and links of earlier runs whose harness is gone.
func sweepStale() {
	stale := func(name string) bool {
		rest := strings.TrimPrefix(name, nsPrefix)
		end := strings.IndexAny(rest, "r")
		if end <= 0 {
			return false
		}
		pid, err := strconv.Atoi(rest[:end])
		return err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) && stale(f[0]) {
				ipCmd("ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if strings.HasPrefix(name, nsPrefix) && stale(name) {
				ipCmd("ip", "link", "del", name)
			}
		}
	}
}

func (s *nsNet) ns(i int) string      { return fmt.Sprintf("%s-%d", s.id, i) }
func (s *nsNet) veth(i int) string    { return fmt.Sprintf("%sv%d", s.id, i) }
func (s *nsNet) peer(i int) string    { return fmt.Sprintf("%sp%d", s.id, i) }
func (s *nsNet) bridge() string       { return s.id + "br" }
func (s *nsNet) addr(i int) string    { return fmt.Sprintf("%s.%d", s.subnet, 10+i) }
func (s *nsNet) hostAddr() string     { return s.subnet + ".1" }
func (s *nsNet) rpc(i int) string     { return fmt.Sprintf("tcp://%s:26657", s.addr(i)) }
func (s *nsNet) p2pAddr(i int) string { return fmt.Sprintf("%s:26656", s.addr(i)) }

// setupNS makes n namespaces on one bridge. On error what was made is removed.
func setupNS(n int) (*nsNet, error) {
	sweepStale()
	pid := os.Getpid()
	k := nsRuns.Add(1)
	s := &nsNet{id: fmt.Sprintf("%s%dr%d", nsPrefix, pid, k%10), subnet: fmt.Sprintf("10.213.%d", (pid+int(k)*17)%250+1), n: n}
	// NB: the bridge lives in a namespace of its own (hub): the host's firewall
	// (Docker's FORWARD DROP with bridge-nf-call-iptables) would drop bridged
	// traffic on the host, and the harness changes nothing of the host's.
	hub := s.hub()
	steps := [][]string{
		{"ip", "netns", "add", hub},
		{"ip", "-n", hub, "link", "add", s.bridge(), "type", "bridge"},
		{"ip", "-n", hub, "link", "set", s.bridge(), "up"},
		{"ip", "link", "add", s.hostLink(), "type", "veth", "peer", "name", s.hubLink()},
		{"ip", "link", "set", s.hubLink(), "netns", hub},
		{"ip", "-n", hub, "link", "set", s.hubLink(), "master", s.bridge()},
		{"ip", "-n", hub, "link", "set", s.hubLink(), "up"},
		{"ip", "addr", "add", s.hostAddr() + "/24", "dev", s.hostLink()},
		{"ip", "link", "set", s.hostLink(), "up"},
	}
	for i := 0; i < n; i++ {
		steps = append(steps,
			[]string{"ip", "netns", "add", s.ns(i)},
			[]string{"ip", "link", "add", s.veth(i), "type", "veth", "peer", "name", s.peer(i)},
			[]string{"ip", "link", "set", s.peer(i), "netns", s.ns(i)},
			[]string{"ip", "link", "set", s.veth(i), "netns", hub},
			[]string{"ip", "-n", hub, "link", "set", s.veth(i), "master", s.bridge()},
			[]string{"ip", "-n", hub, "link", "set", s.veth(i), "up"},
			[]string{"ip", "-n", s.ns(i), "addr", "add", s.addr(i) + "/24", "dev", s.peer(i)},
			[]string{"ip", "-n", s.ns(i), "link", "set", s.peer(i), "up"},
			[]string{"ip", "-n", s.ns(i), "link", "set", "lo", "up"},
		)
	}
	for _, st := range steps {
		if err := ipCmd(st...); err != nil {
			s.teardown()
			return nil, err
		}
	}
	return s, nil
}

// teardown removes every namespace, veth and the bridge of this run.
func (s *nsNet) teardown() {
	// Deleting a namespace deletes the links in it, and a veth's peer with it.
	for i := 0; i < s.n; i++ {
		ipCmd("ip", "netns", "del", s.ns(i))
	}
	ipCmd("ip", "netns", "del", s.hub())
	ipCmd("ip", "link", "del", s.hostLink())
}

// place moves the localnet's nodes onto the namespaces' addresses: each listens on
// its own address with the standard ports and dials the others there.
func (s *nsNet) place(dir string, ln *node.Localnet) error {
	for i := range ln.Nodes {
		ln.Nodes[i].RPC, ln.Nodes[i].P2P = s.rpc(i), "tcp://"+s.p2pAddr(i)
	}
	for i, nd := range ln.Nodes {
		conf, err := node.LoadConfig(nd.Home)
		if err != nil {
			return err
		}
		conf.RPC.ListenAddress, conf.P2P.ListenAddress = nd.RPC, nd.P2P
		var peers []string
		for j, o := range ln.Nodes {
			if j != i {
				peers = append(peers, o.NodeID+"@"+s.p2pAddr(j))
			}
		}
		conf.P2P.PersistentPeers = strings.Join(peers, ",")
		cfg.WriteConfigFile(filepath.Join(nd.Home, "config", "config.toml"), conf)
	}
	return writeLocalnet(dir, *ln)
}

// startNS starts node i inside its namespace (`ip netns exec` execs the binary, so
// the pid is the node's) and waits until its RPC answers.
func (n *net) startNS(ctx context.Context, i int) error {
	nd := n.ln.Nodes[i]
	logf, err := os.OpenFile(filepath.Join(nd.Home, "node.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", n.ns.ns(i), n.o.Bin, "node", "--home", nd.Home)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", nd.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	n.pids[i] = cmd.Process.Pid
	deadline := time.After(90 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited at start; see %s", nd.Name, filepath.Join(nd.Home, "node.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%s (pid %d) did not answer on %s within 90s", nd.Name, cmd.Process.Pid, nd.RPC)
		case <-time.After(100 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := n.cl[i].Status(cctx)
		cancel()
		if err == nil {
			n.logf("%s started in namespace %s: pid %d, rpc %s", nd.Name, n.ns.ns(i), cmd.Process.Pid, nd.RPC)
			return nil
		}
	}
}

// split cuts every link between the nodes in a and those in b, both ways, or (on
// false) restores them: a blackhole route to each other's address in each node's
// namespace. Packets vanish as in a real partition (no reset, no ICMP: TCP retries
// with back-off), while the harness still reaches every node.
func (s *nsNet) split(a, b []int, on bool) error {
	verb := "add"
	if !on {
		verb = "del"
	}
	for _, i := range a {
		for _, j := range b {
			if err := ipCmd("ip", "-n", s.ns(i), "route", verb, "blackhole", s.addr(j)+"/32"); err != nil {
				return err
			}
			if err := ipCmd("ip", "-n", s.ns(j), "route", verb, "blackhole", s.addr(i)+"/32"); err != nil {
				return err
			}
		}
	}
	return nil
}

// lossTable is the nftables table lose adds in each node's namespace.
const lossTable = "kiln_loss"

// dropped sums the packets lose's rules dropped in every namespace.
func (s *nsNet) dropped() (int64, error) {
	var sum int64
	for i := 0; i < s.n; i++ {
		out, err := exec.Command("ip", "netns", "exec", s.ns(i), "nft", "list", "table", "inet", lossTable).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("nft list table in %s: %v: %s", s.ns(i), err, strings.TrimSpace(string(out)))
		}
		m := counterRE.FindSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("nft list table in %s: no counter in %q", s.ns(i), out)
		}
		k, _ := strconv.ParseInt(string(m[1]), 10, 64)
		sum += k
	}
	return sum, nil
}

var counterRE = regexp.MustCompile(`counter packets (\d+)`)

// lose drops pct percent of the packets each node sends to another node (not those
// to the harness), at random, with nftables in the node's namespace: real packet
// loss that TCP must retransmit (this kernel has no sch_netem). On false it removes
// the rule.
func (s *nsNet) lose(pct int, on bool) error {
	for i := 0; i < s.n; i++ {
		nft := []string{"ip", "netns", "exec", s.ns(i), "nft"}
		if !on {
			if err := ipCmd(append(nft, "delete", "table", "inet", lossTable)...); err != nil {
				return err
			}
			continue
		}
		for _, st := range [][]string{
			{"add", "table", "inet", lossTable},
			{"add", "chain", "inet", lossTable, "out", "{ type filter hook output priority 0 ; policy accept ; }"},
			{"add", "rule", "inet", lossTable, "out", "ip", "daddr", s.subnet + ".0/24", "ip", "daddr", "!=", s.hostAddr(), "numgen", "random", "mod", "100", "<", strconv.Itoa(pct), "counter", "drop"},
		} {
			if err := ipCmd(append(nft, st...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *nsNet) hub() string      { return s.id + "-hub" }
func (s *nsNet) hostLink() string { return s.id + "h" }
func (s *nsNet) hubLink() string  { return s.id + "hb" }
