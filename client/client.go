// Package client is the Go SDK for a Kiln node: queries, account state, and signing
// and broadcasting transactions over CometBFT's RPC. The CLI, the provider daemon and
// the benchmarks all use it.
package client

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/staking"
)

// DefaultNode is the RPC address used when none is given.
const DefaultNode = "tcp://127.0.0.1:26657"

// Client talks to one node.
type Client struct {
	RPC *rpchttp.HTTP
	url string
}

// New returns a client for the node at url (tcp://host:port or http://host:port).
func New(url string) (*Client, error) {
	if url == "" {
		url = DefaultNode
	}
	if !strings.HasPrefix(url, "tcp://") && !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("node %q: want tcp://HOST:PORT or http(s)://HOST:PORT", url)
	}
	c, err := rpchttp.New(url, "/websocket")
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", url, err)
	}
	return &Client{RPC: c, url: url}, nil
}

// QueryError is a refusal from the app's Query.
type QueryError struct {
	Code uint32
	Log  string
}

func (e *QueryError) Error() string { return e.Log }

// Query runs an ABCI query and returns its JSON value.
func (c *Client) Query(ctx context.Context, path string) ([]byte, error) {
	res, err := c.RPC.ABCIQuery(ctx, path, nil)
	if err != nil {
		return nil, fmt.Errorf("query %s at %s: %w", path, c.url, err)
	}
	if res.Response.Code != 0 {
		return nil, &QueryError{Code: res.Response.Code, Log: res.Response.Log}
	}
	return res.Response.Value, nil
}

