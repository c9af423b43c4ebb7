// Package overlay links the members of a cluster lease over WireGuard: one
// private /24 per lease, one TUN device per member inside the member's network
// namespace, encrypted UDP between providers.
//
// It uses userspace wireguard-go (no kernel module needed): the TUN device is
// created inside the member's namespace, so the member's tasks see only the
// overlay and their loopback, while the UDP socket that carries the encrypted
// packets lives in the provider's own (host) namespace, or in the namespace
// Config.ListenNetNS names. A peer is reachable
// only at its one overlay address (AllowedIPs = Addr/32); packets from keys
// that are not the lease's members are dropped before decryption of any
// payload.
package overlay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/kiln-network/kiln/netns"
)

const (
	// DefaultIfname is the overlay interface's name inside the namespace.
	DefaultIfname = "kiln0"
	// DefaultMTU leaves room for WireGuard's 80 bytes of IPv6+UDP+WireGuard
	// headers inside a 1500-byte path, as wg-quick does.
	DefaultMTU = 1420
	// keepalive keeps NAT mappings open and, set on a new peer, makes the
	// first handshake happen at once instead of on the first packet.
	keepalive = 25 * time.Second
	// nudge is how long the higher rank of a pair waits before it starts
	// handshaking too. NB: the lower rank starts at once. If both started
	// together, each would answer the other's initiation and drop the answer
	// to its own (WireGuard keeps one handshake per peer), and both would
	// wait 5 s (REKEY_TIMEOUT) to retry; if only the lower started and its
	// initiation came before the higher knew it, the lower would wait 5 s too.
	nudge = time.Second
)

// Config says how to bring up one member's end of a lease's overlay.
type Config struct {
	// LeaseID names the lease; its subnet is SubnetFor(LeaseID).
	LeaseID string
	// Rank is the member's rank (0..MaxRank); its address is MemberAddr(subnet, Rank).
	Rank int
	// Key is the member's private key (GenerateKey).
	Key Key
	// Listen is the UDP endpoint peers send to, in the host's namespace (or
	// ListenNetNS); port 0 picks a free one. NB: the socket binds the port on
	// every address of its namespace (wireguard-go's bind); Listen's address
	// is what Endpoint reports.
	Listen netip.AddrPort
	// ListenNetNS, when set, is the path of the network namespace the UDP
	// socket is opened in, and where Listen's address and the path MTU are
	// looked up; empty means the caller's own namespace (the provider's host
	// namespace). It may be NetNS itself: overlay/allreduce puts each
	// member's socket on the member's end of a modelled inter-provider link.
	ListenNetNS string
	// NetNS is the path of the member's network namespace, where the TUN lives.
	NetNS string
	// Ifname is the TUN's name in NetNS; empty means DefaultIfname.
	Ifname string
	// MTU of the TUN; 0 takes it from the path as wg-quick does: the MTU of
	// the interface (in ListenNetNS) that holds Listen's address, less WireGuard's 80
	// bytes (1420 on a 1500-byte Ethernet, 65455 on loopback), or DefaultMTU
	// where no interface holds it. A larger MTU moves the same data in fewer
	// encrypted packets, which is most of the overlay's cost.
	MTU int
	// Log receives wireguard-go's messages; nil discards them.
	Log *slog.Logger
}

// Peer is another member of the lease, as the lease publishes it.
type Peer struct {
	// Rank is the peer's rank.
	Rank int `json:"rank"`
	// PublicKey is the peer's public key.
	PublicKey PublicKey `json:"public_key"`
	// Endpoint is the peer's UDP endpoint (its Link.Endpoint).
	Endpoint netip.AddrPort `json:"endpoint"`
	// Addr is the peer's overlay address, MemberAddr(subnet, Rank).
	Addr netip.Addr `json:"addr"`
}

// PeerHealth is what the link knows of one peer.
type PeerHealth struct {
	// Rank is the peer's rank.
	Rank int `json:"rank"`
	// LastHandshake is when the last handshake with the peer completed; zero when none has.
	LastHandshake time.Time `json:"last_handshake"`
	// RxBytes and TxBytes count the encrypted bytes received from and sent to the peer.
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
}

// Link is one member's end of the overlay. Its methods are safe for concurrent use.
type Link struct {
	cfg      Config
	subnet   netip.Prefix
	addr     netip.Addr
	endpoint netip.AddrPort
	dev      *device.Device

	mu     sync.Mutex
	peers  map[PublicKey]Peer // what SetPeers last set, by key
	closed bool
	close  sync.Once
}

