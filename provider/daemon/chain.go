package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/market"
)

// chainCacheTTL bounds how stale the API's view of a lease or certificate may be: a
// few blocks at most, and the daemon drops a lease's entry the moment it sees it
// close, so a closed lease never takes a manifest.
const chainCacheTTL = time.Second

// chainSource answers the tenant API's LeaseSource and CertSource from chain queries,
// with a short cache: one tenant upload is many requests.
type chainSource struct {
	c    *client.Client
	self types.Address
	// closed reports leases the daemon saw close (or stopped) on chain.
	closed func(id uint64) bool
	now    func() time.Time

	mu     sync.Mutex
	orders map[uint64]market.Order // groups and kind never change: cached for good
	leases map[uint64]cachedLease
	certs  map[string]cachedCert
}

type cachedLease struct {
	at   time.Time
	info api.LeaseInfo
}

type cachedCert struct {
	at   time.Time
	cert *x509.Certificate
}

func newChainSource(c *client.Client, self types.Address, closed func(uint64) bool, now func() time.Time) *chainSource {
	return &chainSource{c: c, self: self, closed: closed, now: now, orders: map[uint64]market.Order{},
		leases: map[uint64]cachedLease{}, certs: map[string]cachedCert{}}
}

// forget drops lease id's cached entry.
func (s *chainSource) forget(id uint64) {
	s.mu.Lock()
	delete(s.leases, id)
	s.mu.Unlock()
}

// Resources returns the API's resource units of an order's groups (api.UnitID).
func Resources(groups []market.Group) []api.ResourceUnit {
	out := make([]api.ResourceUnit, len(groups))
	for i, g := range groups {
		out[i] = api.ResourceUnit{ID: api.UnitID(i), Count: g.Count, CPUMilli: g.CPUMilli, MemoryBytes: g.MemoryBytes,
			StorageBytes: g.StorageBytes, GPUUnits: g.GPU.Units}
	}
	return out
}

func (s *chainSource) order(ctx context.Context, id uint64) (market.Order, error) {
	s.mu.Lock()
	o, ok := s.orders[id]
	s.mu.Unlock()
	if ok {
		return o, nil
	}
	o, err := s.c.Order(ctx, id)
	if err != nil {
		return o, err
	}
	s.mu.Lock()
	s.orders[id] = o
	s.mu.Unlock()
	return o, nil
}

// Lease implements api.LeaseSource: the latest lease of order id if this provider
// runs it; for a lease of another provider, an *api.LeaseElsewhereError naming it.
func (s *chainSource) Lease(ctx context.Context, id uint64) (api.LeaseInfo, error) {
	s.mu.Lock()
	cl, ok := s.leases[id]
	s.mu.Unlock()
	if ok && s.now().Sub(cl.at) < chainCacheTTL {
		cl.info.Active = cl.info.Active && !s.closed(id)
		return cl.info, nil
	}
	l, err := s.c.Lease(ctx, id)
	if errors.Is(err, client.ErrNotFound) {
		return api.LeaseInfo{}, fmt.Errorf("lease %d: %w", id, api.ErrLeaseNotFound)
	}
	if err != nil {
		return api.LeaseInfo{}, err
	}
	if l.Provider != s.self {
		return api.LeaseInfo{}, &api.LeaseElsewhereError{LeaseID: id, Provider: l.Provider.String()}
	}
	o, err := s.order(ctx, id)
	if err != nil {
		return api.LeaseInfo{}, err
	}
	info := api.LeaseInfo{ID: id, Owner: l.Owner.String(), Active: l.State == market.LeaseActive, Kind: api.Kind(l.Kind),
		Resources: Resources(o.Groups)}
	s.mu.Lock()
	s.leases[id] = cachedLease{at: s.now(), info: info}
	s.mu.Unlock()
	info.Active = info.Active && !s.closed(id)
	return info, nil
}

// ClientCert implements api.CertSource: the certificate owner published, if valid.
func (s *chainSource) ClientCert(ctx context.Context, owner string) (*x509.Certificate, error) {
	s.mu.Lock()
	cc, ok := s.certs[owner]
	s.mu.Unlock()
	if ok && s.now().Sub(cc.at) < chainCacheTTL {
		return cc.cert, nil
	}
	addr, err := types.ParseAddress(owner)
	if err != nil {
		return nil, fmt.Errorf("certificate of %q: %w", owner, api.ErrCertNotPublished)
	}
	rec, err := s.c.Cert(ctx, addr)
	if errors.Is(err, client.ErrNotFound) || err == nil && rec.State != cert.StateValid {
		return nil, fmt.Errorf("certificate of %s: %w", owner, api.ErrCertNotPublished)
	}
	if err != nil {
		return nil, err
	}
	c, err := certpem.Parse([]byte(rec.PEM))
	if err != nil {
		return nil, fmt.Errorf("certificate of %s on chain: %w", owner, err)
	}
	s.mu.Lock()
	s.certs[owner] = cachedCert{at: s.now(), cert: c}
	s.mu.Unlock()
	return c, nil
}

// HasDuty implements api.VerifierSource: account is a verifier the chain assigned a
// check or a committee vote on lease now. Not cached: a duty ends with the answer.
func (s *chainSource) HasDuty(ctx context.Context, lease uint64, account string) (bool, error) {
	a, err := types.ParseAddress(account)
	if err != nil {
		return false, nil
	}
	_, found, err := s.c.VerifierDuty(ctx, lease, a)
	return found, err
}
