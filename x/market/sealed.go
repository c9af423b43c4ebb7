package market

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// sealed is sealed bidding per session (ModeSealed), as Aethir places sessions:
// providers commit a hash of their bid in the commit window (an order placed at H:
// H+1..H+sealed_commit_blocks), reveal price and salt in the reveal window that
// follows (sealed_reveal_blocks), and at its end the lowest revealed bid that still
// fits wins (price, then stake, then the earlier commitment). A commitment locks the
// bid deposit like any bid; one never revealed forfeits it to the community pool, so
// committing costs something and nobody can hold a seat without a price. A reveal
// that does not hash to the provider's own commitment is refused (the hash binds the
// order and the provider, so another provider's commitment and reveal cannot be
// replayed). An order without a winner runs another round until order_ttl_blocks,
// then closes (no_bids).
//
// A session order (Order.Session) also bills as a session: its deposit covers all of
// it, and its lease closes (session_ended) after Session.Blocks billed blocks; and it
// takes commitments only from providers whose RTT probe to the session's client
// location is fresh and within its limit.
type sealed struct{}

// MaxSessionBlocks bounds a session: a year of one-second blocks.
const MaxSessionBlocks = 366 * 24 * 3600

func (sealed) Name() string { return ModeSealed }

func (sealed) validateOrder(m *MsgCreateOrder) error {
	if m.Manual {
		return types.InvalidField("manual", true, "a sealed-bid order picks the lowest revealed bid; nobody picks")
	}
	s := m.Session
	if s == nil {
		return nil
	}
	switch {
	case s.Blocks < 1 || s.Blocks > MaxSessionBlocks:
		return types.InvalidField("session.blocks", s.Blocks, fmt.Sprintf("must be 1 to %d", MaxSessionBlocks))
	case s.Location != "" && !regionRe.MatchString(s.Location):
		return types.InvalidField("session.location", s.Location, "must be empty or 2-63 of [a-z0-9-]")
	case (s.Location == "") != (s.MaxRTTMs == 0):
		return types.InvalidField("session.max_rtt_ms", s.MaxRTTMs, "a client location and a max RTT go together")
	case s.MaxRTTMs > 10_000:
		return types.InvalidField("session.max_rtt_ms", s.MaxRTTMs, "must be <= 10000")
	}
	return nil
}

// Open starts a commit round: commitments in the next sealed_commit_blocks blocks,
// reveals in the sealed_reveal_blocks after.
func (sealed) Open(ctx *types.Context, p Params, o *Order) {
	if o.ExpireHeight < ctx.Height {
		o.ExpireHeight = 0
	}
	round(ctx, p, o)
	if o.ExpireHeight == 0 {
		o.ExpireHeight = o.RevealCloseHeight + p.OrderTTLBlocks
	}
}

func round(ctx *types.Context, p Params, o *Order) {
	o.BidOpenHeight = ctx.Height + 1
	o.BidCloseHeight = ctx.Height + p.SealedCommitBlocks
	o.RevealCloseHeight = o.BidCloseHeight + p.SealedRevealBlocks
	schedule(ctx, o, o.RevealCloseHeight)
}

func (sealed) Bid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) error {
	return types.Wrapf(types.ErrModeMismatch, "order %d takes sealed bids: commit a hash with kiln tx market commit-bid, then reveal it", o.ID)
}

func (sealed) Pick(ctx *types.Context, p Params, o *Order, m *MsgCreateLease) error {
	return types.Wrapf(types.ErrModeMismatch, "order %d takes sealed bids: the lowest revealed bid wins", o.ID)
}

