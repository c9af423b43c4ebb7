package explorer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// Snapshot is the chain as the explorer read it at one height: every provider, order,
// lease and escrow account, the module table and the recent blocks. Pages that list
// or aggregate read it; pages about one record ask the node.
type Snapshot struct {
	ChainID string    `json:"chain_id"`
	Height  int64     `json:"height,string"`
	Read    time.Time `json:"read"`

	Providers []registry.Provider    `json:"-"`
	Orders    []market.Order         `json:"-"`
	Leases    []market.LeaseView     `json:"-"`
	Escrow    []escrow.EscrowAccount `json:"-"`
	Modules   []app.ModuleInfo       `json:"-"`
	Blocks    []BlockRow             `json:"-"` // newest first
	// Attested are the providers with a TEE attestation in force (the tee module's
	// records; empty on a chain without it).
	Attested map[string]bool  `json:"-"`
	escrowOf map[uint64]int   // order id -> index in Escrow
	leasesOf map[string][]int // provider -> indexes in Leases
	overview *Overview        // built once per snapshot, by the refresher
}

// BlockRow is one block in lists.
type BlockRow struct {
	Height   int64     `json:"height,string"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
	Txs      int       `json:"txs"`
	Proposer string    `json:"proposer"`
}

// ChainEvent is an event of a block (its begin/end) or of one of its txs, kept by the
// explorer for the verification and slashing views.
type ChainEvent struct {
	Height int64             `json:"height,string"`
	TxHash string            `json:"tx_hash,omitempty"`
	Type   string            `json:"type"`
	Attrs  map[string]string `json:"attributes"`
}

// fetch reads a Snapshot from the node at its latest height. Lists that the chain
// keeps small (providers, modules) and the ones that grow (orders, leases, escrow) are
// read alike: the explorer aggregates them itself.
func fetch(ctx context.Context, c *client.Client, blocks int) (*Snapshot, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{ChainID: st.ChainID, Read: time.Now()}
	var provs struct {
		Providers []registry.Provider `json:"providers"`
	}
	if err := c.QueryJSON(ctx, client.PathProviders, &provs); err != nil {
		return nil, fmt.Errorf("read providers: %w", err)
	}
	s.Providers = provs.Providers
	var orders struct {
		Orders []market.Order `json:"orders"`
	}
	if err := c.QueryJSON(ctx, client.PathOrders("", types.Address{}), &orders); err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	s.Orders = orders.Orders
	var leases struct {
		Leases []market.LeaseView `json:"leases"`
	}
	if err := c.QueryJSON(ctx, client.PathLeases(market.LeaseFilter{}), &leases); err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	s.Leases = leases.Leases
	var accts struct {
		Accounts []escrow.EscrowAccount `json:"accounts"`
	}
	if err := c.QueryJSON(ctx, client.PathEscrowAccounts, &accts); err != nil {
		return nil, fmt.Errorf("read escrow accounts: %w", err)
	}
	s.Escrow = accts.Accounts
	var mods struct {
		Modules []app.ModuleInfo `json:"modules"`
	}
	if err := c.QueryJSON(ctx, client.PathModules, &mods); err != nil {
		return nil, fmt.Errorf("read the module table: %w", err)
	}
	s.Modules = mods.Modules
	s.Attested = map[string]bool{}
	h0, err := c.AppHeight(ctx)
	if err != nil {
		return nil, err
	}
	if s.hasModule(xtee.ModuleName) {
		for _, p := range s.Providers {
			var at xtee.Attestation
			// NB: not found (no attestation) is an error too: not attested.
			if err := c.QueryJSON(ctx, "/tee/attestation/"+p.Owner.String(), &at); err == nil && at.Active(h0) {
				s.Attested[p.Owner.String()] = true
			}
		}
	}
	// NB: the height the app committed, which every query above saw (or a later one).
	h, err := c.AppHeight(ctx)
	if err != nil {
		return nil, err
	}
	s.Height = h
	if s.Blocks, err = recentBlocks(ctx, c, h, blocks); err != nil {
		return nil, err
	}
	s.index()
	return s, nil
}

// recentBlocks returns up to n blocks ending at height top, newest first.
func recentBlocks(ctx context.Context, c *client.Client, top int64, n int) ([]BlockRow, error) {
	var out []BlockRow
	for top >= 1 && len(out) < n {
		// NB: CometBFT answers at most 20 headers per call.
		min := max(1, top-19)
		res, err := c.RPC.BlockchainInfo(ctx, min, top)
		if err != nil {
			return nil, fmt.Errorf("read blocks %d..%d: %w", min, top, err)
		}
		for _, m := range res.BlockMetas {
			out = append(out, BlockRow{Height: m.Header.Height, Hash: m.BlockID.Hash.String(), Time: m.Header.Time,
				Txs: m.NumTxs, Proposer: m.Header.ProposerAddress.String()})
			if len(out) == n {
				break
			}
		}
		top = min - 1
	}
	return out, nil
}

// index builds the lookups pages use.
func (s *Snapshot) index() {
	s.escrowOf = make(map[uint64]int, len(s.Escrow))
	for i, a := range s.Escrow {
		s.escrowOf[a.OrderID] = i
	}
	s.leasesOf = map[string][]int{}
	for i, l := range s.Leases {
		p := l.Provider.String()
		s.leasesOf[p] = append(s.leasesOf[p], i)
	}
}

// EscrowOf returns order id's escrow account.
func (s *Snapshot) EscrowOf(id uint64) (escrow.EscrowAccount, bool) {
	i, ok := s.escrowOf[id]
	if !ok {
		return escrow.EscrowAccount{}, false
	}
	return s.Escrow[i], true
}

// BlocksPerSecond is the block rate over the recent blocks (0 with fewer than two).
func (s *Snapshot) BlocksPerSecond() float64 {
	if len(s.Blocks) < 2 {
		return 0
	}
	newest, oldest := s.Blocks[0], s.Blocks[len(s.Blocks)-1]
	d := newest.Time.Sub(oldest.Time).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(newest.Height-oldest.Height) / d
}

// coreModules are the ledger's own modules; every other module in the table (verify,
// liveness, ...) has its events shown on the verification page.
var coreModules = map[string]bool{"auth": true, "bank": true, "staking": true, "registry": true, "cert": true,
	"market": true, "escrow": true, "params": true, "infer": true}

// verificationModules returns the non-core modules of the table, in its order.
func (s *Snapshot) verificationModules() []app.ModuleInfo {
	var out []app.ModuleInfo
	for _, m := range s.Modules {
		if !coreModules[m.Name] {
			out = append(out, m)
		}
	}
	return out
}

// verificationEvents are the verify module's events, whose types do not start with
// its name.
var verificationEvents = map[string]bool{"work_committed": true, "work_assigned": true, "work_verified": true,
	"work_unchecked": true, "challenge_opened": true, "challenge_vote": true, "challenge_inconclusive": true,
	"committee_drawn": true, "committee_split": true, "fraud_proven": true, "report_refuted": true,
	"verifier_registered": true, "verifier_silent": true, "slash_bond": true, "slash": true}

// keepEvent says whether the explorer keeps an event of this type: slashes, the
// verify module's, and every event of another non-core module (its type starts with
// the module's name: liveness_, tee_).
func keepEvent(mods []app.ModuleInfo, typ string) bool {
	if verificationEvents[typ] {
		return true
	}
	for _, m := range mods {
		if !coreModules[m.Name] && strings.HasPrefix(typ, m.Name) {
			return true
		}
	}
	return false
}

// providerLeases returns provider p's leases, newest first.
func (s *Snapshot) providerLeases(p string) []market.LeaseView {
	idx := s.leasesOf[p]
	out := make([]market.LeaseView, 0, len(idx))
	for i := len(idx) - 1; i >= 0; i-- {
		out = append(out, s.Leases[idx[i]])
	}
	return out
}

// findProvider returns the provider with owner addr. O(providers).
func (s *Snapshot) findProvider(addr string) (registry.Provider, bool) {
	for _, p := range s.Providers {
		if p.Owner.String() == addr {
			return p, true
		}
	}
	return registry.Provider{}, false
}

// hasModule says whether the chain's module table has a module named name.
func (s *Snapshot) hasModule(name string) bool {
	for _, m := range s.Modules {
		if m.Name == name {
			return true
		}
	}
	return false
}
