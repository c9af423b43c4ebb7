package testnet

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/lightclient"
	"github.com/kiln-network/kiln/types"
)

// check compares the load generator's history with the chain: every acknowledged tx
// is in a block with code 0, none is applied twice, each load account's balance is
// its funding replayed with the applied txs, no lease of the market load was paid
// past its close (checkLeases), the chain's books add up, and the nodes in idx agree
// on every block hash they share.
func check(ctx context.Context, n *net, lg *load, idx []int, res *Result) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c := n.cl[0]
	// The balances and the height they were read at: read the height before and
	// after them and retry until no block came between, so the block scan below
	// ends where the balances were read (a load tx not acknowledged may still sit
	// in a mempool and land after the load stopped).
	bals := make([]uint64, len(lg.addrs))
	var h int64
	for try := 0; ; try++ {
		h0, err := c.AppHeight(cctx)
		if err != nil {
			return err
		}
		for i, a := range lg.addrs {
			coins, err := c.Balances(cctx, a)
			if err != nil {
				return err
			}
			bals[i] = 0
			for _, co := range coins {
				if co.Denom == types.NativeDenom {
					bals[i] = co.Amount
				}
			}
		}
		if h, err = c.AppHeight(cctx); err != nil {
			return err
		}
		if h == h0 {
			break
		}
		if try == 20 {
			return fmt.Errorf("balances: the chain moved on while they were read, %d times (last %d -> %d)", try+1, h0, h)
		}
	}
	res.Height = h
	applied := map[string]int{}
	for ht := lg.from; ht <= h; ht++ {
		b, err := c.RPC.Block(cctx, &ht)
		if err != nil {
			return fmt.Errorf("block %d: %w", ht, err)
		}
		br, err := c.RPC.BlockResults(cctx, &ht)
		if err != nil {
			return fmt.Errorf("block results %d: %w", ht, err)
		}
		if bt := b.Block.Time; bt.Before(n.began.Add(-5*time.Second)) || bt.After(time.Now().Add(5*time.Second)) {
			res.Problems = append(res.Problems, fmt.Sprintf("block %d has time %s, outside the run (%s to now)", ht, bt.Format(time.RFC3339Nano), n.began.Format(time.RFC3339Nano)))
		}
		if n.skew != nil {
			for _, sig := range b.Block.LastCommit.Signatures {
				if bytes.Equal(sig.ValidatorAddress, n.skew.signer.Key.Address) && sig.BlockIDFlag == cmttypes.BlockIDFlagCommit && sig.Timestamp.Sub(b.Block.Time).Abs() > 30*time.Minute {
					res.SkewedVotes++
				}
			}
		}
		for k, t := range b.Block.Txs {
			if k < len(br.TxsResults) && br.TxsResults[k].Code == 0 {
				applied[strings.ToUpper(hex.EncodeToString(t.Hash()))]++
			}
		}
	}
	lg.mu.Lock()
	recs := append([]rec(nil), lg.recs...)
	lg.mu.Unlock()
	want := replay(recs, applied, len(lg.addrs), res)
	res.BalancesMatch = true
	for i := range want {
		if want[i] != bals[i] {
			res.BalancesMatch = false
			res.Problems = append(res.Problems, fmt.Sprintf("account %s holds %d %s; the applied history gives %d", lg.addrs[i], bals[i], types.NativeDenom, want[i]))
		}
	}
	if err := lg.market.checkLeases(cctx, res); err != nil {
		return err
	}
	acct, err := c.Accounting(cctx)
	if err != nil {
		return err
	}
	res.SupplyConserved = acct.Conserved
	res.Problems = append(res.Problems, acct.Problems...)
	if n.skewed && res.SkewedVotes == 0 {
		res.Problems = append(res.Problems, "no commit holds a vote of the skewed validator with its skewed time: the skew was not tested")
	}
	forks, err := n.forks(cctx, idx)
	if err != nil {
		return err
	}
	res.Forks = forks
	return n.lightCheck(cctx, idx, lg.from, res)
}