// Check ends a round: unrevealed commitments forfeit, the best revealed bid that
// fits wins; without one the order runs another round, or closes if that round
// would end past its expiry.
func (sealed) Check(ctx *types.Context, p Params, o *Order) {
	var revealed []Bid
	for _, b := range BidsOf(ctx, o.ID) {
		if b.Sealed != "" {
			forfeit(ctx, b)
			continue
		}
		revealed = append(revealed, b)
	}
	rank(ctx, revealed)
	for _, b := range revealed {
		if fits(ctx, b) == nil {
			makeLease(ctx, p, o, b)
			return
		}
	}
	releaseBids(ctx, o.ID, nil, bidNoCapacity)
	// NB: no round starts that would end past the order's expiry.
	if ctx.Height+p.SealedCommitBlocks+p.SealedRevealBlocks > o.ExpireHeight {
		closeOrder(ctx, o, ReasonNoBids)
		return
	}
	round(ctx, p, o)
	setOrder(ctx, o)
}

// forfeit sends an unrevealed commitment's deposit to the community pool.
func forfeit(ctx *types.Context, b Bid) {
	if b.Deposit.Amount > 0 {
		if err := bank.Send(ctx, Account, bank.CommunityPool, b.Deposit); err != nil {
			panic(fmt.Sprintf("market: forfeit bid deposit %s: %v", b.Deposit, err))
		}
	}
	ctx.Store.Delete(bidKey(b.OrderID, b.Provider))
	ctx.Emit("bid_closed", "order", idStr(b.OrderID), "provider", b.Provider.String(), "reason", "not_revealed", "forfeit", b.Deposit.String())
}

// SealedHash is the commitment to a sealed bid of price on order by provider with
// salt: SHA-256 over a domain tag, the order ID, the provider's address, the price
// and the salt. Binding order and provider makes a commitment useless to anyone else.
func SealedHash(order uint64, provider types.Address, price uint64, salt []byte) []byte {
	h := sha256.New()
	h.Write([]byte("kiln/sealed-bid/v1"))
	h.Write(binary.BigEndian.AppendUint64(nil, order))
	h.Write(provider[:])
	h.Write(binary.BigEndian.AppendUint64(nil, price))
	h.Write(salt)
	return h.Sum(nil)
}

func commitBid(ctx *types.Context, p Params, o *Order, m *MsgCommitBid) error {
	if o.Mode != ModeSealed {
		return types.Wrapf(types.ErrModeMismatch, "order %d is priced by %s, not sealed bids", o.ID, modeOf(o).Name())
	}
	if o.State == OrderOpen && (ctx.Height < o.BidOpenHeight || ctx.Height > o.BidCloseHeight) {
		return types.Wrapf(types.ErrInvalidRequest, "order %d takes commitments in heights %d..%d (now %d)", o.ID, o.BidOpenHeight, o.BidCloseHeight, ctx.Height)
	}
	need, choices, err := vetBid(ctx, o, m.Provider, m.GPUModels, func() error { return nearEnough(ctx, p, o, m.Provider) })
	if err != nil {
		return err
	}
	_, err = lockBid(ctx, p, Bid{OrderID: o.ID, Provider: m.Provider, GPUs: choices, Usage: need, Sealed: hex.EncodeToString(m.Hash)})
	return err
}

func revealBid(ctx *types.Context, p Params, o *Order, m *MsgRevealBid) error {
	if o.Mode != ModeSealed {
		return types.Wrapf(types.ErrModeMismatch, "order %d is priced by %s, not sealed bids", o.ID, modeOf(o).Name())
	}
	if o.State != OrderOpen {
		return types.Wrapf(types.ErrOrderClosed, "order %d is %s", o.ID, o.State)
	}
	if ctx.Height <= o.BidCloseHeight || ctx.Height > o.RevealCloseHeight {
		return types.Wrapf(types.ErrInvalidRequest, "order %d takes reveals in heights %d..%d (now %d)", o.ID, o.BidCloseHeight+1, o.RevealCloseHeight, ctx.Height)
	}
	b, ok := GetBid(ctx, o.ID, m.Provider)
	if !ok || b.Sealed == "" {
		return types.Wrapf(types.ErrNotFound, "no sealed commitment by %s on order %d to reveal", m.Provider, o.ID)
	}
	if got := hex.EncodeToString(SealedHash(o.ID, m.Provider, m.Price, m.Salt)); got != b.Sealed {
		return types.Wrapf(types.ErrBidReveal, "order %d: price %d and salt hash to %s, provider %s committed %s", o.ID, m.Price, got, m.Provider, b.Sealed)
	}
	if err := withinMax(o, m.Price); err != nil {
		return err
	}
	b.Price, b.Sealed, b.UpdatedHeight = m.Price, "", ctx.Height
	setJSON(ctx, bidKey(o.ID, m.Provider), b)
	ctx.Emit("bid_revealed", "order", idStr(o.ID), "provider", m.Provider.String(), "price", idStr(m.Price))
	return nil
}

