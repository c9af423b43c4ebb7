package explorer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/x/registry"
)

// Config configures an explorer.
type Config struct {
	// Node is the CometBFT RPC address of the node to read (tcp://HOST:PORT or
	// http://HOST:PORT).
	Node string
	// Listen is the HOST:PORT to serve on; port 0 takes a free port (Server.URL says
	// which).
	Listen string
	// Refresh is how often the explorer re-reads the chain when its height moved.
	Refresh time.Duration
	// Probe is how often it checks that each provider's API answers (online, uptime).
	Probe time.Duration
	// Blocks is how many recent blocks it keeps for the block rate and the blocks list.
	Blocks int
	// Logger receives what goes wrong; nil discards.
	Logger *slog.Logger
}

// DefaultConfig: loopback, a refresh per second (blocks are 1 s by default), a
// provider probe every 10 s, the last 100 blocks.
func DefaultConfig() Config {
	return Config{Node: client.DefaultNode, Listen: "127.0.0.1:8080", Refresh: time.Second, Probe: 10 * time.Second, Blocks: 100}
}

// Validate checks c.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("node: empty; want tcp://HOST:PORT")
	case c.Refresh <= 0:
		return fmt.Errorf("refresh: must be > 0 (got %s)", c.Refresh)
	case c.Probe <= 0:
		return fmt.Errorf("probe: must be > 0 (got %s)", c.Probe)
	case c.Blocks < 2 || c.Blocks > 10_000:
		return fmt.Errorf("blocks: must be 2 to 10000 (got %d)", c.Blocks)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q: want HOST:PORT: %w", c.Listen, err)
	}
	return nil
}

// ProviderProbe is what the explorer saw of one provider's API.
type ProviderProbe struct {
	Online    bool      `json:"online"`
	LastProbe time.Time `json:"last_probe"`
	LastError string    `json:"last_error,omitempty"`
	OK        int       `json:"probes_answered"`
	Total     int       `json:"probes"`
	Since     time.Time `json:"since"`
}

// Uptime is the share of probes answered, in percent.
func (p ProviderProbe) Uptime() float64 {
	if p.Total == 0 {
		return 0
	}
	return 100 * float64(p.OK) / float64(p.Total)
}

// Server is a running explorer.
type Server struct {
	cfg     Config
	c       *client.Client
	log     *slog.Logger
	msgs    *tx.Registry
	metrics *metrics

	snap    atomic.Pointer[Snapshot]
	lastErr atomic.Pointer[string]

	mu     sync.Mutex
	probes map[string]ProviderProbe
	events []ChainEvent // newest last, at most maxEvents
	seen   int64        // the last height whose events were read

	// notBefore is when the next refresh may run: a read that took d waits d more, so
	// a chain too big to read every block is read as often as it can be, no more.
	notBefore time.Time

	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// maxEvents bounds the verification and slashing events kept in memory.
const maxEvents = 1000

// New makes an explorer for cfg; Start serves it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := client.New(cfg.Node)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, c: c, log: cfg.Logger, msgs: newMsgRegistry(), metrics: newMetrics(), probes: map[string]ProviderProbe{},
		done: make(chan struct{})}
	return s, nil
}

// Start binds the listen address, reads the chain once (so the first page has data;
// an unreachable node is logged and retried, not fatal) and serves until ctx ends or
// Close is called.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	rctx, cancel := context.WithCancel(ctx)
	s.refresh(rctx)
	s.probe(rctx)
	go func() {
		defer close(s.done)
		s.loop(rctx)
	}()
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("explorer server stopped", "err", err)
		}
		cancel()
	}()
	go func() {
		<-rctx.Done()
		s.srv.Close()
	}()
	return nil
}

// URL is the explorer's address, http://HOST:PORT (valid after Start).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops serving and the background reads.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

func (s *Server) loop(ctx context.Context) {
	refresh := time.NewTicker(s.cfg.Refresh)
	defer refresh.Stop()
	probe := time.NewTicker(s.cfg.Probe)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			s.refresh(ctx)
		case <-probe.C:
			s.probe(ctx)
		}
	}
}

// refresh re-reads the chain if its height moved, and the events of the new blocks.
func (s *Server) refresh(ctx context.Context) {
	if time.Now().Before(s.notBefore) {
		return
	}
	if old := s.snap.Load(); old != nil {
		h, err := s.c.AppHeight(ctx)
		if err == nil && h == old.Height {
			return
		}
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second) // 10,000s of records on a loaded node
	defer cancel()
	snap, err := fetch(rctx, s.c, s.cfg.Blocks)
	if err != nil {
		msg := err.Error()
		s.lastErr.Store(&msg)
		s.metrics.nodeErrors.Inc()
		s.log.Warn("read the chain", "node", s.cfg.Node, "err", err)
		return
	}
	s.readEvents(rctx, snap)
	snap.overview = buildOverview(snap, s.onlineMap())
	s.snap.Store(snap)
	s.lastErr.Store(nil)
	took := time.Since(start)
	s.notBefore = time.Now().Add(took)
	s.metrics.refresh.Observe(took.Seconds())
	s.metrics.height.Set(float64(snap.Height))
}

