package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/cors"
	"golang.org/x/net/netutil"

	cfg "github.com/cometbft/cometbft/config"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	cmtpubsub "github.com/cometbft/cometbft/libs/pubsub"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	grpccore "github.com/cometbft/cometbft/rpc/grpc"
	rpcserver "github.com/cometbft/cometbft/rpc/jsonrpc/server"

	"github.com/kiln-network/kiln/ports"
)

// AnyLoopbackPort is a listen address on loopback whose port the kernel picks, free,
// when it is bound.
const AnyLoopbackPort = "tcp://127.0.0.1:0"

// UseFreePorts makes conf listen for RPC and P2P on loopback ports picked when they
// are bound, never ahead; Node.RPCAddr reports the RPC one (and, with metrics on,
// Node.MetricsAddr the metrics one). It suits a node that no
// peer dials (see StartComet): a single validator, a test, the demo.
func UseFreePorts(conf *cfg.Config) {
	conf.RPC.ListenAddress, conf.P2P.ListenAddress = AnyLoopbackPort, AnyLoopbackPort
	if conf.Instrumentation.Prometheus {
		conf.Instrumentation.PrometheusListenAddr = "127.0.0.1:0"
	}
}

// Comet is CometBFT running in this process, its RPC served on listeners that Kiln
// bound itself.
type Comet struct {
	node     *nm.Node
	rpc      []net.Listener // rpc.laddr, in its order, then rpc.grpc_laddr if set
	rpcAddrs []string       // the addresses they got, as proto://host:port
	grpcAddr string
	dbs      *dbTracker
}

// StartComet starts CometBFT on the home conf describes (keys, genesis, data), with
// the application behind cc.
//
// It binds the RPC addresses (rpc.laddr, rpc.grpc_laddr) before anything else, so a
// taken one fails at once with nothing started, and port 0 gets a free port that
// RPCAddr reports. NB: CometBFT v0.38 binds its RPC listeners itself and never says
// which port port 0 got (node.Node keeps them private), so Kiln binds them, starts
// CometBFT with the RPC off, and serves CometBFT's own routes on them the way its
// startRPC does.
//
// CometBFT binds p2p.laddr itself. Port 0 there gets a free port that no one is told,
// which suits a node that nobody dials (a single validator, or a node that only dials
// its persistent peers); a node that peers must reach needs a fixed port. A taken
// p2p.laddr fails with an error that ports.InUse recognises, and everything started
// is stopped again.
func StartComet(conf *cfg.Config, cc proxy.ClientCreator, logger cmtlog.Logger) (*Comet, error) {
	return startComet(conf, cc, logger, nil)
}

// startComet is StartComet with CometBFT's metrics made by metrics (nil: none).
// CometBFT never serves them itself: Start serves a node's registry.
func startComet(conf *cfg.Config, cc proxy.ClientCreator, logger cmtlog.Logger, metrics nm.MetricsProvider) (*Comet, error) {
	c := &Comet{dbs: &dbTracker{}}
	if err := c.listenRPC(conf.RPC); err != nil {
		return nil, err
	}
	pv := privval.LoadFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	nodeKey, err := p2p.LoadNodeKey(conf.NodeKeyFile())
	if err != nil {
		c.closeRPC()
		return nil, fmt.Errorf("load node key: %w", err)
	}
	// NB: a copy, so that the caller's config keeps what it asked for. CometBFT reads
	// rpc.laddr twice: into the node info (/status) when the node is made, where it
	// must name the bound addresses, and to start its own RPC server, which must not
	// run.
	run := *conf
	rpcConf := *conf.RPC
	run.RPC = &rpcConf
	inst := *conf.Instrumentation
	inst.Prometheus = false
	run.Instrumentation = &inst
	if metrics == nil {
		metrics = nm.DefaultMetricsProvider(&inst)
	}
	rpcConf.ListenAddress, rpcConf.GRPCListenAddress = strings.Join(c.rpcAddrs, ","), c.grpcAddr
	n, err := nm.NewNode(&run, pv, nodeKey, cc, nm.DefaultGenesisDocProviderFunc(&run), c.dbs.provide,
		metrics, logger)
	if err != nil {
		c.closeRPC()
		c.dbs.closeAll()
		return nil, fmt.Errorf("create CometBFT node: %w", err)
	}
	c.node = n
	rpcConf.ListenAddress, rpcConf.GRPCListenAddress = "", ""
	if err := n.Start(); err != nil {
		// NB: the node made by NewNode already runs its event bus and indexer and
		// holds its stores open; OnStop releases them (Stop refuses a node whose
		// start failed).
		n.OnStop()
		c.closeRPC()
		c.dbs.closeAll()
		if ports.InUse(err) {
			return nil, fmt.Errorf("start CometBFT node: listen for P2P on %s (p2p.laddr): %w", conf.P2P.ListenAddress, err)
		}
		return nil, fmt.Errorf("start CometBFT node: %w", err)
	}
	rpcConf.ListenAddress, rpcConf.GRPCListenAddress = strings.Join(c.rpcAddrs, ","), c.grpcAddr
	if err := c.serveRPC(conf.RPC); err != nil {
		c.Stop()
		return nil, fmt.Errorf("serve RPC: %w", err)
	}
	return c, nil
}