// rttPrefix: provider|location → Probe.
var rttPrefix = []byte("market/rtt/")

// Probe is a provider's measured round-trip time to a client location's endpoint.
type Probe struct {
	Provider  types.Address `json:"provider"`
	Location  string        `json:"location"`
	RTTMicros uint64        `json:"rtt_micros,string"`
	Height    int64         `json:"height,string"`
}

func probeKey(p types.Address, loc string) []byte {
	return append(append(append([]byte{}, rttPrefix...), p[:]...), loc...)
}

// GetProbe returns provider p's last RTT probe to location loc.
func GetProbe(ctx *types.Context, p types.Address, loc string) (Probe, bool) {
	var pr Probe
	return pr, getJSON(ctx, probeKey(p, loc), &pr)
}

func recordProbe(ctx *types.Context, m *MsgRTTProbe) error {
	if _, ok := registry.Get(ctx, m.Provider); !ok {
		return types.Wrapf(types.ErrNotProvider, "%s is not a registered provider", m.Provider)
	}
	setJSON(ctx, probeKey(m.Provider, m.Location), Probe{Provider: m.Provider, Location: m.Location, RTTMicros: m.RTTMicros, Height: ctx.Height})
	ctx.Emit("rtt_probe", "provider", m.Provider.String(), "location", m.Location, "rtt_us", strconv.FormatUint(m.RTTMicros, 10))
	return nil
}

// nearEnough refuses a provider without a fresh probe to o's client location within
// its max RTT.
func nearEnough(ctx *types.Context, p Params, o *Order, prov types.Address) error {
	s := o.Session
	if s == nil || s.Location == "" {
		return nil
	}
	pr, ok := GetProbe(ctx, prov, s.Location)
	switch {
	case !ok:
		return types.Wrapf(types.ErrRequirementsUnmet, "rtt: provider %s has published no RTT probe to %s (session of order %d wants <= %d ms)", prov, s.Location, o.ID, s.MaxRTTMs)
	case ctx.Height-pr.Height > p.RTTProbeTTLBlocks:
		return types.Wrapf(types.ErrRequirementsUnmet, "rtt: provider %s's probe to %s is from height %d, older than rtt_probe_ttl_blocks %d", prov, s.Location, pr.Height, p.RTTProbeTTLBlocks)
	case pr.RTTMicros > uint64(s.MaxRTTMs)*1000:
		return types.Wrapf(types.ErrRequirementsUnmet, "rtt: provider %s measured %.1f ms to %s, session of order %d allows %d ms", prov, float64(pr.RTTMicros)/1000, s.Location, o.ID, s.MaxRTTMs)
	}
	return nil
}

// MsgCommitBid commits the provider to a sealed bid on a sealed order: Hash is
// SealedHash of the order, the provider, the price and a secret salt. It locks the
// bid deposit. GPUModels is as in MsgCreateBid.
type MsgCommitBid struct {
	Provider  types.Address `json:"provider"`
	OrderID   uint64        `json:"order_id,string"`
	Hash      []byte        `json:"hash"`
	GPUModels []string      `json:"gpu_models,omitempty"`
}

// MsgRevealBid reveals the provider's committed bid: its price per block and salt.
type MsgRevealBid struct {
	Provider types.Address `json:"provider"`
	OrderID  uint64        `json:"order_id,string"`
	Price    uint64        `json:"price,string"`
	Salt     []byte        `json:"salt"`
}

