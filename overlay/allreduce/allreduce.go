// Package allreduce measures what the overlay costs a distributed training
// job: a real torch.distributed (gloo) all_reduce across ranks in network
// namespaces of their own, over the lease overlay and directly, both across
// the same modelled inter-provider link, interleaved in one run.
//
// Each member namespace has a veth to a shared bridge: that is the link
// between providers, shaped to Options.LinkMbps each way (tc tbf on both
// ends of every veth). The overlay's UDP sockets are opened on the members'
// link addresses (overlay.Config.ListenNetNS), so the overlay path is
// WireGuard over the link and the direct path is the link itself. The same
// run then measures both paths again with the shaping removed: on one host
// that figure is bound by the host's CPUs, which carry every member's
// encryption at once, not by a link.
package allreduce

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/overlay"
	"github.com/kiln-network/kiln/rendezvous"
)

//go:embed allreduce.py
var script []byte

// Options says what to measure. Zero fields but LinkMbps take DefaultOptions' values.
type Options struct {
	// Ranks is the number of ranks, each in a namespace of its own (2..16).
	Ranks int
	// Bytes is the size of the all-reduced tensor.
	Bytes int64
	// Iters is the number of all_reduces timed per path per round.
	Iters int
	// Rounds is the number of interleaved direct/overlay rounds; the result
	// is their median.
	Rounds int
	// MTU is the overlay's MTU; 0 takes the link's less WireGuard's
	// overhead (1420 on the 1500-byte veths), as wg-quick does.
	MTU int
	// LinkMbps is the modelled link's rate in megabits per second, each
	// way, for every member; 0 leaves the link unshaped (then only the
	// unshaped figures are measured, and both sets of Result hold them).
	// NB: not taken from DefaultOptions when zero.
	LinkMbps int
	// Python is a python3 with torch; "" tries /usr/bin/python3 (Debian's
	// python3-torch), then python3 on PATH.
	Python string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// DefaultOptions measures 3 ranks all-reducing 25 MiB (the size of the
// gradient buckets PyTorch's DistributedDataParallel all-reduces by default,
// bucket_cap_mb=25) across a 1000 Mbit/s link: a typical provider uplink. On a
// host with fewer than 3 cores it runs one rank per core (at least 2): each
// emulated member then has a core of its own for its rank and its WireGuard,
// as each member of a real cluster has a machine of its own; more ranks than
// cores would measure members starving each other of CPU, not the link.
func DefaultOptions() Options {
	return Options{Ranks: DefaultRanks(runtime.NumCPU()), Bytes: 25 << 20, Iters: 8, Rounds: 5, LinkMbps: 1000}
}

// DefaultRanks is the number of ranks DefaultOptions measures on a host with
// cores cores: 3, or one per core where there are fewer, at least 2.
func DefaultRanks(cores int) int {
	return max(2, min(3, cores))
}

// Result is one measurement. Bandwidths are bus bandwidths in megabits per
// second: each all_reduce of n bytes across r ranks moves 2(r-1)/r·n bytes
// through every rank's link (ring), as nccl-tests counts them.
type Result struct {
	Ranks      int   `json:"allreduce_ranks"`
	Bytes      int64 `json:"allreduce_bytes"`
	Iters      int   `json:"allreduce_iters"`
	Rounds     int   `json:"allreduce_rounds"`
	OverlayMTU int   `json:"overlay_mtu"`
	// OverlayMbps and DirectMbps are the medians over rounds.
	OverlayMbps float64 `json:"overlay_mbps"`
	DirectMbps  float64 `json:"direct_mbps"`
	// Ratio is the median over rounds of overlay over direct bandwidth.
	Ratio float64 `json:"allreduce_ratio"`
	// Ratios are the rounds' ratios, in order.
	Ratios []float64 `json:"allreduce_ratios"`
	// LinkMbps is the modelled link's rate (Options.LinkMbps) under which
	// the figures above were measured; 0 when unshaped.
	LinkMbps int `json:"link_mbps"`
	// The same measurement on the unshaped link, in the same run: what the
	// host's CPUs allow when they carry every member at once.
	OverlayMbpsUnshaped float64   `json:"overlay_mbps_unshaped"`
	DirectMbpsUnshaped  float64   `json:"direct_mbps_unshaped"`
	RatioUnshaped       float64   `json:"allreduce_ratio_unshaped"`
	RatiosUnshaped      []float64 `json:"allreduce_ratios_unshaped"`
}

// Available says why AllReduce cannot run here, or "" when it can.
func Available() string {
	if why := netns.Available(); why != "" {
		return why
	}
	if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil {
		return fmt.Sprintf("no TUN device: %v", err)
	} else {
		f.Close()
	}
	if _, err := exec.LookPath("tc"); err != nil {
		return "tc (iproute2) is not installed"
	}
	if _, err := python(""); err != nil {
		return err.Error()
	}
	return ""
}

// AllReduce sets up opts.Ranks namespaces on a bridge (the link) with a lease
// overlay across it, runs the all_reduce on both paths with the link shaped
// to opts.LinkMbps, removes the shaping (and checks it is gone), runs it
// again unshaped, and removes everything it made, also when it fails or ctx
// ends.
func AllReduce(ctx context.Context, opts Options) (Result, error) {
	opts = withDefaults(opts)
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	if why := Available(); why != "" {
		return Result{}, fmt.Errorf("allreduce: %s", why)
	}
	py, err := python(opts.Python)
	if err != nil {
		return Result{}, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sweepStale()
	net, err := setup(ctx, opts)
	if err != nil {
		return Result{}, err
	}
	defer net.teardown()
	log.Info("allreduce: namespaces up", "ranks", opts.Ranks, "overlay_subnet", net.links[0].Subnet(), "overlay_mtu", net.links[0].MTU())
	dir, err := os.MkdirTemp("", "kiln-allreduce-")
	if err != nil {
		return Result{}, fmt.Errorf("allreduce: %w", err)
	}
	defer os.RemoveAll(dir)
	sp := filepath.Join(dir, "allreduce.py")
	if err := os.WriteFile(sp, script, 0o644); err != nil {
		return Result{}, fmt.Errorf("allreduce: write script: %w", err)
	}
	var shaped map[string][]float64
	if opts.LinkMbps > 0 {
		if err := net.shape(opts.LinkMbps); err != nil {
			return Result{}, err
		}
		log.Info("allreduce: link shaped", "mbps", opts.LinkMbps)
		// NB: one TCPStore port per phase: the first's may linger in TIME_WAIT.
		if shaped, err = net.run(ctx, py, sp, opts, 29500); err != nil {
			return Result{}, err
		}
		if err := net.unshape(); err != nil {
			return Result{}, err
		}
	}
	log.Info("allreduce: link unshaped")
	unshaped, err := net.run(ctx, py, sp, opts, 29501)
	if err != nil {
		return Result{}, err
	}
	if shaped == nil {
		shaped = unshaped
	}
	return result(opts, net.links[0].MTU(), shaped, unshaped), nil
}

func withDefaults(o Options) Options {
	d := DefaultOptions()
	if o.Ranks == 0 {
		o.Ranks = d.Ranks
	}
	if o.Bytes == 0 {
		o.Bytes = d.Bytes
	}
	if o.Iters == 0 {
		o.Iters = d.Iters
	}
	if o.Rounds == 0 {
		o.Rounds = d.Rounds
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Ranks < 2 || o.Ranks > 16:
		return fmt.Errorf("allreduce: ranks must be 2..16 (got %d)", o.Ranks)
	case o.Bytes < 4 || o.Bytes > 1<<30 || o.Bytes%4 != 0:
		return fmt.Errorf("allreduce: bytes must be a multiple of 4 in 4..1 GiB (got %d)", o.Bytes)
	case o.Iters < 1 || o.Iters > 30:
		// NB: the tensor triples every all_reduce (ranks=3) and float32 ends at 3^80.
		return fmt.Errorf("allreduce: iters must be 1..30 (got %d)", o.Iters)
	case o.MTU != 0 && (o.MTU < 1280 || o.MTU > 65535-80):
		return fmt.Errorf("allreduce: mtu must be 1280..%d (got %d)", 65535-80, o.MTU)
	case o.LinkMbps < 0 || o.LinkMbps > 100000:
		return fmt.Errorf("allreduce: link mbps must be 0 (unshaped)..100000 (got %d)", o.LinkMbps)
	case o.Rounds < 1 || o.Rounds > 50:
		return fmt.Errorf("allreduce: rounds must be 1..50 (got %d)", o.Rounds)
	}
	return nil
}

func result(o Options, mtu int, shaped, unshaped map[string][]float64) Result {
	r := Result{Ranks: o.Ranks, Bytes: o.Bytes, Iters: o.Iters, Rounds: o.Rounds, OverlayMTU: mtu, LinkMbps: o.LinkMbps}
	r.OverlayMbps, r.DirectMbps, r.Ratio, r.Ratios = phase(o, shaped)
	r.OverlayMbpsUnshaped, r.DirectMbpsUnshaped, r.RatioUnshaped, r.RatiosUnshaped = phase(o, unshaped)
	return r
}

// phase turns one phase's seconds per round into median bus bandwidths, the
// median ratio and the rounds' ratios.
func phase(o Options, secs map[string][]float64) (overlayMbps, directMbps, ratio float64, ratios []float64) {
	moved := float64(o.Bytes) * float64(o.Iters) * 2 * float64(o.Ranks-1) / float64(o.Ranks)
	mbps := func(s float64) float64 { return moved * 8 / s / 1e6 }
	var ov, di []float64
	for i := range secs["direct"] {
		ov = append(ov, mbps(secs["overlay"][i]))
		di = append(di, mbps(secs["direct"][i]))
		ratios = append(ratios, round3(ov[i]/di[i]))
	}
	return round3(median(ov)), round3(median(di)), round3(median(ratios)), ratios
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round3(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

// python returns a python3 that imports torch.distributed with gloo.
func python(want string) (string, error) {
	cands := []string{"/usr/bin/python3", "python3"}
	if want != "" {
		cands = []string{want}
	}
	var tried []string
	for _, c := range cands {
		bin, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, c+": not found")
			continue
		}
		out, err := exec.Command(bin, "-c", "import torch.distributed as d; assert d.is_gloo_available(), 'no gloo'").CombinedOutput()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %s", bin, lastLine(out)))
			continue
		}
		return bin, nil
	}
	return "", fmt.Errorf("allreduce: no python3 with torch.distributed (install Debian's python3-torch): %s", strings.Join(tried, "; "))
}

// tail returns the last n lines of b, joined by " | ".
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " | ")
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// Namespaces, links and the bridge of one run. Every name carries the
// process id, so that a later run removes what a killed one left (its pid
// gone) and never touches another live run's.
const prefix = "kar"

