package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
)

// funding is what each load account gets at the start.
const funding uint64 = 1_000_000_000

// rec is one transaction the load generator broadcast.
type rec struct {
	hash     string // upper-case hex of the CometBFT tx hash
	from, to int    // load account indexes; -1 for the market load's txs
	amount   uint64
	fee      uint64
	acked    bool // a node reported it committed with code 0
	at       time.Time
}

// load sends bank transfers between its accounts, each account sequencing its own.
type load struct {
	n       *net
	keys    []ed25519.PrivateKey
	addrs   []types.Address
	chainID string
	params  auth.Params
	from    int64 // the height that funded the accounts

	mu   sync.Mutex
	recs []rec

	market *leaseActor // the tenant and provider of the market load
}

// record appends r to the history.
func (lg *load) record(r rec) {
	lg.mu.Lock()
	lg.recs = append(lg.recs, r)
	lg.mu.Unlock()
}

// newLoad funds k fresh accounts, and the market load's tenant and provider, from
// node0's dev key, and registers the provider.
func newLoad(ctx context.Context, n *net, k int) (*load, error) {
	kr, err := keyring.Open(n.ln.Nodes[0].Home, keyring.BackendTest, nil)
	if err != nil {
		return nil, err
	}
	dev, _, err := kr.PrivKey(node.DevKeyName)
	if err != nil {
		return nil, err
	}
	lg := &load{n: n, chainID: n.ln.ChainID}
	var msgs []types.Msg
	for i := 0; i < k; i++ {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		addr := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
		lg.keys, lg.addrs = append(lg.keys, key), append(lg.addrs, addr)
		msgs = append(msgs, &bank.MsgSend{From: n.ln.Dev, To: addr, Amount: types.Coins{types.NewCoin(types.NativeDenom, funding)}})
	}
	if lg.market, err = newLeaseActor(lg); err != nil {
		return nil, err
	}
	for _, a := range []types.Address{lg.market.tAddr, lg.market.pAddr} {
		msgs = append(msgs, &bank.MsgSend{From: n.ln.Dev, To: a, Amount: types.Coins{types.NewCoin(types.NativeDenom, funding)}})
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if lg.params, err = n.cl[0].AuthParams(cctx); err != nil {
		return nil, err
	}
	r, err := n.cl[0].Send(cctx, dev, client.SignOptions{ChainID: lg.chainID}, msgs...)
	if err != nil {
		return nil, fmt.Errorf("fund %d accounts: %w", k, err)
	}
	lg.from = r.Height
	if err := lg.market.register(ctx); err != nil {
		return nil, err
	}
	return lg, nil
}

// clients returns the clients of the nodes in idx: the load's targets, taken before it
// runs (a scenario may add a node, a joiner, to n.cl meanwhile).
func (n *net) clients(idx []int) []*client.Client {
	out := make([]*client.Client, len(idx))
	for k, i := range idx {
		out[k] = n.cl[i]
	}
	return out
}

// run sends transfers until ctx ends: account i to account i+1, through the nodes of
// targets in turn; and cycles the market load's leases.
func (lg *load) run(ctx context.Context, targets []*client.Client) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		lg.market.run(ctx, targets)
	}()
	for i := range lg.keys {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			lg.account(ctx, i, targets)
		}(i)
	}
	wg.Wait()
}

func (lg *load) account(ctx context.Context, i int, targets []*client.Client) {
	var seq uint64
	to := (i + 1) % len(lg.keys)
	for k := i; ctx.Err() == nil; k++ {
		c := targets[k%len(targets)]
		amount := uint64(1 + k%97)
		raw, err := client.SignWithMinFee(lg.keys[i], lg.chainID, seq, lg.params, "", &bank.MsgSend{From: lg.addrs[i], To: lg.addrs[to], Amount: types.Coins{types.NewCoin(types.NativeDenom, amount)}})
		if err != nil {
			return
		}
		t, err := tx.Decode(raw)
		if err != nil {
			return
		}
		h := tx.Hash(raw)
		r := rec{hash: strings.ToUpper(hex.EncodeToString(h[:])), from: i, to: to, amount: amount, fee: t.Body.Fee.Amount}
		bctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err = c.BroadcastCommit(bctx, raw)
		cancel()
		r.acked, r.at = err == nil, time.Now()
		lg.record(r)
		if err == nil {
			seq++
			continue
		}
		// Not acknowledged: the tx may or may not be in a block; ask the chain
		// where this account's sequence stands before signing the next one.
		sleep(ctx, 200*time.Millisecond)
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		acc, found, qerr := c.Account(qctx, lg.addrs[i])
		cancel()
		if qerr == nil && found {
			seq = acc.Sequence
		}
	}
}

// ackedBetween counts acknowledged transactions acknowledged in [a, b).
func (lg *load) ackedBetween(a, b time.Time) int {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	n := 0
	for _, r := range lg.recs {
		if r.acked && !r.at.Before(a) && r.at.Before(b) {
			n++
		}
	}
	return n
}
