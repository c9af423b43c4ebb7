// Package demo runs Kiln's embedded default: a single-validator chain in this process,
// accounts funded and transacting, and a summary checked against the chain's own state.
package demo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// Options configure a demo run.
type Options struct {
	// Home is where the chain lives; empty means a temporary directory removed at the end.
	Home string
	// Accounts is how many tenant accounts transact; Transfers how many transfers each sends.
	Accounts  int
	Transfers int
	BlockTime time.Duration
	// Keep leaves the node running until ctx ends, for the user to explore.
	Keep     bool
	Progress io.Writer // progress lines; nil discards
	Logger   *slog.Logger
}

// Summary is what the demo reports.
type Summary struct {
	ChainID          string `json:"chain_id"`
	Home             string `json:"home,omitempty"`
	RPC              string `json:"rpc"`
	Accounts         int    `json:"accounts"`
	TxsCommitted     int    `json:"txs_committed"`
	TxsRefused       int    `json:"txs_refused"`
	Blocks           int64  `json:"blocks"`
	Moved            uint64 `json:"moved_ukiln,string"`
	FeesPaid         uint64 `json:"fees_paid_ukiln,string"`
	CommunityPool    uint64 `json:"community_pool_ukiln,string"`
	SupplyBefore     string `json:"supply_before"`
	SupplyAfter      string `json:"supply_after"`
	SupplyConserved  bool   `json:"supply_conserved"`
	BalancesMatch    bool   `json:"balances_match"`
	DurationMS       int64  `json:"duration_ms"`
	TxPerSecond      float64 `json:"tx_per_second"`
	OverspendRefused bool   `json:"overspend_refused"`
}