type testbed struct {
	id    string       // prefix + pid
	link  netip.Prefix // the link's addresses, one per member
	ns    []string     // member namespace paths
	links []*overlay.Link
}

func (b *testbed) nsName(i int) string  { return fmt.Sprintf("%s-%d", b.id, i) }
func (b *testbed) hub() string          { return b.id + "-hub" }
func (b *testbed) hubVeth(i int) string { return fmt.Sprintf("%sv%d", b.id, i) }
func (b *testbed) linkAddr(i int) netip.Addr {
	a := b.link.Addr().As4()
	a[3] = byte(i + 1)
	return netip.AddrFrom4(a)
}

// linkIf is the member's end of its veth to the bridge: its link to the others.
const linkIf = "klink"

func setup(ctx context.Context, o Options) (_ *testbed, err error) {
	pid := os.Getpid()
	// NB: 10.99.0.0/16 lies outside overlay.Space, so the two paths never share a route.
	b := &testbed{id: fmt.Sprintf("%s%d", prefix, pid), link: netip.MustParsePrefix(fmt.Sprintf("10.99.%d.0/24", pid%250+1))}
	defer func() {
		if err != nil {
			b.teardown()
		}
	}()
	// The bridge lives in a namespace of its own, away from the host's firewall
	// (Docker's FORWARD DROP with bridge-nf-call-iptables would drop bridged packets).
	if _, err := netns.Add(b.hub()); err != nil {
		return nil, fmt.Errorf("allreduce: %w", err)
	}
	steps := [][]string{
		{"-n", b.hub(), "link", "add", "br0", "type", "bridge"},
		{"-n", b.hub(), "link", "set", "br0", "up"},
	}
	for i := 0; i < o.Ranks; i++ {
		p, err := netns.Add(b.nsName(i))
		if err != nil {
			return nil, fmt.Errorf("allreduce: %w", err)
		}
		b.ns = append(b.ns, p)
		host := b.hubVeth(i)
		steps = append(steps,
			[]string{"link", "add", host, "type", "veth", "peer", "name", linkIf, "netns", b.nsName(i)},
			[]string{"link", "set", host, "netns", b.hub()},
			[]string{"-n", b.hub(), "link", "set", host, "master", "br0", "up"},
			[]string{"-n", b.nsName(i), "addr", "add", netip.PrefixFrom(b.linkAddr(i), 24).String(), "dev", linkIf},
			[]string{"-n", b.nsName(i), "link", "set", linkIf, "up"},
		)
	}
	for _, s := range steps {
		if err := netns.IP(s...); err != nil {
			return nil, fmt.Errorf("allreduce: %w", err)
		}
	}
	lease := b.id
	for i := 0; i < o.Ranks; i++ {
		k, err := overlay.GenerateKey()
		if err != nil {
			return nil, err
		}
		// The member's UDP socket is on its end of the link, as a
		// provider's is on its uplink.
		l, err := overlay.Up(ctx, overlay.Config{LeaseID: lease, Rank: i, Key: k,
			Listen: netip.AddrPortFrom(b.linkAddr(i), 0), ListenNetNS: b.ns[i], NetNS: b.ns[i], MTU: o.MTU})
		if err != nil {
			return nil, fmt.Errorf("allreduce: %w", err)
		}
		b.links = append(b.links, l)
	}
	for i, l := range b.links {
		var peers []overlay.Peer
		for j, o := range b.links {
			if j != i {
				peers = append(peers, overlay.Peer{Rank: j, PublicKey: o.PublicKey(), Endpoint: o.Endpoint(), Addr: o.Addr()})
			}
		}
		if err := l.SetPeers(peers); err != nil {
			return nil, fmt.Errorf("allreduce: %w", err)
		}
	}
	// 20 s: the first handshakes take a second, 5 s more where two crossed.
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, l := range b.links {
		if err := l.WaitHandshakes(hctx); err != nil {
			return nil, fmt.Errorf("allreduce: %w", err)
		}
	}
	return b, nil
}