// Up creates the TUN device in cfg.NetNS with the member's address (a /24
// route to the lease's subnet through it) and brings it and the namespace's
// loopback up, then starts WireGuard on cfg.Listen with no peers. The caller
// must Close the link; Close removes the TUN device.
func Up(ctx context.Context, cfg Config) (*Link, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Ifname == "" {
		cfg.Ifname = DefaultIfname
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
		err := inNetNS(cfg.ListenNetNS, func() error { cfg.MTU = PathMTU(cfg.Listen.Addr()); return nil })
		if err != nil {
			return nil, fmt.Errorf("overlay up: path mtu: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("overlay up: %w", err)
	}
	subnet := SubnetFor(cfg.LeaseID)
	addr := MemberAddr(subnet, cfg.Rank)
	var tdev tun.Device
	err := netns.Do(cfg.NetNS, func() error {
		// NB: the TUN, and the netlink socket wireguard-go opens to watch it,
		// belong to the namespace of the thread that creates them.
		t, err := tun.CreateTUN(cfg.Ifname, cfg.MTU)
		if err != nil {
			return fmt.Errorf("create TUN %s: %w", cfg.Ifname, err)
		}
		tdev = t
		for _, args := range [][]string{
			{"addr", "add", netip.PrefixFrom(addr, subnet.Bits()).String(), "dev", cfg.Ifname},
			{"link", "set", cfg.Ifname, "up"},
			{"link", "set", "lo", "up"},
		} {
			if err := netns.IP(args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if tdev != nil {
			tdev.Close()
		}
		return nil, fmt.Errorf("overlay up: lease %s rank %d in %s: %w", cfg.LeaseID, cfg.Rank, cfg.NetNS, err)
	}
	logger := &device.Logger{Verbosef: device.DiscardLogf, Errorf: device.DiscardLogf}
	if cfg.Log != nil {
		l := cfg.Log.With("lease", cfg.LeaseID, "rank", cfg.Rank)
		logger.Verbosef = func(f string, a ...any) { l.Debug(fmt.Sprintf(f, a...)) }
		logger.Errorf = func(f string, a ...any) { l.Warn(fmt.Sprintf(f, a...)) }
	}
	// NB: this goroutine's thread is in the host namespace (netns.Do never
	// moves it); nsBind opens the UDP sockets in ListenNetNS when it is set.
	var bind conn.Bind = conn.NewStdNetBind()
	if cfg.ListenNetNS != "" {
		bind = nsBind{Bind: bind, ns: cfg.ListenNetNS}
	}
	dev := device.NewDevice(fixedMTU{Device: tdev, mtu: cfg.MTU}, bind, logger)
	l := &Link{cfg: cfg, subnet: subnet, addr: addr, dev: dev, peers: map[PublicKey]Peer{}}
	if err := dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", cfg.Key.hex(), cfg.Listen.Port())); err != nil {
		dev.Close()
		return nil, fmt.Errorf("overlay up: configure wireguard: %w", err)
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("overlay up: start wireguard on port %d: %w", cfg.Listen.Port(), err)
	}
	port, err := l.listenPort()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("overlay up: %w", err)
	}
	l.endpoint = netip.AddrPortFrom(cfg.Listen.Addr(), port)
	return l, nil
}

// overhead is what WireGuard adds to each packet at most: IPv6 (40), UDP (8),
// its own header (16) and tag (16).
const overhead = 80

// maxMTU is the largest MTU whose packets still fit a UDP datagram with the overhead.
const maxMTU = 65535 - overhead

// PathMTU returns the overlay MTU for a link whose UDP endpoint is addr: the
// MTU of the host interface holding addr (exactly, else in its prefix) less
// WireGuard's overhead, at most 65455; DefaultMTU if no interface holds it.
func PathMTU(addr netip.Addr) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return DefaultMTU
	}
	best, exact := 0, false
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			switch {
			case ip.Unmap() == addr.Unmap():
				best, exact = ifc.MTU, true
			case !exact && netip.PrefixFrom(ip.Unmap(), ones).Contains(addr.Unmap()):
				best = ifc.MTU
			}
		}
	}
	if best == 0 {
		return DefaultMTU
	}
	return min(max(best-overhead, 1280), maxMTU)
}