// listenRPC binds every address of rpc.laddr (comma-separated tcp:// or unix://
// addresses, as CometBFT reads it) and rpc.grpc_laddr.
func (c *Comet) listenRPC(rc *cfg.RPCConfig) error {
	bind := func(key, laddr string, maxOpen int) (net.Listener, string, error) {
		proto, addr, err := parseListenAddr(laddr)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
		ln, err := net.Listen(proto, addr)
		if err != nil {
			return nil, "", fmt.Errorf("listen for RPC on %s (%s): %w", laddr, key, err)
		}
		if maxOpen > 0 {
			ln = netutil.LimitListener(ln, maxOpen)
		}
		return ln, proto + "://" + ln.Addr().String(), nil
	}
	for _, laddr := range splitAddrs(rc.ListenAddress) {
		ln, addr, err := bind("rpc.laddr", laddr, rc.MaxOpenConnections)
		if err != nil {
			c.closeRPC()
			return err
		}
		c.rpc, c.rpcAddrs = append(c.rpc, ln), append(c.rpcAddrs, addr)
	}
	if rc.GRPCListenAddress != "" {
		ln, addr, err := bind("rpc.grpc_laddr", rc.GRPCListenAddress, rc.GRPCMaxOpenConnections)
		if err != nil {
			c.closeRPC()
			return err
		}
		c.rpc, c.grpcAddr = append(c.rpc, ln), addr
	}
	return nil
}