// QueryJSON runs a query and decodes its value into out.
func (c *Client) QueryJSON(ctx context.Context, path string, out any) error {
	b, err := c.Query(ctx, path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// Account returns the account of addr, or found=false if it does not exist.
func (c *Client) Account(ctx context.Context, addr types.Address) (acc auth.Account, found bool, err error) {
	err = c.QueryJSON(ctx, PathAccount(addr), &acc)
	var qe *QueryError
	if errors.As(err, &qe) && qe.Code == types.CodeNotFound {
		return acc, false, nil
	}
	return acc, err == nil, err
}

// Balances returns addr's balances.
func (c *Client) Balances(ctx context.Context, addr types.Address) (types.Coins, error) {
	var out struct {
		Balances types.Coins `json:"balances"`
	}
	err := c.QueryJSON(ctx, PathBalances(addr), &out)
	return out.Balances, err
}

// Supply returns the total supply.
func (c *Client) Supply(ctx context.Context) (types.Coins, error) {
	var out struct {
		Supply types.Coins `json:"supply"`
	}
	err := c.QueryJSON(ctx, PathSupply, &out)
	return out.Supply, err
}

// Accounting returns the chain's books at the last committed height: every balance
// summed against the supply, each module account against its module's records.
func (c *Client) Accounting(ctx context.Context) (bank.Accounting, error) {
	var out bank.Accounting
	err := c.QueryJSON(ctx, PathAccounting, &out)
	return out, err
}

// Status is the node's chain and height.
type Status struct {
	ChainID string
	Height  int64
}

// Status returns the node's chain-id and latest height.
func (c *Client) Status(ctx context.Context) (Status, error) {
	st, err := c.RPC.Status(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", c.url, err)
	}
	return Status{ChainID: st.NodeInfo.Network, Height: st.SyncInfo.LatestBlockHeight}, nil
}

// AppHeight returns the last height the app committed (ABCI Info): the state
// every query sees. CometBFT's status can report a block as latest a moment
// before the app has applied it, so code that acts on query results per block,
// or waits for a block's effects, follows this height.
func (c *Client) AppHeight(ctx context.Context) (int64, error) {
	res, err := c.RPC.ABCIInfo(ctx)
	if err != nil {
		return 0, fmt.Errorf("abci info from %s: %w", c.url, err)
	}
	return res.Response.LastBlockHeight, nil
}

// WaitHeight waits until the app has committed height >= h, so that every
// query sees block h, or until ctx ends.
func (c *Client) WaitHeight(ctx context.Context, h int64) error {
	for {
		got, err := c.AppHeight(ctx)
		if err == nil && got >= h {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for height %d: %w (last error: %v)", h, ctx.Err(), err)
			}
			return fmt.Errorf("wait for height %d: %w (at %d)", h, ctx.Err(), got)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TxResponse is the outcome of a broadcast transaction.
type TxResponse struct {
	TxHash string `json:"txhash"`
	Height int64  `json:"height"`
	Code   uint32 `json:"code"`
	Log    string `json:"raw_log,omitempty"`
	// Events are the committed tx's events (order ids, lease ids, ...).
	Events []abcitypes.Event `json:"-"`
}

// EventAttr returns the value of attribute key of the first event of type typ, or "".
func (r TxResponse) EventAttr(typ, key string) string {
	for _, e := range r.Events {
		if e.Type != typ {
			continue
		}
		for _, a := range e.Attributes {
			if a.Key == key {
				return a.Value
			}
		}
	}
	return ""
}

// TxError is a transaction the chain refused.
type TxError struct{ TxResponse }

func (e *TxError) Error() string {
	return fmt.Sprintf("transaction refused (code %d): %s", e.Code, e.Log)
}

// Is matches the types sentinel of the same code: errors.Is(err, types.ErrSequenceReplayed).
func (e *TxError) Is(target error) bool {
	t, ok := target.(*types.Error)
	return ok && t.Code == e.Code
}

// mempoolCacheErr is the text of CometBFT's mempool.ErrTxInCache, which is all of it
// that crosses RPC: the node has seen these exact bytes and refuses them before the
// app's CheckTx runs.
const mempoolCacheErr = "tx already exists in cache"

// BroadcastCommit submits raw and waits until it is committed in a block. A tx refused
// by CheckTx or failed in its block returns a *TxError. So does a second submission of
// the same bytes: CometBFT's mempool cache refuses it with an RPC error, which
// BroadcastCommit reports as the chain reports a replayed sequence (code 7), saying
// where the first copy is.
func (c *Client) BroadcastCommit(ctx context.Context, raw []byte) (TxResponse, error) {
	res, err := c.RPC.BroadcastTxCommit(ctx, raw)
	if err != nil && strings.Contains(err.Error(), mempoolCacheErr) {
		return c.duplicate(ctx, raw)
	}
	if err != nil {
		return TxResponse{}, fmt.Errorf("broadcast to %s: %w", c.url, err)
	}
	r := TxResponse{TxHash: strings.ToUpper(hex.EncodeToString(res.Hash)), Height: res.Height, Events: res.TxResult.Events}
	switch {
	case res.CheckTx.Code != 0:
		r.Code, r.Log = res.CheckTx.Code, res.CheckTx.Log
		return r, &TxError{r}
	case res.TxResult.Code != 0:
		r.Code, r.Log = res.TxResult.Code, res.TxResult.Log
		return r, &TxError{r}
	}
	return r, nil
}

// duplicate explains a tx the mempool cache refused as a copy: the first copy was
// committed (the tx index knows its height) or still waits in the mempool.
func (c *Client) duplicate(ctx context.Context, raw []byte) (TxResponse, error) {
	hash := cmttypes.Tx(raw).Hash()
	r := TxResponse{TxHash: strings.ToUpper(hex.EncodeToString(hash)), Code: types.CodeSequenceReplayed}
	where := "waits in the node's mempool"
	// NB: CometBFT indexes a committed tx after the commit, in the background: a
	// copy committed a moment ago may not be found at once. 1 s, in 50 ms steps,
	// covers the indexer on a loaded node; a tx still pending is reported as such.
lookup:
	for range 20 {
		if res, err := c.RPC.Tx(ctx, hash, false); err == nil {
			where = fmt.Sprintf("was committed at height %d (code %d)", res.Height, res.TxResult.Code)
			break
		}
		select {
		case <-ctx.Done():
			break lookup
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.Log = types.Wrapf(types.ErrSequenceReplayed, "transaction %s was submitted before and %s; the same bytes cannot be sent twice: sign a new transaction (node: %s)",
		r.TxHash, where, mempoolCacheErr).Error()
	return r, &TxError{r}
}

// AuthParams returns the fee parameters.
func (c *Client) AuthParams(ctx context.Context) (auth.Params, error) {
	var p auth.Params
	return p, c.moduleParams(ctx, auth.ModuleName, &p)
}

// StakingParams returns the staking parameters (unbonding, slash fractions).
func (c *Client) StakingParams(ctx context.Context) (staking.Params, error) {
	var p staking.Params
	return p, c.moduleParams(ctx, staking.ModuleName, &p)
}

// moduleParams decodes one module's entry of the chain's parameters into out.
func (c *Client) moduleParams(ctx context.Context, module string, out any) error {
	var all map[string]json.RawMessage
	if err := c.QueryJSON(ctx, PathParams, &all); err != nil {
		return err
	}
	if err := json.Unmarshal(all[module], out); err != nil {
		return fmt.Errorf("%s params: %w", module, err)
	}
	return nil
}

// Validators returns every validator the staking module holds, jailed and
// tombstoned ones too.
func (c *Client) Validators(ctx context.Context) ([]staking.Validator, error) {
	var out struct {
		Validators []staking.Validator `json:"validators"`
	}
	err := c.QueryJSON(ctx, PathValidators, &out)
	return out.Validators, err
}

// Delegations returns every delegation, sorted by validator then delegator.
func (c *Client) Delegations(ctx context.Context) ([]staking.DelegationEntry, error) {
	var out struct {
		Delegations []staking.DelegationEntry `json:"delegations"`
	}
	err := c.QueryJSON(ctx, PathDelegations, &out)
	return out.Delegations, err
}

// SignOptions tune SignTx.
type SignOptions struct {
	ChainID  string      // empty: ask the node
	Fee      *types.Coin // nil: the minimum the chain asks for this tx's size
	Memo     string
	Sequence *uint64 // nil: the account's current sequence
}

// SignTx builds and signs a tx carrying msgs, filling chain-id, sequence and fee from
// the node where the options leave them open.
func (c *Client) SignTx(ctx context.Context, key ed25519.PrivateKey, o SignOptions, msgs ...types.Msg) ([]byte, error) {
	if o.ChainID == "" {
		st, err := c.Status(ctx)
		if err != nil {
			return nil, err
		}
		o.ChainID = st.ChainID
	}
	addr := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	var seq uint64
	if o.Sequence != nil {
		seq = *o.Sequence
	} else {
		acc, found, err := c.Account(ctx, addr)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("account %s does not exist on chain: fund it first", addr)
		}
		seq = acc.Sequence
	}
	if o.Fee != nil {
		t, err := tx.Sign(key, o.ChainID, seq, *o.Fee, o.Memo, msgs...)
		if err != nil {
			return nil, err
		}
		return t.Encode(), nil
	}
	p, err := c.AuthParams(ctx)
	if err != nil {
		return nil, err
	}
	return SignWithMinFee(key, o.ChainID, seq, p, o.Memo, msgs...)
}

// SignWithMinFee signs with the least fee p accepts for the resulting tx's size.
func SignWithMinFee(key ed25519.PrivateKey, chainID string, seq uint64, p auth.Params, memo string, msgs ...types.Msg) ([]byte, error) {
	fee := p.TxFeeBase
	for i := 0; i < 4; i++ {
		t, err := tx.Sign(key, chainID, seq, types.NewCoin(p.FeeDenom, fee), memo, msgs...)
		if err != nil {
			return nil, err
		}
		raw := t.Encode()
		if min := p.MinFee(len(raw)); fee < min {
			fee = min
			continue
		}
		return raw, nil
	}
	return nil, errors.New("fee did not converge")
}

// Send signs msgs with key and waits for the tx to commit.
func (c *Client) Send(ctx context.Context, key ed25519.PrivateKey, o SignOptions, msgs ...types.Msg) (TxResponse, error) {
	raw, err := c.SignTx(ctx, key, o, msgs...)
	if err != nil {
		return TxResponse{}, err
	}
	return c.BroadcastCommit(ctx, raw)
}