// MsgRTTProbe publishes the provider's measured round-trip time to a client location
// (an endpoint the operator measures, e.g. a region's gaming edge).
type MsgRTTProbe struct {
	Provider  types.Address `json:"provider"`
	Location  string        `json:"location"`
	RTTMicros uint64        `json:"rtt_micros,string"`
}

// SaltLen is the length of a sealed bid's salt: enough that a price cannot be guessed
// from its commitment by trying every price.
const SaltLen = 32

func (m *MsgCommitBid) Type() types.MsgType   { return types.MsgTypeMarketCommitBid }
func (m *MsgRevealBid) Type() types.MsgType   { return types.MsgTypeMarketRevealBid }
func (m *MsgRTTProbe) Type() types.MsgType    { return types.MsgTypeMarketRTTProbe }
func (m *MsgCommitBid) Signer() types.Address { return m.Provider }
func (m *MsgRevealBid) Signer() types.Address { return m.Provider }
func (m *MsgRTTProbe) Signer() types.Address  { return m.Provider }

// ValidateBasic implements types.Msg.
func (m *MsgCommitBid) ValidateBasic() error {
	if len(m.Hash) != sha256.Size {
		return types.InvalidField("hash", len(m.Hash), "must be 32 bytes (SHA-256)")
	}
	return (&MsgCreateBid{OrderID: m.OrderID, Price: 1, GPUModels: m.GPUModels}).ValidateBasic()
}

// ValidateBasic implements types.Msg.
func (m *MsgRevealBid) ValidateBasic() error {
	if len(m.Salt) != SaltLen {
		return types.InvalidField("salt", len(m.Salt), fmt.Sprintf("must be %d bytes", SaltLen))
	}
	return (&MsgCreateBid{OrderID: m.OrderID, Price: m.Price}).ValidateBasic()
}

// ValidateBasic implements types.Msg.
func (m *MsgRTTProbe) ValidateBasic() error {
	if !regionRe.MatchString(m.Location) {
		return types.InvalidField("location", m.Location, "must be 2-63 of [a-z0-9-]")
	}
	if m.RTTMicros < 1 || m.RTTMicros > 60_000_000 {
		return types.InvalidField("rtt_micros", m.RTTMicros, "must be 1 to 60000000 (a minute)")
	}
	return nil
}

func (m *MsgCommitBid) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.OrderID)
	w.WriteBytes(m.Hash)
	w.Uvarint(uint64(len(m.GPUModels)))
	for _, g := range m.GPUModels {
		w.String(g)
	}
}

func (m *MsgRevealBid) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.OrderID)
	w.Uvarint(m.Price)
	w.WriteBytes(m.Salt)
}

func (m *MsgRTTProbe) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.String(m.Location)
	w.Uvarint(m.RTTMicros)
}

// DecodeCommitBid decodes a MsgCommitBid body.
func DecodeCommitBid(r *codec.Reader) types.Msg {
	m := &MsgCommitBid{Provider: bank.ReadAddress(r), OrderID: r.Uvarint(), Hash: r.Bytes(sha256.Size)}
	n := r.Uvarint()
	if n > MaxGroups {
		r.Fail("%d GPU models, limit %d", n, MaxGroups)
		return m
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		m.GPUModels = append(m.GPUModels, r.String(32))
	}
	return m
}

// DecodeRevealBid decodes a MsgRevealBid body.
func DecodeRevealBid(r *codec.Reader) types.Msg {
	return &MsgRevealBid{Provider: bank.ReadAddress(r), OrderID: r.Uvarint(), Price: r.Uvarint(), Salt: r.Bytes(SaltLen)}
}

// DecodeRTTProbe decodes a MsgRTTProbe body.
func DecodeRTTProbe(r *codec.Reader) types.Msg {
	return &MsgRTTProbe{Provider: bank.ReadAddress(r), Location: r.String(64), RTTMicros: r.Uvarint()}
}