// replay counts recs against the txs the chain applied (by hash, code 0) into res
// and returns each load account's balance the applied history gives. A tx is
// counted once however many times it was broadcast: a retry that signs the same
// sequence and amount again (the generator re-sends while a node it asks is down)
// yields the same bytes and hash as the earlier broadcast.
func replay(recs []rec, applied map[string]int, accounts int, res *Result) []uint64 {
	want := make([]uint64, accounts)
	for i := range want {
		want[i] = funding
	}
	byHash := map[string]int{} // hash -> index of its first rec in uniq
	var uniq []rec
	for _, r := range recs {
		if j, ok := byHash[r.hash]; ok {
			uniq[j].acked = uniq[j].acked || r.acked
			res.TxsRebroadcast++
			continue
		}
		byHash[r.hash] = len(uniq)
		uniq = append(uniq, r)
	}
	res.TxsSent = len(uniq)
	for _, r := range uniq {
		if r.acked {
			res.TxsAcked++
		}
		k := applied[r.hash]
		switch {
		case k == 0 && r.acked:
			res.TxsLost++
		case k > 1:
			res.TxsAppliedTwice++
		}
		if k > 0 {
			res.TxsApplied++
			if r.from >= 0 { // a transfer, not the market load's
				want[r.from] -= r.amount + r.fee
				want[r.to] += r.amount
			}
		}
	}
	return want
}

// lightCheck verifies the header of res.Height with CometBFT's light client, skipping
// and sequentially, from node0's header at height from (the load's first block),
// fetching from node1 and cross-checking with the other nodes in idx; the verified
// app hash must be node0's.
func (n *net) lightCheck(ctx context.Context, idx []int, from int64, res *Result) error {
	blk, err := n.cl[0].RPC.Block(ctx, &from)
	if err != nil {
		return fmt.Errorf("trusted block %d: %w", from, err)
	}
	want, err := n.cl[0].RPC.Block(ctx, &res.Height)
	if err != nil {
		return fmt.Errorf("block %d: %w", res.Height, err)
	}
	o := lightclient.Options{ChainID: n.ln.ChainID, Primary: n.ln.Nodes[1].RPC, TrustHeight: from, TrustHash: blk.BlockID.Hash, Height: res.Height}
	for _, i := range idx {
		if i != 1 {
			o.Witnesses = append(o.Witnesses, n.ln.Nodes[i].RPC)
		}
	}
	for _, seq := range []bool{false, true} {
		o.Sequential = seq
		lr, err := lightclient.Verify(ctx, o)
		switch {
		case err != nil:
			res.Problems = append(res.Problems, fmt.Sprintf("light client (sequential %v): %v", seq, err))
			return nil
		case lr.AppHash != want.Block.AppHash.String():
			res.Problems = append(res.Problems, fmt.Sprintf("light client (sequential %v): header %d has app hash %s, node0's %s", seq, res.Height, lr.AppHash, want.Block.AppHash))
			return nil
		}
	}
	res.LightVerified = true
	return nil
}

// forks counts heights at which nodes in idx hold different block hashes, over the
// heights each of them stores.
func (n *net) forks(ctx context.Context, idx []int) (int, error) {
	hashes := map[int64][]byte{}
	bad := map[int64]bool{}
	for _, i := range idx {
		c := n.cl[i]
		st, err := c.RPC.Status(ctx)
		if err != nil {
			return 0, fmt.Errorf("status of %s: %w", n.ln.Nodes[i].Name, err)
		}
		lo, hi := max(st.SyncInfo.EarliestBlockHeight, 1), st.SyncInfo.LatestBlockHeight
		for from := lo; from <= hi; from += 20 {
			to := min(from+19, hi)
			bi, err := c.RPC.BlockchainInfo(ctx, from, to)
			if err != nil {
				return 0, fmt.Errorf("blockchain %d-%d of %s: %w", from, to, n.ln.Nodes[i].Name, err)
			}
			for _, m := range bi.BlockMetas {
				h := m.Header.Height
				if prev, ok := hashes[h]; ok && !bytes.Equal(prev, m.BlockID.Hash) {
					bad[h] = true
				} else if !ok {
					hashes[h] = m.BlockID.Hash
				}
			}
		}
	}
	return len(bad), nil
}