func (c Config) validate() error {
	if c.LeaseID == "" {
		return errors.New("overlay config: lease id must not be empty")
	}
	if c.Rank < 0 || c.Rank > MaxRank {
		return fmt.Errorf("overlay config: rank must be 0..%d (got %d)", MaxRank, c.Rank)
	}
	if c.Key.IsZero() {
		return errors.New("overlay config: key must not be zero")
	}
	if !c.Listen.Addr().IsValid() || c.Listen.Addr().IsUnspecified() {
		return fmt.Errorf("overlay config: listen must be an address peers can dial (got %s)", c.Listen)
	}
	if c.NetNS == "" {
		return errors.New("overlay config: netns must name a network namespace")
	}
	if c.ListenNetNS != "" && !netns.Exists(c.ListenNetNS) {
		return fmt.Errorf("overlay config: listen netns %s: not a network namespace", c.ListenNetNS)
	}
	if !netns.Exists(c.NetNS) {
		return fmt.Errorf("overlay config: netns %s: not a network namespace", c.NetNS)
	}
	if len(c.Ifname) > 15 || strings.ContainsAny(c.Ifname, "/ \t\n:") {
		return fmt.Errorf("overlay config: ifname %q: must be at most 15 characters without '/', ':' or spaces", c.Ifname)
	}
	if c.MTU != 0 && (c.MTU < 1280 || c.MTU > maxMTU) {
		return fmt.Errorf("overlay config: mtu must be 1280..%d (got %d)", maxMTU, c.MTU)
	}
	return nil
}

// nsBind opens wireguard-go's UDP sockets inside the network namespace at ns.
// NB: a socket belongs to the namespace of the thread that creates it, and
// wireguard-go reopens its sockets from goroutines of its own (on every TUN
// up event), so the namespace must be entered in Open itself.
type nsBind struct {
	conn.Bind
	ns string
}

func (b nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = netns.Do(b.ns, func() error {
		var oerr error
		fns, actual, oerr = b.Bind.Open(port)
		return oerr
	})
	return fns, actual, err
}

// fixedMTU reports the MTU Up gave the TUN. NB: wireguard-go's own MTU asks
// the kernel through a socket of the calling thread's namespace, the host's,
// where the TUN does not exist, and so assumed 1420 whatever the TUN's MTU
// (it pads packets up to it).
type fixedMTU struct {
	tun.Device
	mtu int
}

func (t fixedMTU) MTU() (int, error) { return t.mtu, nil }

// inNetNS runs fn inside the namespace at path, or in the caller's when path is empty.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return netns.Do(path, fn)
}

// MTU is the TUN's MTU.
func (l *Link) MTU() int { return l.cfg.MTU }

// Endpoint is the UDP endpoint peers send to: Config.Listen's address with the bound port.
func (l *Link) Endpoint() netip.AddrPort { return l.endpoint }

// PublicKey is the member's public key.
func (l *Link) PublicKey() PublicKey { return l.cfg.Key.Public() }

// Addr is the member's overlay address.
func (l *Link) Addr() netip.Addr { return l.addr }

// Subnet is the lease's overlay subnet.
func (l *Link) Subnet() netip.Prefix { return l.subnet }

