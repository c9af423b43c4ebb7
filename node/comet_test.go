package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	grpccore "github.com/cometbft/cometbft/rpc/grpc"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/ports"
)

func initTestHome(t *testing.T) string {
	t.Helper()
	home := TempHome(t)
	if _, err := Init(InitOptions{Home: home, ChainID: "kiln-ports", BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest}); err != nil {
		t.Fatal(err)
	}
	return home
}

// Port 0 is bound by the node itself and reported: the RPC answers on the address
// RPCAddr gives, /status names it, and the caller's config still says port 0.
func TestStartOnFreePortsReportsThem(t *testing.T) {
	home := initTestHome(t)
	conf, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(home, "rpc.sock")
	conf.RPC.ListenAddress = AnyLoopbackPort + ",unix://" + sock
	conf.RPC.GRPCListenAddress = AnyLoopbackPort
	conf.P2P.ListenAddress = AnyLoopbackPort
	n, err := Start(conf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	addr := n.RPCAddr()
	if !strings.HasPrefix(addr, "tcp://127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("RPCAddr() = %q, want tcp://127.0.0.1:<the port bound>", addr)
	}
	if got, want := n.comet.RPCAddrs(), []string{addr, "unix://" + sock}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("RPCAddrs() = %v, want %v", got, want)
	}
	if conf.RPC.ListenAddress != AnyLoopbackPort+",unix://"+sock {
		t.Errorf("Start changed the caller's rpc.laddr to %q", conf.RPC.ListenAddress)
	}
	c, err := client.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	// 30 s covers node start-up and a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Result struct {
			NodeInfo struct {
				Other struct {
					RPCAddress string `json:"rpc_address"`
				} `json:"other"`
			} `json:"node_info"`
		} `json:"result"`
	}
	resp, err := http.Get("http://" + strings.TrimPrefix(addr, "tcp://") + "/status")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if got := st.Result.NodeInfo.Other.RPCAddress; got != addr+",unix://"+sock {
		t.Errorf("/status rpc_address = %q, want %q", got, addr+",unix://"+sock)
	}
	gaddr := n.comet.GRPCAddr()
	if !strings.HasPrefix(gaddr, "tcp://127.0.0.1:") || strings.HasSuffix(gaddr, ":0") {
		t.Fatalf("GRPCAddr() = %q, want tcp://127.0.0.1:<the port bound>", gaddr)
	}
	//nolint:staticcheck // SA1019: CometBFT v0.38's gRPC broadcast API, which the node serves.
	if _, err := grpccore.StartGRPCClient(gaddr).Ping(ctx, &grpccore.RequestPing{}); err != nil {
		t.Errorf("gRPC ping at %s: %v", gaddr, err)
	}
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err = unix.Get("http://unix/health")
	if err != nil {
		t.Fatalf("GET /health over %s: %v", sock, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health over %s: %s", sock, resp.Status)
	}
}

// A configured port that another program holds fails the start at once with an
// error that names the setting and that ports.InUse recognises; nothing is left
// open, so the same home then starts on free ports with its state intact.
func TestStartOnTakenPortFailsCleanly(t *testing.T) {
	home := initTestHome(t)
	for _, tc := range []struct {
		name string
		set  func(conf *configAddrs, held string)
		want string
	}{
		{"rpc", func(a *configAddrs, held string) { a.rpc, a.p2p = held, AnyLoopbackPort }, "rpc.laddr"},
		{"p2p", func(a *configAddrs, held string) { a.rpc, a.p2p = AnyLoopbackPort, held }, "p2p.laddr"},
		{"grpc", func(a *configAddrs, held string) { a.rpc, a.p2p, a.grpc = AnyLoopbackPort, AnyLoopbackPort, held }, "rpc.grpc_laddr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			conf, err := LoadConfig(home)
			if err != nil {
				t.Fatal(err)
			}
			var a configAddrs
			tc.set(&a, "tcp://"+l.Addr().String())
			conf.RPC.ListenAddress, conf.P2P.ListenAddress, conf.RPC.GRPCListenAddress = a.rpc, a.p2p, a.grpc
			n, err := Start(conf, Options{})
			if err == nil {
				n.Stop()
				t.Fatalf("Start with %s on the held %s succeeded", tc.want, l.Addr())
			}
			if !ports.InUse(err) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), l.Addr().String()) {
				t.Fatalf("Start with %s on the held %s = %v, want an address-in-use error naming both", tc.want, l.Addr(), err)
			}
		})
	}
	conf, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	UseFreePorts(conf)
	n, err := Start(conf, Options{})
	if err != nil {
		t.Fatalf("Start on free ports after the failed starts = %v", err)
	}
	defer n.Stop()
	c, _ := client.New(n.RPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // start-up on a loaded machine
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
}

