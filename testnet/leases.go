package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// The market side of the load: a tenant orders one CPU lease at a time, a provider
// bids on it, starts it and heartbeats it, and the tenant closes it some blocks later.
// Every tx goes into the load's history like a transfer (counted for lost and
// applied-twice); every order it made is checked after the run (checkLeases): no
// lease paid for a block past its close, nor for more blocks than it ran.

const (
	// leasePrice is the provider's bid per block; leaseMaxPrice the order's cap.
	leasePrice    uint64 = 1_000
	leaseMaxPrice uint64 = 2_000
	// leaseBlocks is how many blocks a lease runs before the tenant closes it.
	leaseBlocks int64 = 8
	// providerStake is what the load's provider stakes when it registers.
	providerStake uint64 = 100_000_000
)

// leaseActor is the tenant and provider of the market load.
type leaseActor struct {
	lg               *load
	tenant, provider ed25519.PrivateKey
	tAddr, pAddr     types.Address
	k                int // txs sent: picks the target node in turn
}

// newLeaseActor makes the two keys; newLoad funds them.
func newLeaseActor(lg *load) (*leaseActor, error) {
	a := &leaseActor{lg: lg}
	var err error
	if _, a.tenant, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if _, a.provider, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	a.tAddr = types.AddressFromPubKey(a.tenant.Public().(ed25519.PublicKey))
	a.pAddr = types.AddressFromPubKey(a.provider.Public().(ed25519.PublicKey))
	return a, nil
}

