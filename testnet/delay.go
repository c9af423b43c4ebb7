package testnet

import (
	"io"
	"math/rand/v2"
	stdnet "net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cfg "github.com/cometbft/cometbft/config"

	"github.com/kiln-network/kiln/node"
)

// delayProxies put a TCP proxy in front of every node's P2P port and point every
// peer at the proxies, so that the harness can add delay (with jitter, order kept)
// to all consensus traffic. NB: this kernel has no sch_netem, so the delay is added
// in user space; TCP hides loss, so loss is not modelled.
type delayProxies struct {
	lns    []stdnet.Listener
	delay  atomic.Int64 // ns
	jitter atomic.Int64 // ns
	wg     sync.WaitGroup
}

// newDelayProxies listens on a loopback port per node and rewrites the nodes'
// configs to dial each other only through them (PEX off, so that no direct
// address is learned).
func newDelayProxies(ln node.Localnet) (*delayProxies, error) {
	dp := &delayProxies{}
	for _, nd := range ln.Nodes {
		l, err := stdnet.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			dp.close()
			return nil, err
		}
		dp.lns = append(dp.lns, l)
		target := strings.TrimPrefix(nd.P2P, "tcp://")
		dp.wg.Add(1)
		go dp.serve(l, target)
	}
	for i, nd := range ln.Nodes {
		conf, err := node.LoadConfig(nd.Home)
		if err != nil {
			dp.close()
			return nil, err
		}
		var peers []string
		for j, o := range ln.Nodes {
			if j != i {
				peers = append(peers, o.NodeID+"@"+dp.lns[j].Addr().String())
			}
		}
		conf.P2P.PersistentPeers = strings.Join(peers, ",")
		conf.P2P.PexReactor = false
		cfg.WriteConfigFile(filepath.Join(nd.Home, "config", "config.toml"), conf)
	}
	return dp, nil
}

func (dp *delayProxies) set(delay, jitter time.Duration) {
	dp.delay.Store(int64(delay))
	dp.jitter.Store(int64(jitter))
}

func (dp *delayProxies) close() {
	for _, l := range dp.lns {
		l.Close()
	}
	dp.wg.Wait()
}

func (dp *delayProxies) serve(l stdnet.Listener, target string) {
	defer dp.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			up, err := stdnet.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				return
			}
			go dp.pipe(up, c)
			dp.pipe(c, up)
		}()
	}
}

// chunk is bytes read at one moment, to be written at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, holding each read for the current delay plus jitter,
// never reordering.
func (dp *delayProxies) pipe(dst, src stdnet.Conn) {
	q := make(chan chunk, 1024)
	go func() {
		defer dst.Close()
		for ch := range q {
			if w := time.Until(ch.due); w > 0 {
				time.Sleep(w)
			}
			if _, err := dst.Write(ch.b); err != nil {
				for range q {
				}
				return
			}
		}
	}()
	defer close(q)
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			d := time.Duration(dp.delay.Load())
			if j := dp.jitter.Load(); j > 0 {
				d += time.Duration(rand.Int64N(2*j+1) - j)
			}
			due := time.Now().Add(d)
			if due.Before(last) {
				due = last
			}
			last = due
			q <- chunk{b: append([]byte(nil), buf[:k]...), due: due}
		}
		if err != nil {
			if err != io.EOF {
				src.Close()
			}
			return
		}
	}
}