func (b *testbed) teardown() {
	for _, l := range b.links {
		l.Close()
	}
	for i := range b.ns {
		netns.Delete(b.nsName(i))
	}
	netns.Delete(b.hub())
}

// sweepStale removes the namespaces of earlier runs whose process is gone.
// Their veths go with them.
func sweepStale() {
	names, _ := netns.List(prefix)
	for _, n := range names {
		rest := strings.TrimPrefix(n, prefix)
		pid, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil {
			netns.Delete(n)
		}
	}
}

// shape limits every member's link to mbps each way: a tbf on both ends of
// its veth (the member's end sends, the bridge's end delivers to it).
func (b *testbed) shape(mbps int) error {
	// The bucket holds 1 ms at the rate, and at least two 64 KiB GSO
	// packets, which tbf would otherwise split.
	burst := max(mbps*1000/8, 128<<10)
	for i := range b.ns {
		for _, e := range b.ends(i) {
			if _, err := tc(e.ns, "qdisc", "replace", "dev", e.dev, "root", "tbf",
				"rate", fmt.Sprintf("%dmbit", mbps), "burst", strconv.Itoa(burst), "latency", "20ms"); err != nil {
				return fmt.Errorf("allreduce: shape link: %w", err)
			}
		}
	}
	return nil
}