// register makes the provider a provider: a CPU host with room for one lease at a
// time.
func (a *leaseActor) register(ctx context.Context) error {
	cert, _, err := certpem.Generate("testnet-provider", []string{"127.0.0.1"}, 24*time.Hour, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	inv := registry.Inventory{Source: "declared", Region: "testnet", CPUCores: 2, MemoryBytes: 4 * registry.Gi, StorageBytes: 10 * registry.Gi,
		Runtime: registry.Runtime{Executor: "process"}}
	msg := &registry.MsgRegisterProvider{Owner: a.pAddr, Endpoint: "https://127.0.0.1:8443", CertPEM: cert, Inventory: inv,
		Stake: types.NewCoin(types.NativeDenom, providerStake)}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := a.lg.n.cl[0].Send(cctx, a.provider, client.SignOptions{ChainID: a.lg.chainID}, msg); err != nil {
		return fmt.Errorf("register the load's provider: %w", err)
	}
	return nil
}

// send signs msg with key (the account's sequence as the target node has it) and
// broadcasts it to the next node of targets, recording it in the load's history. It
// tries up to three nodes.
func (a *leaseActor) send(ctx context.Context, targets []*client.Client, key ed25519.PrivateKey, msg types.Msg) (client.TxResponse, error) {
	var err error
	for try := 0; try < 3 && ctx.Err() == nil; try++ {
		c := targets[a.k%len(targets)]
		a.k++
		var r client.TxResponse
		if r, err = a.sendOnce(ctx, c, key, msg); err == nil {
			return r, nil
		}
		sleep(ctx, 300*time.Millisecond)
	}
	return client.TxResponse{}, err
}

func (a *leaseActor) sendOnce(ctx context.Context, c *client.Client, key ed25519.PrivateKey, msg types.Msg) (client.TxResponse, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	raw, err := c.SignTx(sctx, key, client.SignOptions{ChainID: a.lg.chainID}, msg)
	cancel()
	if err != nil {
		return client.TxResponse{}, err
	}
	t, err := tx.Decode(raw)
	if err != nil {
		return client.TxResponse{}, err
	}
	h := tx.Hash(raw)
	bctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	r, err := c.BroadcastCommit(bctx, raw)
	cancel()
	a.lg.record(rec{hash: strings.ToUpper(hex.EncodeToString(h[:])), from: -1, to: -1, fee: t.Body.Fee.Amount, acked: err == nil, at: time.Now()})
	return r, err
}

// run cycles leases until ctx ends: order, bid, start, heartbeats, close.
func (a *leaseActor) run(ctx context.Context, targets []*client.Client) {
	for ctx.Err() == nil {
		a.cycle(ctx, targets)
	}
}

func (a *leaseActor) cycle(ctx context.Context, targets []*client.Client) {
	g := market.Group{Name: "load", Count: 1, CPUMilli: 500, MemoryBytes: 256 * registry.Mi, StorageBytes: 256 * registry.Mi}
	order := &market.MsgCreateOrder{Owner: a.tAddr, Kind: market.KindService, Groups: []market.Group{g}, MaxPrice: leaseMaxPrice,
		Deposit: types.NewCoin(types.NativeDenom, leaseMaxPrice*100)}
	r, err := a.send(ctx, targets, a.tenant, order)
	if err != nil {
		sleep(ctx, time.Second)
		return
	}
	id, err := strconv.ParseUint(r.EventAttr("order_created", "order"), 10, 64)
	if err != nil {
		return
	}
	// NB: the bid deposit comes back when the order closes; a bid that did not land
	// leaves the order to expire unleased, which the checker also covers.
	a.send(ctx, targets, a.provider, &market.MsgCreateBid{Provider: a.pAddr, OrderID: id, Price: leasePrice})
	l, ok := a.lease(ctx, targets, id)
	if !ok {
		a.send(ctx, targets, a.tenant, &market.MsgCloseOrder{Owner: a.tAddr, OrderID: id})
		return
	}
	if _, err := a.send(ctx, targets, a.provider, &market.MsgStartLease{Provider: a.pAddr, LeaseID: id}); err != nil {
		a.send(ctx, targets, a.tenant, &market.MsgCloseLease{Sender: a.tAddr, LeaseID: id})
		return
	}
	end := l.CreatedHeight + leaseBlocks
	for ctx.Err() == nil {
		h, err := targets[a.k%len(targets)].AppHeight(ctx)
		if err == nil && h >= end {
			break
		}
		a.send(ctx, targets, a.provider, &market.MsgHeartbeat{Provider: a.pAddr, LeaseID: id})
		sleep(ctx, 500*time.Millisecond)
	}
	a.send(ctx, targets, a.tenant, &market.MsgCloseLease{Sender: a.tAddr, LeaseID: id})
}

// lease waits (up to 15 s) for order id's lease to be active, asking the nodes of
// targets in turn.
func (a *leaseActor) lease(ctx context.Context, targets []*client.Client, id uint64) (market.Lease, bool) {
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ctx.Err() == nil && time.Now().Before(deadline); i++ {
		c := targets[i%len(targets)]
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		l, err := c.Lease(qctx, id)
		cancel()
		if err == nil && l.State == market.LeaseActive {
			return l, true
		}
		sleep(ctx, 300*time.Millisecond)
	}
	return market.Lease{}, false
}

// checkLeases checks every order of the load's tenant, on node0 (those whose
// create-order tx was not acknowledged too): a lease is never paid for a
// block after its close or before its start (its escrow spent at most its price for
// each block from its start to its close, or to now while it runs), a lease the
// tenant closed was paid exactly those blocks, a closed order's escrow is empty, and
// an order that never had a lease paid nothing.
func (a *leaseActor) checkLeases(ctx context.Context, res *Result) error {
	c := a.lg.n.cl[0]
	orders, err := c.Orders(ctx, "", a.tAddr)
	if err != nil {
		return fmt.Errorf("the load tenant's orders: %w", err)
	}
	res.Orders = len(orders)
	for _, o := range orders {
		id := o.ID
		acct, err := c.Escrow(ctx, id)
		if err != nil {
			return fmt.Errorf("escrow of order %d: %w", id, err)
		}
		l, lerr := c.Lease(ctx, id)
		if lerr != nil && !errors.Is(lerr, client.ErrNotFound) {
			return fmt.Errorf("lease of order %d: %w", id, lerr)
		}
		h, err := c.AppHeight(ctx) // NB: after the reads: spending only grows with height
		if err != nil {
			return err
		}
		leased, closed, overpaid, problem := judgeLease(id, o, acct, l, lerr == nil, h)
		if leased {
			res.Leases++
		}
		if closed {
			res.LeasesClosed++
		}
		if overpaid {
			res.LeasesOverpaid++
		}
		if problem != "" {
			res.Problems = append(res.Problems, problem)
		}
	}
	return nil
}

// judgeLease judges order id of the market load from what node0 holds at height h (or
// before): its order, its escrow and, when leased, its lease.
func judgeLease(id uint64, o market.Order, acct escrow.EscrowAccount, l market.Lease, leased bool, h int64) (isLease, closed, overpaid bool, problem string) {
	var spent uint64
	if out := acct.Balance + acct.Refunded + acct.SplitOut; out < acct.Deposited {
		spent = acct.Deposited - out
	}
	if !leased {
		switch {
		case spent != 0:
			return false, false, false, fmt.Sprintf("order %d never had a lease but its escrow spent %d", id, spent)
		case o.State == market.OrderClosed && acct.Balance != 0:
			return false, false, false, fmt.Sprintf("order %d is closed but its escrow still holds %d", id, acct.Balance)
		}
		return false, false, false, ""
	}
	closed = l.State == market.LeaseClosed
	var blocks uint64
	if l.StartedHeight > 0 {
		end := h
		if closed {
			end = l.ClosedHeight
		}
		blocks = uint64(max(end-l.StartedHeight, 0))
	}
	switch {
	case spent > l.Price*blocks:
		return true, closed, true, fmt.Sprintf("lease %d (%s, started %d, closed %d %s) spent %d, more than %d blocks at %d: paid past its close",
			id, l.State, l.StartedHeight, l.ClosedHeight, l.CloseReason, spent, blocks, l.Price)
	case closed && l.CloseReason == market.ReasonTenantClosed && spent != l.Price*blocks:
		return true, closed, false, fmt.Sprintf("lease %d, closed by its tenant at %d after starting at %d, spent %d: want %d blocks at %d",
			id, l.ClosedHeight, l.StartedHeight, spent, blocks, l.Price)
	case closed && acct.Balance != 0:
		return true, closed, false, fmt.Sprintf("lease %d is closed but its escrow still holds %d", id, acct.Balance)
	}
	return true, closed, false, ""
}
