package market

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// Reclaimable leases (Akash AEP-82). An order with a reclaim window
// (Order.ReclaimWindowSeconds; Akash SDL `reclamation: {min_window: 24h}`, the Kiln
// spec's `reclamation`) accepts that its provider may take the capacity back, usually
// for a lower price. The provider starts a reclaim (MsgReclaimLease) naming a reason
// and a notice of at least the window; the lease shows it (Lease.Reclaim: state
// reclaiming, reason, deadline) and runs on until the deadline (block time), where it
// closes with reason reclaimed, paid for the blocks it ran and its escrow refunded, or,
// for an auto_redeploy order, placed again with other providers. A reclaim with less
// notice than the window, on a lease that is not reclaimable, or a second one, is
// refused (ErrReclaimRefused).

// MaxReclaimWindowSeconds is the longest reclaim window: Akash's 720 hours.
const MaxReclaimWindowSeconds = 720 * 3600

// reclaimPrefix: deadline (unix seconds)|lease id → {} for leases being reclaimed.
var reclaimPrefix = []byte("market/reclaim/")

func reclaimKey(deadline int64, id uint64) []byte {
	return u64key(reclaimPrefix, uint64(deadline), id)
}

// Reclaim is a provider's reclaim of a lease in progress.
type Reclaim struct {
	// State is "reclaiming" (the lease runs until Deadline).
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Deadline is the block time (unix seconds) at or after which the lease closes.
	Deadline      int64 `json:"deadline,string"`
	StartedHeight int64 `json:"started_height,string"`
}

// LeaseReclaiming is the state of a lease whose provider reclaims it.
const LeaseReclaiming = "reclaiming"

// MsgReclaimLease starts the provider's reclaim of a reclaimable lease: it closes
// NoticeSeconds from now (block time), at least the order's reclaim window.
type MsgReclaimLease struct {
	Provider      types.Address `json:"provider"`
	LeaseID       uint64        `json:"lease_id,string"`
	Reason        string        `json:"reason"`
	NoticeSeconds uint64        `json:"notice_seconds,string"`
}

func (m *MsgReclaimLease) Type() types.MsgType   { return types.MsgTypeMarketReclaim }
func (m *MsgReclaimLease) Signer() types.Address { return m.Provider }

// ValidateBasic implements types.Msg.
func (m *MsgReclaimLease) ValidateBasic() error {
	if m.Reason == "" || !printable(m.Reason, 128) {
		return types.InvalidField("reason", m.Reason, "must be 1-128 printable bytes (why the provider needs the capacity back)")
	}
	if m.NoticeSeconds < 1 || m.NoticeSeconds > MaxReclaimWindowSeconds {
		return types.InvalidField("notice_seconds", m.NoticeSeconds, fmt.Sprintf("must be 1 to %d", MaxReclaimWindowSeconds))
	}
	return needID("lease_id", m.LeaseID)
}

func (m *MsgReclaimLease) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.LeaseID)
	w.String(m.Reason)
	w.Uvarint(m.NoticeSeconds)
}

// DecodeReclaimLease decodes a MsgReclaimLease body.
func DecodeReclaimLease(r *codec.Reader) types.Msg {
	return &MsgReclaimLease{Provider: bank.ReadAddress(r), LeaseID: r.Uvarint(), Reason: r.String(128), NoticeSeconds: r.Uvarint()}
}

func startReclaim(ctx *types.Context, m *MsgReclaimLease) error {
	o, l, err := activeLease(ctx, m.LeaseID)
	if err != nil {
		return err
	}
	switch {
	case m.Provider != l.Provider:
		return types.Wrapf(types.ErrUnauthorized, "lease %d is run by %s; only it may reclaim it (got %s)", l.ID, l.Provider, m.Provider)
	case o.ReclaimWindowSeconds == 0:
		return types.Wrapf(types.ErrReclaimRefused, "lease %d is not reclaimable: its order has no reclamation window", l.ID)
	case l.Reclaim != nil:
		return types.Wrapf(types.ErrReclaimRefused, "lease %d is already being reclaimed (deadline %s)", l.ID, time.Unix(l.Reclaim.Deadline, 0).UTC().Format(time.RFC3339))
	case m.NoticeSeconds < o.ReclaimWindowSeconds:
		return types.Wrapf(types.ErrReclaimRefused, "notice_seconds: lease %d must be given at least its reclamation window of %s (got %s)", l.ID,
			time.Duration(o.ReclaimWindowSeconds)*time.Second, time.Duration(m.NoticeSeconds)*time.Second)
	}
	l.Reclaim = &Reclaim{State: LeaseReclaiming, Reason: m.Reason, Deadline: ctx.Time.Unix() + int64(m.NoticeSeconds), StartedHeight: ctx.Height}
	setLease(ctx, &l)
	ctx.Store.Set(reclaimKey(l.Reclaim.Deadline, l.ID), present)
	ctx.Emit("lease_reclaiming", "lease", idStr(l.ID), "provider", l.Provider.String(), "reason", m.Reason,
		"deadline", strconv.FormatInt(l.Reclaim.Deadline, 10))
	return nil
}

// endReclaims closes, with reason reclaimed, every lease whose reclaim deadline has
// come by this block's time. Per block it costs the reclaims due.
func endReclaims(ctx *types.Context, p Params) {
	now := ctx.Time.Unix()
	var ids []uint64
	ctx.Store.Iterate(reclaimPrefix, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(reclaimPrefix):])) > now {
			return false
		}
		ids = append(ids, binary.BigEndian.Uint64(k[len(reclaimPrefix)+8:]))
		return true
	})
	for _, id := range ids {
		o, l, err := activeLease(ctx, id)
		if err != nil || l.Reclaim == nil {
			panic(fmt.Sprintf("market: reclaim queue names lease %d, which is not being reclaimed: %v", id, err))
		}
		closeLease(ctx, p, &o, &l, ReasonReclaimed, "")
	}
}

// checkReclaims returns an error unless the reclaim queue names exactly the active
// leases being reclaimed. O(active leases).
func checkReclaims(ctx *types.Context) error {
	n := 0
	for _, l := range Leases(ctx, LeaseFilter{State: LeaseActive}) {
		if l.Reclaim == nil {
			continue
		}
		n++
		if _, ok := ctx.Store.Get(reclaimKey(l.Reclaim.Deadline, l.ID)); !ok {
			return fmt.Errorf("market: lease %d is being reclaimed but not queued", l.ID)
		}
	}
	q := 0
	ctx.Store.Iterate(reclaimPrefix, func(_, _ []byte) bool { q++; return true })
	if q != n {
		return fmt.Errorf("market: reclaim queue holds %d entries, %d active leases are being reclaimed", q, n)
	}
	return nil
}
