package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
)

// ErrNotFound is returned by the typed getters when the chain has no such record.
var ErrNotFound = errors.New("not found")

func notFound(err error) bool {
	var qe *QueryError
	return errors.As(err, &qe) && qe.Code == types.CodeNotFound
}

func (c *Client) getOr404(ctx context.Context, path string, out any) error {
	err := c.QueryJSON(ctx, path, out)
	if notFound(err) {
		return fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	return err
}

// Orders returns the orders in state (empty: all) owned by owner (zero: anyone's).
// State "open" is what a bidder polls: it costs what is open, not all history.
func (c *Client) Orders(ctx context.Context, state string, owner types.Address) ([]market.Order, error) {
	var out struct {
		Orders []market.Order `json:"orders"`
	}
	err := c.QueryJSON(ctx, PathOrders(state, owner), &out)
	return out.Orders, err
}

// Order returns order id, or an error wrapping ErrNotFound.
func (c *Client) Order(ctx context.Context, id uint64) (market.Order, error) {
	var o market.Order
	return o, c.getOr404(ctx, PathOrder(id), &o)
}

// WhyNoBids returns, per registered provider, the constraints of order id it fails.
func (c *Client) WhyNoBids(ctx context.Context, id uint64) (market.MatchReport, error) {
	var r market.MatchReport
	return r, c.getOr404(ctx, PathWhyNoBids(id), &r)
}

// Bids returns the open bids on order id (0: all orders) by provider (zero: anyone).
func (c *Client) Bids(ctx context.Context, id uint64, provider types.Address) ([]market.Bid, error) {
	var out struct {
		Bids []market.Bid `json:"bids"`
	}
	err := c.QueryJSON(ctx, PathBids(id, provider), &out)
	return out.Bids, err
}

// Leases returns the leases matching f (zero fields match all). A provider daemon
// polls LeaseFilter{State: market.LeaseActive, Provider: self}.
func (c *Client) Leases(ctx context.Context, f market.LeaseFilter) ([]market.Lease, error) {
	var out struct {
		Leases []market.Lease `json:"leases"`
	}
	err := c.QueryJSON(ctx, PathLeases(f), &out)
	return out.Leases, err
}

// Lease returns the latest lease of order id, or an error wrapping ErrNotFound.
func (c *Client) Lease(ctx context.Context, id uint64) (market.Lease, error) {
	var l market.Lease
	return l, c.getOr404(ctx, PathLease(id), &l)
}

// Cluster returns the placed cluster of cluster order id; ErrNotFound before it
// is placed (or for an order that is no cluster).
func (c *Client) Cluster(ctx context.Context, id uint64) (market.ClusterLease, error) {
	var cl market.ClusterLease
	return cl, c.getOr404(ctx, PathCluster(id), &cl)
}

// ProviderCapacity returns a provider's inventory, leased and free resources.
func (c *Client) ProviderCapacity(ctx context.Context, provider types.Address) (market.CapacityReport, error) {
	var r market.CapacityReport
	return r, c.getOr404(ctx, PathCapacity(provider), &r)
}

// Escrow returns the escrow account of order id.
func (c *Client) Escrow(ctx context.Context, id uint64) (escrow.EscrowAccount, error) {
	var a escrow.EscrowAccount
	return a, c.getOr404(ctx, PathEscrow(id), &a)
}

// Cert returns owner's published client certificate record, or an error wrapping
// ErrNotFound.
func (c *Client) Cert(ctx context.Context, owner types.Address) (cert.Certificate, error) {
	var r cert.Certificate
	return r, c.getOr404(ctx, PathCert(owner), &r)
}

// MarketParams returns the market's on-chain parameters.
func (c *Client) MarketParams(ctx context.Context) (market.Params, error) {
	var all map[string]json.RawMessage
	if err := c.QueryJSON(ctx, PathParams, &all); err != nil {
		return market.Params{}, err
	}
	var p market.Params
	if err := json.Unmarshal(all[market.ModuleName], &p); err != nil {
		return p, fmt.Errorf("market params: %w", err)
	}
	return p, nil
}

// CheckClientCert is what a provider's mTLS server asks of a client certificate: it
// returns nil only if der is exactly owner's published certificate, not revoked, and
// within its validity period at now.
func (c *Client) CheckClientCert(ctx context.Context, owner types.Address, der []byte, now time.Time) error {
	rec, err := c.Cert(ctx, owner)
	if err != nil {
		return fmt.Errorf("client certificate of %s: %w", owner, err)
	}
	return CheckCertRecord(rec, der, now)
}

// CheckCertRecord checks der against an on-chain certificate record (see
// CheckClientCert), for callers that cache records.
func CheckCertRecord(rec cert.Certificate, der []byte, now time.Time) error {
	if rec.State != cert.StateValid {
		return fmt.Errorf("client certificate of %s is %s (height %d)", rec.Owner, rec.State, rec.Revoked)
	}
	c, err := certpem.Parse([]byte(rec.PEM))
	if err != nil || !bytes.Equal(c.Raw, der) {
		return fmt.Errorf("client certificate is not the one %s published on chain", rec.Owner)
	}
	if now.Before(rec.NotBefore) || now.After(rec.NotAfter) {
		return fmt.Errorf("client certificate of %s is valid %s to %s, not at %s", rec.Owner, rec.NotBefore, rec.NotAfter, now)
	}
	return nil
}

// BidEvent is a bid as the transaction that placed it recorded it (event
// bid_created). Bids leave the chain's state once the auction closes, often in the
// block they were placed in, so a tenant following its order reads them here.
type BidEvent struct {
	Height   int64         `json:"height"`
	Provider types.Address `json:"provider"`
	Price    uint64        `json:"price,string"`
	// GPUs is what the provider offers, e.g. "1xh100/80Gi/sxm", or "none".
	GPUs string `json:"gpus"`
}

// BidEvents returns the bids placed on order id in blocks from to to (inclusive),
// oldest first, from the blocks' transaction results (one RPC per block).
func (c *Client) BidEvents(ctx context.Context, id uint64, from, to int64) ([]BidEvent, error) {
	want := strconv.FormatUint(id, 10)
	var out []BidEvent
	for h := max(from, 1); h <= to; h++ {
		res, err := c.RPC.BlockResults(ctx, &h)
		if err != nil {
			return out, fmt.Errorf("block results of height %d from %s: %w", h, c.url, err)
		}
		for _, tr := range res.TxsResults {
			if tr == nil || tr.Code != 0 {
				continue
			}
			for _, ev := range tr.Events {
				if ev.Type != "bid_created" {
					continue
				}
				attrs := map[string]string{}
				for _, a := range ev.Attributes {
					attrs[a.Key] = a.Value
				}
				if attrs["order"] != want {
					continue
				}
				b := BidEvent{Height: h, GPUs: attrs["gpus"]}
				var perr error
				if b.Provider, perr = types.ParseAddress(attrs["provider"]); perr != nil {
					return out, fmt.Errorf("bid event at height %d: provider %q: %w", h, attrs["provider"], perr)
				}
				if b.Price, perr = strconv.ParseUint(attrs["price"], 10, 64); perr != nil {
					return out, fmt.Errorf("bid event at height %d: price %q: %w", h, attrs["price"], perr)
				}
				out = append(out, b)
			}
		}
	}
	return out, nil
}

// LeaseOutcome is how an order ended up: a lease, or closed without one.
type LeaseOutcome struct {
	Lease *market.Lease
	Order market.Order
}

// WaitLease polls every poll until order id has an active lease (returned) or is
// closed (returned with Lease nil; ask WhyNoBids), or ctx ends. onPoll, if not
// nil, sees the order at each poll, the last included, e.g. to show its bids.
func (c *Client) WaitLease(ctx context.Context, id uint64, poll time.Duration, onPoll func(market.Order)) (LeaseOutcome, error) {
	for {
		o, err := c.Order(ctx, id)
		if err != nil {
			return LeaseOutcome{}, err
		}
		if onPoll != nil {
			onPoll(o)
		}
		switch o.State {
		case market.OrderActive:
			l, err := c.Lease(ctx, id)
			return LeaseOutcome{Lease: &l, Order: o}, err
		case market.OrderClosed:
			return LeaseOutcome{Order: o}, nil
		}
		select {
		case <-ctx.Done():
			return LeaseOutcome{Order: o}, fmt.Errorf("wait for a lease on order %d: %w (state %s)", id, ctx.Err(), o.State)
		case <-time.After(poll):
		}
	}
}

// ParsePrice parses "1000" or "1000ukiln" (denom must then be denom).
func ParsePrice(s, denom string) (uint64, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), denom))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("price %q: want an amount of %s, e.g. 1000 or 1000%s", s, denom, denom)
	}
	return v, nil
}
