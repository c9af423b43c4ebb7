// Package allreduce measures what the overlay costs a distributed training
// job: a real torch.distributed (gloo) all_reduce across ranks in network
// namespaces of their own, over the lease overlay and over a plain veth and
// bridge between the same namespaces, interleaved in one run.
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

// Options says what to measure. Zero fields take DefaultOptions' values.
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
	// MTU is the overlay's MTU; 0 takes the path's (overlay.PathMTU of the
	// loopback the links talk over).
	MTU int
	// Python is a python3 with torch; "" tries /usr/bin/python3 (Debian's
	// python3-torch), then python3 on PATH.
	Python string
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// DefaultOptions measures 3 ranks all-reducing 25 MiB: the size of the
// gradient buckets PyTorch's DistributedDataParallel all-reduces by default
// (bucket_cap_mb=25).
func DefaultOptions() Options {
	return Options{Ranks: 3, Bytes: 25 << 20, Iters: 8, Rounds: 5}
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
	if _, err := python(""); err != nil {
		return err.Error()
	}
	return ""
}

// AllReduce sets up opts.Ranks namespaces linked both by a lease overlay and
// by a bridge, runs the all_reduce on both paths, and removes everything it
// made, also when it fails or ctx ends.
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
	log.Info("allreduce: namespaces up", "ranks", opts.Ranks, "overlay_subnet", net.links[0].Subnet())
	dir, err := os.MkdirTemp("", "kiln-allreduce-")
	if err != nil {
		return Result{}, fmt.Errorf("allreduce: %w", err)
	}
	defer os.RemoveAll(dir)
	sp := filepath.Join(dir, "allreduce.py")
	if err := os.WriteFile(sp, script, 0o644); err != nil {
		return Result{}, fmt.Errorf("allreduce: write script: %w", err)
	}
	secs, err := net.run(ctx, py, sp, opts)
	if err != nil {
		return Result{}, err
	}
	return result(opts, secs), nil
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
	if o.MTU == 0 {
		o.MTU = overlay.PathMTU(listen.Addr())
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
	case o.MTU < 1280 || o.MTU > 65535-80:
		return fmt.Errorf("allreduce: mtu must be 1280..%d (got %d)", 65535-80, o.MTU)
	case o.Rounds < 1 || o.Rounds > 50:
		return fmt.Errorf("allreduce: rounds must be 1..50 (got %d)", o.Rounds)
	}
	return nil
}

func result(o Options, secs map[string][]float64) Result {
	moved := float64(o.Bytes) * float64(o.Iters) * 2 * float64(o.Ranks-1) / float64(o.Ranks)
	mbps := func(s float64) float64 { return moved * 8 / s / 1e6 }
	r := Result{Ranks: o.Ranks, Bytes: o.Bytes, Iters: o.Iters, Rounds: o.Rounds, OverlayMTU: o.MTU}
	var ov, di []float64
	for i := range secs["direct"] {
		ov = append(ov, mbps(secs["overlay"][i]))
		di = append(di, mbps(secs["direct"][i]))
		r.Ratios = append(r.Ratios, round3(ov[i]/di[i]))
	}
	r.OverlayMbps, r.DirectMbps = round3(median(ov)), round3(median(di))
	r.Ratio = round3(median(r.Ratios))
	return r
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
	id     string // prefix + pid
	direct netip.Prefix
	ns     []string // member namespace paths
	links  []*overlay.Link
}

func (b *testbed) nsName(i int) string { return fmt.Sprintf("%s-%d", b.id, i) }
func (b *testbed) hub() string         { return b.id + "-hub" }
func (b *testbed) directAddr(i int) netip.Addr {
	a := b.direct.Addr().As4()
	a[3] = byte(i + 1)
	return netip.AddrFrom4(a)
}

const directIf = "kdirect"

// listen is where the links' UDP sockets are: the host's loopback, as when
// every provider of a cluster runs on one host.
var listen = netip.MustParseAddrPort("127.0.0.1:0")

func setup(ctx context.Context, o Options) (_ *testbed, err error) {
	pid := os.Getpid()
	// NB: 10.99.0.0/16 lies outside overlay.Space, so the two paths never share a route.
	b := &testbed{id: fmt.Sprintf("%s%d", prefix, pid), direct: netip.MustParsePrefix(fmt.Sprintf("10.99.%d.0/24", pid%250+1))}
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
		host := fmt.Sprintf("%sv%d", b.id, i)
		steps = append(steps,
			[]string{"link", "add", host, "type", "veth", "peer", "name", directIf, "netns", b.nsName(i)},
			[]string{"link", "set", host, "netns", b.hub()},
			[]string{"-n", b.hub(), "link", "set", host, "master", "br0", "up"},
			[]string{"-n", b.nsName(i), "addr", "add", netip.PrefixFrom(b.directAddr(i), 24).String(), "dev", directIf},
			[]string{"-n", b.nsName(i), "link", "set", directIf, "up"},
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
		l, err := overlay.Up(ctx, overlay.Config{LeaseID: lease, Rank: i, Key: k,
			Listen: listen, NetNS: b.ns[i], MTU: o.MTU})
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

// run starts one python per rank in its namespace and returns rank 0's
// seconds per path per round.
func (b *testbed) run(ctx context.Context, py, script string, o Options) (map[string][]float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := make([]rendezvous.Member, len(b.ns))
	for i := range members {
		members[i] = rendezvous.Member{Rank: i, Addr: b.directAddr(i), Slots: 1}
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
			"--direct-if", directIf, "--overlay-if", overlay.DefaultIfname)
		p.cmd.Env = append(os.Environ(), rendezvous.Env(i, 0, members, 29500, directIf)...)
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