type configAddrs struct{ rpc, p2p, grpc string }

func TestStartRefusesBadRPCAddress(t *testing.T) {
	home := initTestHome(t)
	for _, laddr := range []string{"127.0.0.1:0", "http://127.0.0.1:0", "tcp://127.0.0.1:99999", "tcp://nosuchhost.invalid:0"} {
		conf, err := LoadConfig(home)
		if err != nil {
			t.Fatal(err)
		}
		UseFreePorts(conf)
		conf.RPC.ListenAddress = laddr
		n, err := Start(conf, Options{})
		if err == nil {
			n.Stop()
			t.Fatalf("Start(rpc.laddr %q) succeeded", laddr)
		}
		if !strings.Contains(err.Error(), "rpc.laddr") || !strings.Contains(err.Error(), laddr) {
			t.Errorf("Start(rpc.laddr %q) = %v, want an error naming rpc.laddr and the value", laddr, err)
		}
	}
}

func TestParseListenAddr(t *testing.T) {
	for _, tc := range []struct {
		in, proto, addr string
		ok              bool
	}{
		{"tcp://127.0.0.1:0", "tcp", "127.0.0.1:0", true},
		{"tcp://0.0.0.0:26657", "tcp", "0.0.0.0:26657", true},
		{"tcp://[::1]:26657", "tcp", "[::1]:26657", true},
		{"tcp://localhost:26657", "tcp", "localhost:26657", true},
		{"unix:///tmp/kiln.sock", "unix", "/tmp/kiln.sock", true},
		{"127.0.0.1:26657", "", "", false},
		{"http://127.0.0.1:26657", "", "", false},
		{"tcp://127.0.0.1", "", "", false},
		{"tcp://127.0.0.1:65536", "", "", false},
		{"tcp://127.0.0.1:-1", "", "", false},
		{"tcp://127.0.0.1:rpc", "", "", false},
		{"unix://", "", "", false},
		{"", "", "", false},
	} {
		proto, addr, err := parseListenAddr(tc.in)
		if (err == nil) != tc.ok || proto != tc.proto || addr != tc.addr {
			t.Errorf("parseListenAddr(%q) = %q, %q, %v; want %q, %q, ok %v", tc.in, proto, addr, err, tc.proto, tc.addr, tc.ok)
		}
	}
}

// FuzzParseListenAddr: no input panics; an accepted one is a listen address Go's net
// package takes apart the same way, and a refusal quotes the input.
func FuzzParseListenAddr(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:0", "unix:///tmp/s", "tcp://[::1]:1", "tcp://:", "x://y", "tcp://a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		proto, addr, err := parseListenAddr(s)
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
				t.Fatalf("parseListenAddr(%q) = %v: the error does not quote the input", s, err)
			}
			return
		}
		if proto+"://"+addr != s {
			t.Fatalf("parseListenAddr(%q) = %q, %q: does not rebuild the input", s, proto, addr)
		}
		if proto == "tcp" {
			if _, port, err := net.SplitHostPort(addr); err != nil || len(port) == 0 {
				t.Fatalf("parseListenAddr(%q) accepted %q, which net.SplitHostPort refuses: %v", s, addr, err)
			}
		}
	})
}
