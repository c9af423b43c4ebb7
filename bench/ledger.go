// Package bench holds Kiln's end-to-end benchmarks, each measured against a baseline
// in the same run so that the ratio, not the absolute number, is what is compared.
package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbft/cometbft/abci/example/kvstore"
	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// LedgerOptions configure the ledger benchmark.
type LedgerOptions struct {
	Duration  time.Duration // measured window per chain
	Warmup    time.Duration // load before the window opens
	Clients   int           // concurrent submitters
	BlockTime time.Duration // timeout_commit of both chains
	Progress  io.Writer
}

// DefaultLedgerOptions: 16 clients, 10 s measured after 2 s of warm-up, 1-s blocks
// (Kiln's default block time).
func DefaultLedgerOptions() LedgerOptions {
	return LedgerOptions{Duration: 10 * time.Second, Warmup: 2 * time.Second, Clients: 16, BlockTime: time.Second}
}

// Run is one chain's measurement.
type Run struct {
	Committed int     `json:"committed_txs"`
	Submitted int     `json:"submitted_txs"`
	Refused   int     `json:"refused_txs"`
	Blocks    int     `json:"blocks"`
	TPS       float64 `json:"tps"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
}

// LedgerResult is the benchmark's report.
type LedgerResult struct {
	KvstoreTPS float64 `json:"kvstore_tps"`
	KilnTPS    float64 `json:"kiln_tps"`
	Ratio      float64 `json:"ratio"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Kvstore    Run     `json:"kvstore"`
	Kiln       Run     `json:"kiln"`
	Clients    int     `json:"clients"`
	Duration   string  `json:"duration"`
	BlockTime  string  `json:"block_time"`
	Target     float64 `json:"target_ratio"`
	Pass       bool    `json:"meets_target"`
}

// Ledger runs CometBFT's kvstore example app and then a Kiln node under the same
// consensus settings and the same load shape, and compares committed tx/s.
func Ledger(ctx context.Context, o LedgerOptions) (LedgerResult, error) {
	if o.Clients < 1 || o.Clients > 256 {
		return LedgerResult{}, fmt.Errorf("clients %d: must be 1 to 256", o.Clients)
	}
	if o.Duration <= 0 || o.BlockTime <= 0 {
		return LedgerResult{}, errors.New("duration and block time must be > 0")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	res := LedgerResult{Clients: o.Clients, Duration: o.Duration.String(), BlockTime: o.BlockTime.String(), Target: 0.8}
	fmt.Fprintf(o.Progress, "==> kvstore: %d clients, %s window, %s blocks\n", o.Clients, o.Duration, o.BlockTime)
	kv, err := runKvstore(ctx, o)
	if err != nil {
		return res, fmt.Errorf("kvstore run: %w", err)
	}
	fmt.Fprintf(o.Progress, "    %.0f tx/s (p50 %.0f ms, p99 %.0f ms)\n", kv.TPS, kv.P50ms, kv.P99ms)
	fmt.Fprintf(o.Progress, "==> kiln: same settings, signed bank transfers\n")
	kn, err := runKiln(ctx, o)
	if err != nil {
		return res, fmt.Errorf("kiln run: %w", err)
	}
	fmt.Fprintf(o.Progress, "    %.0f tx/s (p50 %.0f ms, p99 %.0f ms)\n", kn.TPS, kn.P50ms, kn.P99ms)
	res.Kvstore, res.Kiln = kv, kn
	res.KvstoreTPS, res.KilnTPS = kv.TPS, kn.TPS
	if kv.TPS > 0 {
		res.Ratio = math.Round(kn.TPS/kv.TPS*1000) / 1000
	}
	res.P50ms, res.P99ms = kn.P50ms, kn.P99ms
	res.Pass = res.Ratio >= res.Target
	return res, nil
}

func runKvstore(ctx context.Context, o LedgerOptions) (Run, error) {
	home, err := os.MkdirTemp("", "kiln-bench-kvstore-")
	if err != nil {
		return Run{}, err
	}
	defer os.RemoveAll(home)
	conf := node.DefaultConfig(home, "kvstore", o.BlockTime)
	node.UseFreePorts(conf)
	cfg.EnsureRoot(home)
	pv := privval.GenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	pv.Save()
	if _, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile()); err != nil {
		return Run{}, err
	}
	pub, _ := pv.GetPubKey()
	doc := &cmttypes.GenesisDoc{ChainID: "kvstore-bench", GenesisTime: time.Now().UTC(), ConsensusParams: cmttypes.DefaultConsensusParams(),
		Validators: []cmttypes.GenesisValidator{{Address: pub.Address(), PubKey: pub, Power: 10}}, InitialHeight: 1}
	if err := doc.ValidateAndComplete(); err != nil {
		return Run{}, err
	}
	if err := doc.SaveAs(conf.GenesisFile()); err != nil {
		return Run{}, err
	}
	kapp := kvstore.NewPersistentApplication(filepath.Join(home, "data", "kvstore"))
	// NB: the same start path as Kiln's node (node.StartComet), so that both chains
	// run the same CometBFT and RPC server.
	n, err := node.StartComet(conf, proxy.NewLocalClientCreator(kapp), node.NewCometLogger(discardLogger(), 100))
	if err != nil {
		return Run{}, err
	}
	defer n.Stop()
	gen := func(c, i int) ([]byte, error) { return []byte(fmt.Sprintf("bench-%d-%d=%d", c, i, i)), nil }
	return drive(ctx, o, n.RPCAddr(), n.Node().EventBus(), gen, nil)
}

func clientKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(fmt.Sprint("kiln-bench-client-", i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

func runKiln(ctx context.Context, o LedgerOptions) (Run, error) {
	home, err := os.MkdirTemp("", "kiln-bench-kiln-")
	if err != nil {
		return Run{}, err
	}
	defer os.RemoveAll(home)
	keys := make([]ed25519.PrivateKey, o.Clients)
	addrs := make([]types.Address, o.Clients)
	var accounts []bank.GenesisBalance
	for i := range keys {
		keys[i] = clientKey(i)
		addrs[i] = types.AddressFromPubKey(keys[i].Public().(ed25519.PublicKey))
		accounts = append(accounts, bank.GenesisBalance{Address: addrs[i], Coins: types.Coins{types.NewCoin(types.NativeDenom, 1<<50)}})
	}
	const chainID = "kiln-bench"
	if _, err := node.Init(node.InitOptions{Home: home, ChainID: chainID, BlockTime: o.BlockTime, KeyringBackend: keyring.BackendTest, Accounts: accounts}); err != nil {
		return Run{}, err
	}
	loaded, err := node.LoadConfig(home)
	if err != nil {
		return Run{}, err
	}
	node.UseFreePorts(loaded)
	n, err := node.Start(loaded, node.Options{CometLevel: 100})
	if err != nil {
		return Run{}, err
	}
	defer n.Stop()
	params := app.DefaultGenesis().Params.Auth
	seqs := make([]uint64, o.Clients)
	sign := func(c int) ([]byte, error) {
		to := addrs[(c+1)%len(addrs)]
		raw, err := client.SignWithMinFee(keys[c], chainID, seqs[c], params, "",
			&bank.MsgSend{From: addrs[c], To: to, Amount: types.Coins{types.NewCoin(types.NativeDenom, 1)}})
		if err == nil {
			seqs[c]++
		}
		return raw, err
	}
	// Sign ahead, outside the measured window, so that the load generator's ed25519
	// signing (kvstore's txs cost nothing to make) does not take CPU from the node.
	// presignRate bounds the tx/s this covers; past it clients sign inline.
	const presignRate = 10000
	perClient := int((o.Warmup+o.Duration).Seconds()*presignRate)/o.Clients + 1
	type signed struct {
		seq uint64
		raw []byte
	}
	pools := make([][]signed, o.Clients)
	var pwg sync.WaitGroup
	for c := range pools {
		pwg.Add(1)
		go func(c int) {
			defer pwg.Done()
			for i := 0; i < perClient; i++ {
				seq := seqs[c]
				raw, err := sign(c)
				if err != nil {
					return
				}
				pools[c] = append(pools[c], signed{seq, raw})
			}
		}(c)
	}
	pwg.Wait()
	fmt.Fprintf(o.Progress, "    pre-signed %d transfers\n", perClient*o.Clients)
	gen := func(c, i int) ([]byte, error) {
		if len(pools[c]) > 0 {
			raw := pools[c][0].raw
			pools[c] = pools[c][1:]
			return raw, nil
		}
		return sign(c)
	}
	cl, err := client.New(n.RPCAddr())
	if err != nil {
		return Run{}, err
	}
	resync := func(c int) {
		acc, _, err := cl.Account(ctx, addrs[c])
		if err != nil {
			return
		}
		// NB: refusals come from sequence gaps: CometBFT drops a tx that CheckTx accepted
		// when the mempool is full at that moment, so later txs of the account are out
		// of order. Go on from the committed sequence with the pool's txs (those still
		// pending come back "already in cache" and are skipped), else sign afresh.
		p := pools[c]
		for len(p) > 0 && p[0].seq < acc.Sequence {
			p = p[1:]
		}
		if len(p) > 0 && p[0].seq == acc.Sequence {
			pools[c] = p
			return
		}
		pools[c] = nil
		seqs[c] = acc.Sequence
	}
	return drive(ctx, o, n.RPCAddr(), n.CometBFT().EventBus(), gen, resync)
}

// drive submits txs from o.Clients goroutines through RPC broadcast_tx_sync, and
// watches committed blocks on the node's event bus to count commits and measure
// submit-to-commit latency. resync, if set, is called after a refused tx.
func drive(ctx context.Context, o LedgerOptions, rpcAddr string, bus *cmttypes.EventBus,
	gen func(c, i int) ([]byte, error), resync func(c int)) (Run, error) {
	var run Run
	// 60 s covers node start-up and the first block on a loaded 2-core machine.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rc, err := client.New(rpcAddr)
	if err != nil {
		return run, err
	}
	if err := rc.WaitHeight(wctx, 2); err != nil {
		return run, err
	}
	sub, err := bus.Subscribe(ctx, "kiln-bench", cmttypes.EventQueryNewBlock, 10000)
	if err != nil {
		return run, err
	}
	defer bus.UnsubscribeAll(context.Background(), "kiln-bench")

	var submitted sync.Map // tx hash -> submit time
	var nSubmitted, nRefused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < o.Clients; c++ {
		hc, err := rpchttp.New(rpcAddr, "/websocket")
		if err != nil {
			return run, err
		}
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				raw, err := gen(c, i)
				if err != nil {
					return
				}
				for attempt := 0; attempt < 1000; attempt++ {
					t0 := time.Now()
					h := sha256.Sum256(raw)
					submitted.Store(h, t0)
					res, err := hc.BroadcastTxSync(ctx, raw)
					if err != nil {
						submitted.Delete(h)
						if strings.Contains(err.Error(), "mempool is full") {
							time.Sleep(20 * time.Millisecond)
							continue
						}
						if strings.Contains(err.Error(), "already exists in cache") {
							break // sent again after a resync, and still pending: go on
						}
						select {
						case <-stop:
							return
						default:
						}
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if res.Code != 0 {
						submitted.Delete(h)
						nRefused.Add(1)
						if resync != nil {
							resync(c)
						}
						break
					}
					nSubmitted.Add(1)
					break
				}
			}
		}(c)
	}

	var lat []float64
	warmEnd := time.Now().Add(o.Warmup)
	var windowEnd time.Time
	measuring := false
	committed := 0
	blocks := 0
	var windowStart time.Time
loop:
	for {
		select {
		case msg := <-sub.Out():
			now := time.Now()
			blk := msg.Data().(cmttypes.EventDataNewBlock).Block
			if !measuring {
				if now.After(warmEnd) {
					measuring, windowStart, windowEnd = true, now, now.Add(o.Duration)
				}
				for _, t := range blk.Txs {
					submitted.Delete(sha256.Sum256(t))
				}
				continue
			}
			if now.After(windowEnd) {
				break loop
			}
			blocks++
			for _, t := range blk.Txs {
				committed++
				h := sha256.Sum256(t)
				if v, ok := submitted.LoadAndDelete(h); ok {
					lat = append(lat, float64(now.Sub(v.(time.Time)).Microseconds())/1000)
				}
			}
		case <-sub.Canceled():
			return run, fmt.Errorf("event subscription cancelled: %v", sub.Err())
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(30 * time.Second): // no block for 30 s: the node is stuck
			return run, errors.New("no block for 30 s")
		}
	}
	elapsed := windowEnd.Sub(windowStart)
	close(stop)
	wg.Wait()
	run.Committed, run.Blocks = committed, blocks
	run.Submitted, run.Refused = int(nSubmitted.Load()), int(nRefused.Load())
	run.TPS = math.Round(float64(committed)/elapsed.Seconds()*10) / 10
	run.P50ms, run.P99ms = percentile(lat, 50), percentile(lat, 99)
	return run, nil
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	i := int(math.Ceil(p/100*float64(len(v)))) - 1
	if i < 0 {
		i = 0
	}
	return math.Round(v[i]*10) / 10
}