// serveRPC serves CometBFT's RPC routes on the bound listeners, as CometBFT v0.38's
// node.startRPC does on the listeners it binds.
func (c *Comet) serveRPC(rc *cfg.RPCConfig) error {
	env, err := c.node.ConfigureRPC()
	if err != nil {
		return err
	}
	routes := env.GetRoutes()
	if rc.Unsafe {
		env.AddUnsafeRoutes(routes)
	}
	sc := rpcserver.DefaultConfig()
	sc.MaxRequestBatchSize = rc.MaxRequestBatchSize
	sc.MaxBodyBytes = rc.MaxBodyBytes
	sc.MaxHeaderBytes = rc.MaxHeaderBytes
	sc.MaxOpenConnections = rc.MaxOpenConnections
	// NB: a broadcast_tx_commit answer must be written after the longest wait for its
	// commit (CometBFT does the same).
	if sc.WriteTimeout <= rc.TimeoutBroadcastTxCommit {
		sc.WriteTimeout = rc.TimeoutBroadcastTxCommit + time.Second
	}
	logger := c.node.Logger.With("module", "rpc-server")
	bus := c.node.EventBus()
	for _, ln := range c.rpc[:len(c.rpcAddrs)] {
		mux := http.NewServeMux()
		wm := rpcserver.NewWebsocketManager(routes,
			rpcserver.OnDisconnect(func(remoteAddr string) {
				if err := bus.UnsubscribeAll(context.Background(), remoteAddr); err != nil && err != cmtpubsub.ErrSubscriptionNotFound {
					logger.Error("unsubscribe a closed websocket from events", "addr", remoteAddr, "err", err)
				}
			}),
			rpcserver.ReadLimit(sc.MaxBodyBytes),
			rpcserver.WriteChanCapacity(rc.WebSocketWriteBufferSize),
		)
		wm.SetLogger(logger.With("protocol", "websocket"))
		mux.HandleFunc("/websocket", wm.WebsocketHandler)
		rpcserver.RegisterRPCFuncs(mux, routes, logger)
		var h http.Handler = mux
		if rc.IsCorsEnabled() {
			h = cors.New(cors.Options{AllowedOrigins: rc.CORSAllowedOrigins, AllowedMethods: rc.CORSAllowedMethods,
				AllowedHeaders: rc.CORSAllowedHeaders}).Handler(mux)
		}
		go func(ln net.Listener) {
			var err error
			if rc.IsTLSEnabled() {
				err = rpcserver.ServeTLS(ln, h, rc.CertFile(), rc.KeyFile(), logger, sc)
			} else {
				err = rpcserver.Serve(ln, h, logger, sc)
			}
			if err != nil && !errors.Is(err, net.ErrClosed) {
				logger.Error("RPC server stopped", "addr", ln.Addr(), "err", err)
			}
		}(ln)
	}
	if c.grpcAddr != "" {
		ln := c.rpc[len(c.rpc)-1]
		go func() {
			//nolint:staticcheck // SA1019: CometBFT v0.38's own gRPC broadcast API, which its node serves the same way.
			if err := grpccore.StartGRPCServer(env, ln); err != nil && !errors.Is(err, net.ErrClosed) {
				logger.Error("gRPC server stopped", "addr", ln.Addr(), "err", err)
			}
		}()
	}
	return nil
}

func (c *Comet) closeRPC() {
	for _, ln := range c.rpc {
		ln.Close()
	}
}

// parseListenAddr splits a CometBFT listen address, tcp://HOST:PORT or unix://PATH.
func parseListenAddr(laddr string) (proto, addr string, err error) {
	proto, addr, ok := strings.Cut(laddr, "://")
	switch {
	case !ok || (proto != "tcp" && proto != "unix"):
		return "", "", fmt.Errorf("%q: must be tcp://HOST:PORT or unix://PATH", laddr)
	case proto == "unix" && addr == "":
		return "", "", fmt.Errorf("%q: the socket path is empty", laddr)
	case proto == "tcp":
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", "", fmt.Errorf("%q: must be tcp://HOST:PORT: %w", laddr, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", "", fmt.Errorf("%q: port %q must be 0 to 65535 (0: any free port)", laddr, port)
		}
	}
	return proto, addr, nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// RPCAddr returns the address the RPC server got for the first rpc.laddr address,
// port 0 resolved (tcp://127.0.0.1:41234), or "" when rpc.laddr is empty.
func (c *Comet) RPCAddr() string {
	if len(c.rpcAddrs) == 0 {
		return ""
	}
	return c.rpcAddrs[0]
}

// RPCAddrs returns every address the RPC server got, in the order of rpc.laddr.
func (c *Comet) RPCAddrs() []string { return append([]string(nil), c.rpcAddrs...) }

// GRPCAddr returns the address CometBFT's gRPC broadcast API got, or "" when
// rpc.grpc_laddr is empty.
func (c *Comet) GRPCAddr() string { return c.grpcAddr }

// Node returns the embedded CometBFT node. Its Config names the bound RPC addresses.
func (c *Comet) Node() *nm.Node { return c.node }

// Stop stops consensus, closes the RPC listeners and every database CometBFT opened.
func (c *Comet) Stop() error {
	var err error
	if c.node.IsRunning() {
		if err = c.node.Stop(); err == nil {
			c.node.Wait()
		}
	}
	c.closeRPC()
	c.dbs.closeAll()
	return err
}