// unshape removes the shaping and checks that no tbf is left on any end.
func (b *testbed) unshape() error {
	for i := range b.ns {
		for _, e := range b.ends(i) {
			if _, err := tc(e.ns, "qdisc", "del", "dev", e.dev, "root"); err != nil {
				return fmt.Errorf("allreduce: unshape link: %w", err)
			}
			out, err := tc(e.ns, "qdisc", "show", "dev", e.dev)
			if err != nil {
				return fmt.Errorf("allreduce: unshape link: %w", err)
			}
			if strings.Contains(out, "tbf") {
				return fmt.Errorf("allreduce: unshape link: %s in %s still shaped: %s", e.dev, e.ns, out)
			}
		}
	}
	return nil
}

type veth struct{ ns, dev string }

// ends returns both ends of member i's veth: its own and the bridge's.
func (b *testbed) ends(i int) []veth {
	return []veth{{b.nsName(i), linkIf}, {b.hub(), b.hubVeth(i)}}
}

// tc runs tc(8) in the named namespace and returns its output, which is in
// the error when it fails.
func tc(ns string, args ...string) (string, error) {
	args = append([]string{"-n", ns}, args...)
	out, err := exec.Command("tc", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// run starts one python per rank in its namespace and returns rank 0's
// seconds per path per round.
func (b *testbed) run(ctx context.Context, py, script string, o Options, port int) (map[string][]float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := make([]rendezvous.Member, len(b.ns))
	for i := range members {
		members[i] = rendezvous.Member{Rank: i, Addr: b.linkAddr(i), Slots: 1}
	}
	type proc struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	procs := make([]*proc, len(b.ns))
	done := make(chan error, len(b.ns))
	for i := range b.ns {
		p := &proc{}
		p.cmd = exec.CommandContext(ctx, py, "-B", script,
			"--bytes", strconv.FormatInt(o.Bytes, 10), "--iters", strconv.Itoa(o.Iters), "--rounds", strconv.Itoa(o.Rounds),
			"--direct-if", linkIf, "--overlay-if", overlay.DefaultIfname)
		p.cmd.Env = append(os.Environ(), rendezvous.Env(i, 0, members, port, linkIf)...)
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		p.cmd.WaitDelay = 5 * time.Second
		if err := netns.Do(b.ns[i], p.cmd.Start); err != nil {
			return nil, fmt.Errorf("allreduce: start rank %d: %w", i, err)
		}
		procs[i] = p
		go func() { done <- p.cmd.Wait() }()
	}
	var errs []error
	for range procs {
		if err := <-done; err != nil {
			cancel() // one rank failed: the others would wait for it until gloo's timeout
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		var msgs []string
		for i, p := range procs {
			msgs = append(msgs, fmt.Sprintf("rank %d: %s", i, tail(p.out.Bytes(), 3)))
		}
		return nil, fmt.Errorf("allreduce: %w: %s", errors.Join(errs...), strings.Join(msgs, "; "))
	}
	var secs map[string][]float64
	sc := bufio.NewScanner(&procs[0].out)
	for sc.Scan() {
		if line := sc.Bytes(); bytes.HasPrefix(line, []byte("{")) {
			if err := json.Unmarshal(line, &secs); err != nil {
				return nil, fmt.Errorf("allreduce: rank 0 output %q: %w", line, err)
			}
		}
	}
	if len(secs["direct"]) != o.Rounds || len(secs["overlay"]) != o.Rounds {
		return nil, fmt.Errorf("allreduce: rank 0 reported %v, want %d rounds per path: %s", secs, o.Rounds, lastLine(procs[0].out.Bytes()))
	}
	return secs, nil
}