// SetPeers makes peers the link's whole peer set: new peers are added,
// missing ones removed, and the endpoints of kept ones updated without
// dropping their sessions. Each peer is reachable only at its Addr (/32). It
// refuses, changing nothing, a peer with this member's rank or key, a
// duplicate rank or key, or an Addr other than MemberAddr(subnet, Rank).
func (l *Link) SetPeers(peers []Peer) error {
	next := make(map[PublicKey]Peer, len(peers))
	ranks := map[int]bool{}
	own := l.PublicKey()
	for _, p := range peers {
		switch {
		case p.Rank < 0 || p.Rank > MaxRank:
			return fmt.Errorf("overlay peers: rank must be 0..%d (got %d)", MaxRank, p.Rank)
		case p.Rank == l.cfg.Rank:
			return fmt.Errorf("overlay peers: rank %d is this member's own", p.Rank)
		case ranks[p.Rank]:
			return fmt.Errorf("overlay peers: rank %d given twice", p.Rank)
		case p.PublicKey.IsZero():
			return fmt.Errorf("overlay peers: rank %d: public key must not be zero", p.Rank)
		case p.PublicKey == own:
			return fmt.Errorf("overlay peers: rank %d: public key is this member's own", p.Rank)
		case dupKey(next, p.PublicKey):
			return fmt.Errorf("overlay peers: rank %d: public key %s already given to rank %d", p.Rank, p.PublicKey, next[p.PublicKey].Rank)
		case !p.Endpoint.IsValid() || p.Endpoint.Addr().IsUnspecified() || p.Endpoint.Port() == 0:
			return fmt.Errorf("overlay peers: rank %d: endpoint %s is not a dialable address:port", p.Rank, p.Endpoint)
		case p.Addr != MemberAddr(l.subnet, p.Rank):
			return fmt.Errorf("overlay peers: rank %d: addr must be %s in lease subnet %s (got %s)", p.Rank, MemberAddr(l.subnet, p.Rank), l.subnet, p.Addr)
		}
		ranks[p.Rank] = true
		next[p.PublicKey] = p
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for k := range l.peers {
		if _, ok := next[k]; !ok {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.hex())
		}
	}
	var later []PublicKey
	for _, p := range sortedPeers(next) {
		fmt.Fprintf(&b, "public_key=%s\nendpoint=%s\nreplace_allowed_ips=true\nallowed_ip=%s/32\n", p.PublicKey.hex(), p.Endpoint, p.Addr)
		if _, known := l.peers[p.PublicKey]; known || p.Rank > l.cfg.Rank {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(keepalive/time.Second))
		} else {
			later = append(later, p.PublicKey)
		}
	}
	if err := l.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("overlay peers: configure wireguard: %w", err)
	}
	l.peers = next
	if len(later) > 0 {
		time.AfterFunc(nudge, func() { l.startKeepalive(later) })
	}
	return nil
}

// startKeepalive turns on the keepalive (and so a handshake, unless one is
// done) of the peers of keys that are still peers.
func (l *Link) startKeepalive(keys []PublicKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	var b strings.Builder
	for _, k := range keys {
		if _, ok := l.peers[k]; ok {
			fmt.Fprintf(&b, "public_key=%s\nupdate_only=true\npersistent_keepalive_interval=%d\n", k.hex(), int(keepalive/time.Second))
		}
	}
	if err := l.dev.IpcSet(b.String()); err != nil && l.cfg.Log != nil {
		l.cfg.Log.Warn("overlay: start keepalives", "err", err)
	}
}

// Health reports every peer SetPeers set, by rank.
func (l *Link) Health() []PeerHealth {
	l.mu.Lock()
	byKey := make(map[string]int, len(l.peers))
	for k, p := range l.peers {
		byKey[k.hex()] = p.Rank
	}
	l.mu.Unlock()
	st, err := l.dev.IpcGet()
	if err != nil {
		return nil
	}
	var out []PeerHealth
	var cur *PeerHealth
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.LastHandshake = time.Unix(sec, nsec)
			}
			out = append(out, *cur)
		}
		cur, sec, nsec = nil, 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(st))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "public_key":
			flush()
			if r, ok := byKey[v]; ok {
				cur = &PeerHealth{Rank: r}
			}
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			if cur != nil {
				cur.RxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.TxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	flush()
	sort.Slice(out, func(i, j int) bool { return out[i].Rank < out[j].Rank })
	return out
}

// WaitHandshakes returns once every peer SetPeers set has completed a
// handshake, or ctx's error when ctx ends first. Members that start their
// tasks after it never lose their first packets to a handshake in flight.
func (l *Link) WaitHandshakes(ctx context.Context) error {
	// 20 ms: a handshake over loopback takes well under a millisecond; a
	// poll costs one UAPI read.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var missing []string
		for _, h := range l.Health() {
			if h.LastHandshake.IsZero() {
				missing = append(missing, strconv.Itoa(h.Rank))
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("overlay: no handshake yet with rank %s: %w", strings.Join(missing, ", "), ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops WireGuard, closes its socket and removes the TUN device. It is
// safe to call more than once.
func (l *Link) Close() error {
	l.close.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.dev.Close()
	})
	return nil
}

func (l *Link) listenPort() (uint16, error) {
	st, err := l.dev.IpcGet()
	if err != nil {
		return 0, fmt.Errorf("read wireguard state: %w", err)
	}
	for _, line := range strings.Split(st, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return 0, fmt.Errorf("wireguard listen_port %q: %w", v, err)
			}
			return uint16(p), nil
		}
	}
	return 0, errors.New("wireguard reports no listen port")
}

func sortedPeers(m map[PublicKey]Peer) []Peer {
	out := make([]Peer, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rank < out[j].Rank })
	return out
}

func dupKey(m map[PublicKey]Peer, k PublicKey) bool { _, ok := m[k]; return ok }