// readEvents keeps the events of the blocks since the last read (at most the last
// cfg.Blocks of them) that the verification page shows.
func (s *Server) readEvents(ctx context.Context, snap *Snapshot) {
	s.mu.Lock()
	from := max(s.seen+1, snap.Height-int64(s.cfg.Blocks)+1, 1)
	s.mu.Unlock()
	var got []ChainEvent
	for h := from; h <= snap.Height; h++ {
		res, err := s.c.RPC.BlockResults(ctx, &h)
		if err != nil {
			s.log.Warn("read block results", "height", h, "err", err)
			break
		}
		for _, e := range res.FinalizeBlockEvents {
			if keepEvent(snap.Modules, e.Type) {
				got = append(got, chainEvent(h, "", e.Type, e.Attributes))
			}
		}
		blk, err := s.blockTxHashes(ctx, h, len(res.TxsResults))
		if err != nil {
			break
		}
		for i, r := range res.TxsResults {
			for _, e := range r.Events {
				if keepEvent(snap.Modules, e.Type) {
					got = append(got, chainEvent(h, blk[i], e.Type, e.Attributes))
				}
			}
		}
		s.mu.Lock()
		s.seen = h
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.events = append(s.events, got...)
	if len(s.events) > maxEvents {
		s.events = append([]ChainEvent(nil), s.events[len(s.events)-maxEvents:]...)
	}
	s.mu.Unlock()
}

// blockTxHashes returns the hashes of block h's txs, reading the block only when it
// has any.
func (s *Server) blockTxHashes(ctx context.Context, h int64, n int) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := s.c.RPC.Block(ctx, &h)
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for i, t := range b.Block.Txs {
		if i < n {
			out[i] = strings.ToUpper(fmt.Sprintf("%x", t.Hash()))
		}
	}
	return out, nil
}

// recentEvents returns the kept events, newest first.
func (s *Server) recentEvents() []ChainEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ChainEvent, len(s.events))
	for i, e := range s.events {
		out[len(out)-1-i] = e
	}
	return out
}

func (s *Server) onlineMap() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool, len(s.probes))
	for k, p := range s.probes {
		m[k] = p.Online
	}
	return m
}

func (s *Server) probeOf(addr string) (ProviderProbe, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.probes[addr]
	return p, ok
}

// probe checks every provider's API (GET /v1/healthz over TLS, the certificate pinned
// to the one it published on chain), at most 8 at a time.
func (s *Server) probe(ctx context.Context) {
	snap := s.snap.Load()
	if snap == nil {
		return
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, p := range snap.Providers {
		wg.Add(1)
		sem <- struct{}{}
		go func(p registry.Provider) {
			defer func() { <-sem; wg.Done() }()
			err := probeProvider(ctx, p)
			s.mu.Lock()
			defer s.mu.Unlock()
			pr, ok := s.probes[p.Owner.String()]
			now := time.Now()
			if !ok {
				pr.Since = now
			}
			pr.Total++
			pr.LastProbe, pr.Online, pr.LastError = now, err == nil, ""
			if err != nil {
				pr.LastError = err.Error()
			} else {
				pr.OK++
			}
			s.probes[p.Owner.String()] = pr
		}(p)
	}
	wg.Wait()
	s.metrics.probes.Inc()
}

// probeTimeout is how long a provider's API has to answer: a live one answers in
// milliseconds; 3 s tolerates a loaded host.
const probeTimeout = 3 * time.Second

func probeProvider(ctx context.Context, p registry.Provider) error {
	blk, _ := pem.Decode([]byte(p.CertPEM))
	if blk == nil {
		return errors.New("no certificate on chain")
	}
	want := blk.Bytes
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		// NB: not skipping verification: VerifyPeerCertificate pins the certificate
		// the provider published on chain, which is what identifies it (its endpoint
		// may be an IP address the certificate does not name).
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || string(raw[0]) != string(want) {
				return errors.New("the API's certificate is not the one published on chain")
			}
			return nil
		},
	}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.Endpoint, "/")+"/v1/healthz", nil)
	if err != nil {
		return err
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz answered %s", res.Status)
	}
	return nil
}