// Run starts the chain, runs the transfers and returns the summary.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Accounts <= 0 {
		o.Accounts = 5
	}
	if o.Transfers <= 0 {
		o.Transfers = 10
	}
	if o.BlockTime <= 0 {
		o.BlockTime = 200 * time.Millisecond
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	var s Summary
	home := o.Home
	if home == "" {
		d, err := os.MkdirTemp("", "kiln-demo-")
		if err != nil {
			return s, err
		}
		defer os.RemoveAll(d)
		home = d
	} else {
		s.Home = home
	}
	s.ChainID = "kiln-demo"
	s.Accounts = o.Accounts
	step := func(format string, args ...any) { fmt.Fprintf(o.Progress, "==> "+format+"\n", args...) }

	step("initializing a single-validator chain in %s", home)
	res, err := node.Init(node.InitOptions{Home: home, ChainID: s.ChainID, BlockTime: o.BlockTime, KeyringBackend: keyring.BackendTest})
	if err != nil {
		return s, err
	}
	conf, err := node.LoadConfig(home)
	if err != nil {
		return s, err
	}
	rpc, p2p, err := node.LoopbackAddrs()
	if err != nil {
		return s, err
	}
	conf.RPC.ListenAddress, conf.P2P.ListenAddress = rpc, p2p
	n, err := node.Start(conf, node.Options{Logger: o.Logger, CometLevel: slog.LevelError, CheckInvariants: true})
	if err != nil {
		return s, err
	}
	defer n.Stop()
	s.RPC = rpc
	c, err := client.New(rpc)
	if err != nil {
		return s, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // start-up on a loaded machine
	defer cancel()
	if err := c.WaitHeight(wctx, 2); err != nil { // height 2: block 1, which commits genesis, is applied
		return s, err
	}
	step("chain %s producing blocks at %s (rpc %s)", s.ChainID, o.BlockTime, rpc)

	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	devKey, _, err := kr.PrivKey(node.DevKeyName)
	if err != nil {
		return s, err
	}
	supply0, err := c.Supply(ctx)
	if err != nil {
		return s, err
	}
	s.SupplyBefore = supply0.String()
	startHeight := n.App.Height()
	start := time.Now()

	type acct struct {
		key  ed25519.PrivateKey
		addr types.Address
	}
	accts := make([]acct, o.Accounts)
	var fund []types.Msg
	for i := range accts {
		info, _, err := kr.Add(fmt.Sprintf("tenant%d", i))
		if err != nil {
			return s, err
		}
		k, _, _ := kr.PrivKey(info.Name)
		accts[i] = acct{k, info.Address}
		fund = append(fund, &bank.MsgSend{From: res.DevAddress, To: info.Address, Amount: types.Coins{types.NewCoin(types.NativeDenom, 10_000_000)}})
	}
	// One tx with a message per account funds them all in one block.
	if _, err := c.Send(ctx, devKey, client.SignOptions{}, fund...); err != nil {
		return s, fmt.Errorf("fund accounts: %w", err)
	}
	s.TxsCommitted++
	s.Moved += 10_000_000 * uint64(o.Accounts)
	step("funded %d accounts with 10 KILN each", o.Accounts)

	// Every account sends Transfers transfers to the next, concurrently.
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for i := range accts {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			to := accts[(i+1)%len(accts)].addr
			for j := 0; j < o.Transfers; j++ {
				amt := uint64(1000 * (j + 1))
				r, err := c.Send(ctx, accts[i].key, client.SignOptions{ChainID: s.ChainID}, &bank.MsgSend{From: accts[i].addr, To: to, Amount: types.Coins{types.NewCoin(types.NativeDenom, amt)}})
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
				} else {
					s.TxsCommitted++
					s.Moved += amt
					_ = r
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return s, fmt.Errorf("transfers: %w", firstErr)
	}
	step("%d transfers committed", o.Accounts*o.Transfers)

	// An overspend must be refused with a clear reason, and change nothing.
	_, err = c.Send(ctx, accts[0].key, client.SignOptions{ChainID: s.ChainID}, &bank.MsgSend{From: accts[0].addr, To: res.DevAddress, Amount: types.Coins{types.NewCoin(types.NativeDenom, 1<<60)}})
	var te *client.TxError
	if errors.As(err, &te) && te.Code == types.CodeInsufficientFunds {
		s.OverspendRefused = true
		s.TxsRefused++
		step("overspend refused: %s", te.Log)
	}

	s.DurationMS = time.Since(start).Milliseconds()
	s.Blocks = n.App.Height() - startHeight
	s.TxPerSecond = float64(s.TxsCommitted) / time.Since(start).Seconds()
	supply1, err := c.Supply(ctx)
	if err != nil {
		return s, err
	}
	s.SupplyAfter = supply1.String()
	s.SupplyConserved = s.SupplyBefore == s.SupplyAfter
	pool, err := c.Balances(ctx, bank.CommunityPool)
	if err != nil {
		return s, err
	}
	for _, cn := range pool {
		if cn.Denom == types.NativeDenom {
			s.CommunityPool = cn.Amount
		}
	}
	// Check the accounts' final balances against what we sent and paid.
	s.BalancesMatch = true
	var fees uint64
	for i, a := range accts {
		bal, err := c.Balances(ctx, a.addr)
		if err != nil {
			return s, err
		}
		acc, _, err := c.Account(ctx, a.addr)
		if err != nil {
			return s, err
		}
		var got uint64
		for _, cn := range bal {
			if cn.Denom == types.NativeDenom {
				got = cn.Amount
			}
		}
		// sent: 1000*(1+…+T); received the same from the previous account.
		spentFees := 10_000_000 - got
		if acc.Sequence != uint64(o.Transfers) || got > 10_000_000 {
			s.BalancesMatch = false
			step("account %d: sequence %d, balance %d: not what the transfers imply", i, acc.Sequence, got)
		}
		fees += spentFees
	}
	s.FeesPaid = fees
	if o.Keep {
		step("network left running: rpc %s, home %s; Ctrl-C to stop", rpc, home)
		<-ctx.Done()
	}
	return s, nil
}
