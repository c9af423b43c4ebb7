package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/netns"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// member is one end of a test overlay: its namespace and link.
type member struct {
	ns   string
	link *Link
}

// needNetNS skips a test that needs namespaces and a TUN where there are none.
func needNetNS(t *testing.T) {
	t.Helper()
	if why := netns.Available(); why != "" {
		t.Skipf("overlay needs network namespaces: %s", why)
	}
	if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil {
		t.Skipf("overlay needs a TUN device: %v", err)
	} else {
		f.Close()
	}
}

// newNS makes a namespace removed at the end of the test.
func newNS(t *testing.T, name string) string {
	t.Helper()
	name = fmt.Sprintf("kov%d-%s", os.Getpid(), name)
	p, err := netns.Add(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})
	return p
}

// upMembers brings up n members of lease in namespaces of their own, each
// knowing every other as a peer.
func upMembers(t *testing.T, lease string, n int) []member {
	t.Helper()
	ms := make([]member, n)
	for i := range ms {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		ms[i].ns = newNS(t, fmt.Sprintf("%s-%d", lease, i))
		ms[i].link, err = Up(context.Background(), Config{LeaseID: lease, Rank: i, Key: k, Listen: loopback, NetNS: ms[i].ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms[i].link.Close() })
	}
	for i, m := range ms {
		var peers []Peer
		for j, o := range ms {
			if j != i {
				peers = append(peers, peerOf(o.link, j))
			}
		}
		if err := m.link.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
	}
	// 20 s: the first handshakes take a second (nudge), or 5 s more where
	// two crossed (REKEY_TIMEOUT), on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := m.link.WaitHandshakes(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

func peerOf(l *Link, rank int) Peer {
	return Peer{Rank: rank, PublicKey: l.PublicKey(), Endpoint: l.Endpoint(), Addr: l.Addr()}
}

// listen starts a TCP echo server in ns on port; it answers each connection
// with "from <addr>: " and what it read.
func listen(t *testing.T, ns string, addr netip.Addr) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(io.LimitReader(c, 1<<20))
				fmt.Fprintf(c, "from %s: %s", c.RemoteAddr().(*net.TCPAddr).IP, b)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// dial connects from ns (from local, when valid) to to, sends msg and returns
// the answer. timeout bounds the whole exchange.
func dial(ns string, local netip.Addr, to netip.AddrPort, msg string, timeout time.Duration) (string, error) {
	var c net.Conn
	d := net.Dialer{Timeout: timeout}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	if err := netns.Do(ns, func() (err error) {
		c, err = d.Dial("tcp", to.String())
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestOverlayMesh(t *testing.T) {
	needNetNS(t)
	ms := upMembers(t, "mesh", 3)
	subnet := SubnetFor("mesh")
	for i, m := range ms {
		if m.link.Addr() != MemberAddr(subnet, i) || !m.link.Endpoint().Addr().IsLoopback() || m.link.Endpoint().Port() == 0 {
			t.Fatalf("member %d: addr %s endpoint %s, want %s on 127.0.0.1:port", i, m.link.Addr(), m.link.Endpoint(), MemberAddr(subnet, i))
		}
	}
	// Handshakes start at SetPeers (persistent keepalive), before any
	// traffic; upMembers waited for them with WaitHandshakes.
	poll.WaitFor(t, time.Second, func() error {
		for i, m := range ms {
			h := m.link.Health()
			if len(h) != 2 {
				return fmt.Errorf("member %d health %+v, want 2 peers", i, h)
			}
			for _, p := range h {
				if p.LastHandshake.IsZero() {
					return fmt.Errorf("member %d: no handshake with rank %d yet", i, p.Rank)
				}
			}
		}
		return nil
	})
	srv := make([]netip.AddrPort, len(ms))
	for i, m := range ms {
		srv[i] = listen(t, m.ns, m.link.Addr())
	}
	for i, m := range ms {
		for j := range ms {
			if i == j {
				continue
			}
			msg := fmt.Sprintf("hello %d->%d", i, j)
			got, err := dial(m.ns, netip.Addr{}, srv[j], msg, 5*time.Second)
			if want := fmt.Sprintf("from %s: %s", m.link.Addr(), msg); err != nil || got != want {
				t.Fatalf("member %d -> %d: %q, %v, want %q", i, j, got, err, want)
			}
		}
	}
	before := ms[0].link.Health()[0].RxBytes
	big := strings.Repeat("x", 512<<10)
	if got, err := dial(ms[1].ns, netip.Addr{}, srv[0], big, 10*time.Second); err != nil || len(got) < len(big) {
		t.Fatalf("512 KiB over the overlay: %d bytes, %v", len(got), err)
	}
	if after := ms[0].link.Health()[0].RxBytes; after < before+512<<10 {
		t.Fatalf("member 0 rx from rank 1: %d -> %d bytes, want +512 KiB at least", before, after)
	}
}

func TestOverlayAllowedIPs(t *testing.T) {
	needNetNS(t)
	ms := upMembers(t, "aips", 2)
	srv := listen(t, ms[0].ns, netip.IPv4Unspecified())
	to := netip.AddrPortFrom(ms[0].link.Addr(), srv.Port())
	if _, err := dial(ms[1].ns, netip.Addr{}, to, "ok", 5*time.Second); err != nil {
		t.Fatalf("member 1 -> 0: %v; health 0 %+v 1 %+v", err, ms[0].link.Health(), ms[1].link.Health())
	}
	// Member 1 claims a second address of the subnet and sends from it:
	// member 0 must drop what does not come from rank 1's own /32.
	spoof := MemberAddr(ms[0].link.Subnet(), 9)
	if err := netns.Do(ms[1].ns, func() error {
		return netns.IP("addr", "add", spoof.String()+"/32", "dev", DefaultIfname)
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(ms[1].ns, spoof, to, "spoofed", 1500*time.Millisecond); err == nil {
		t.Fatalf("member 1 reached member 0 from %s (not its AllowedIPs): %q", spoof, got)
	}
	// An address of the subnet that is no member's goes nowhere.
	nobody := netip.AddrPortFrom(MemberAddr(ms[0].link.Subnet(), 20), srv.Port())
	if got, err := dial(ms[1].ns, netip.Addr{}, nobody, "nobody", 1500*time.Millisecond); err == nil {
		t.Fatalf("member 1 reached %s, which is no member's: %q", nobody, got)
	}
}

func TestOverlayIsolation(t *testing.T) {
	needNetNS(t)
	ms := upMembers(t, "iso-a", 2)
	srv := listen(t, ms[0].ns, netip.IPv4Unspecified())
	to := netip.AddrPortFrom(ms[0].link.Addr(), srv.Port())
	if _, err := dial(ms[1].ns, netip.Addr{}, to, "ok", 5*time.Second); err != nil {
		t.Fatalf("member 1 -> 0: %v", err)
	}
	// A member of another lease: its own subnet, no route to lease A's.
	other := upMembers(t, "iso-b", 1)[0]
	if got, err := dial(other.ns, netip.Addr{}, to, "other lease", 1500*time.Millisecond); err == nil {
		t.Fatalf("member of lease iso-b reached lease iso-a's %s: %q", to, got)
	}
	// An intruder that knows lease A's subnet, members' keys and endpoints
	// but holds a key lease A never listed: its handshakes go unanswered.
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ns := newNS(t, "iso-x")
	x, err := Up(context.Background(), Config{LeaseID: "iso-a", Rank: 7, Key: k, Listen: loopback, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.SetPeers([]Peer{peerOf(ms[0].link, 0), peerOf(ms[1].link, 1)}); err != nil {
		t.Fatal(err)
	}
	if got, err := dial(ns, netip.Addr{}, to, "intruder", 3*time.Second); err == nil {
		t.Fatalf("intruder reached lease iso-a's %s: %q", to, got)
	}
	for _, h := range x.Health() {
		if !h.LastHandshake.IsZero() || h.RxBytes != 0 {
			t.Fatalf("intruder completed a handshake with rank %d: %+v", h.Rank, h)
		}
	}
}

func TestSetPeersRejects(t *testing.T) {
	needNetNS(t)
	ms := upMembers(t, "rej", 2)
	l, p1 := ms[0].link, peerOf(ms[1].link, 1)
	self := peerOf(l, 0)
	for _, tc := range []struct {
		name string
		edit func(p *Peer)
		want string
	}{
		{"own rank", func(p *Peer) { p.Rank = 0; p.Addr = MemberAddr(l.Subnet(), 0) }, "this member's own"},
		{"own key", func(p *Peer) { p.PublicKey = self.PublicKey }, "this member's own"},
		{"zero key", func(p *Peer) { p.PublicKey = PublicKey{} }, "must not be zero"},
		{"no endpoint", func(p *Peer) { p.Endpoint = netip.AddrPort{} }, "not a dialable"},
		{"port 0", func(p *Peer) { p.Endpoint = netip.AddrPortFrom(p.Endpoint.Addr(), 0) }, "not a dialable"},
		{"addr of another rank", func(p *Peer) { p.Addr = MemberAddr(l.Subnet(), 5) }, "addr must be"},
		{"addr outside subnet", func(p *Peer) { p.Addr = netip.MustParseAddr("10.0.0.2") }, "addr must be"},
		{"rank too high", func(p *Peer) { p.Rank = MaxRank + 1 }, "rank must be"},
	} {
		p := p1
		tc.edit(&p)
		if err := l.SetPeers([]Peer{p}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetPeers(%s) = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	if err := l.SetPeers([]Peer{p1, p1}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("SetPeers(duplicate) = %v, want 'given twice'", err)
	}
	// A refused set changes nothing: the peer set before stays.
	if h := l.Health(); len(h) != 1 || h[0].Rank != 1 {
		t.Fatalf("after refused SetPeers, health = %+v, want rank 1 only", h)
	}
	// An empty set removes every peer.
	if err := l.SetPeers(nil); err != nil || len(l.Health()) != 0 {
		t.Fatalf("SetPeers(nil) = %v, health %+v, want no peers", err, l.Health())
	}
}

func TestUpRejects(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := Config{LeaseID: "l", Rank: 0, Key: k, Listen: loopback, NetNS: "/proc/self/ns/net"}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"no lease", func(c *Config) { c.LeaseID = "" }, "lease id"},
		{"negative rank", func(c *Config) { c.Rank = -1 }, "rank must be"},
		{"zero key", func(c *Config) { c.Key = Key{} }, "key must not be zero"},
		{"no listen", func(c *Config) { c.Listen = netip.AddrPort{} }, "listen must be"},
		{"unspecified listen", func(c *Config) { c.Listen = netip.MustParseAddrPort("0.0.0.0:51820") }, "listen must be"},
		{"no netns", func(c *Config) { c.NetNS = "" }, "netns must name"},
		{"not a netns", func(c *Config) { c.NetNS = "/etc/hostname" }, "not a network namespace"},
		{"long ifname", func(c *Config) { c.Ifname = "kiln-overlay-0123" }, "ifname"},
		{"tiny mtu", func(c *Config) { c.MTU = 500 }, "mtu must be"},
	} {
		c := good
		tc.edit(&c)
		if _, err := Up(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Up(%s) = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Up(ctx, good); !errors.Is(err, context.Canceled) {
		t.Errorf("Up(cancelled ctx) = %v, want context.Canceled", err)
	}
}

// TestOverlayListenNetNS puts each member's UDP socket in its own namespace,
// on its end of a veth pair that is the only path between the two: the
// overlay works only if the sockets are there, and its MTU follows the veth's.
func TestOverlayListenNetNS(t *testing.T) {
	needNetNS(t)
	nsA, nsB := newNS(t, "lns-a"), newNS(t, "lns-b")
	pid := os.Getpid()
	// NB: 10.98.0.0/16 lies outside Space; one /24 per test process.
	linkNet := fmt.Sprintf("10.98.%d", pid%250+1)
	ifA, ifB := fmt.Sprintf("kov%da", pid%100000), fmt.Sprintf("kov%db", pid%100000)
	for _, args := range [][]string{
		{"link", "add", ifA, "type", "veth", "peer", "name", ifB},
		{"link", "set", ifA, "netns", nsA},
		{"link", "set", ifB, "netns", nsB},
		{"-n", filepath.Base(nsA), "addr", "add", linkNet + ".1/24", "dev", ifA},
		{"-n", filepath.Base(nsA), "link", "set", ifA, "up"},
		{"-n", filepath.Base(nsB), "addr", "add", linkNet + ".2/24", "dev", ifB},
		{"-n", filepath.Base(nsB), "link", "set", ifB, "up"},
	} {
		if err := netns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	ms := make([]member, 2)
	for i, ns := range []string{nsA, nsB} {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		listen := netip.MustParseAddrPort(fmt.Sprintf("%s.%d:0", linkNet, i+1))
		l, err := Up(context.Background(), Config{LeaseID: "lns", Rank: i, Key: k, Listen: listen, ListenNetNS: ns, NetNS: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if l.Endpoint().Addr() != listen.Addr() || l.Endpoint().Port() == 0 {
			t.Fatalf("member %d endpoint %s, want %s:port", i, l.Endpoint(), listen.Addr())
		}
		if l.MTU() != 1500-overhead {
			t.Fatalf("member %d MTU %d, want %d (the veth's 1500 less WireGuard's %d)", i, l.MTU(), 1500-overhead, overhead)
		}
		ms[i] = member{ns: ns, link: l}
	}
	for i, m := range ms {
		if err := m.link.SetPeers([]Peer{peerOf(ms[1-i].link, 1-i)}); err != nil {
			t.Fatal(err)
		}
	}
	// 20 s: as in upMembers.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := m.link.WaitHandshakes(ctx); err != nil {
			t.Fatalf("handshake over the veth (sockets not in their namespaces?): %v", err)
		}
	}
	srv := listen(t, nsA, ms[0].link.Addr())
	if got, err := dial(nsB, netip.Addr{}, srv, "over the veth", 5*time.Second); err != nil || !strings.HasSuffix(got, "over the veth") {
		t.Fatalf("member 1 -> 0 over the overlay: %q, %v", got, err)
	}
	if _, err := Up(context.Background(), Config{LeaseID: "lns", Rank: 3, Key: ms[0].link.cfg.Key, Listen: loopback,
		ListenNetNS: "/etc/hostname", NetNS: nsA}); err == nil || !strings.Contains(err.Error(), "listen netns") {
		t.Fatalf("Up(ListenNetNS not a namespace) = %v, want 'listen netns' error", err)
	}
}
