package market

import (
	"github.com/kiln-network/kiln/types"
)

// auction is the reverse auction (ModeAuction), as Akash runs it: an order takes bids
// from the block after it is placed for bid_window_blocks; at the window's close the
// lowest fitting bid wins (price, then provider stake, then the earlier bid). A manual
// order's tenant picks a bid instead, within manual_pick_blocks. An order without a
// winning bid waits for a late one until order_ttl_blocks after its window, then
// closes (no_bids, or not_picked).
type auction struct{}

func (auction) Name() string { return ModeAuction }

// Open starts a bid window at the next block and schedules the order's check.
func (auction) Open(ctx *types.Context, p Params, o *Order) {
	o.BidOpenHeight = ctx.Height + 1
	o.BidCloseHeight = ctx.Height + p.BidWindowBlocks
	if o.Manual {
		o.ExpireHeight = o.BidCloseHeight + p.ManualPickBlocks
		schedule(ctx, o, o.ExpireHeight)
	} else {
		o.ExpireHeight = o.BidCloseHeight + p.OrderTTLBlocks
		schedule(ctx, o, o.BidCloseHeight)
	}
}

func (auction) Bid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) error {
	if o.State == OrderOpen && ctx.Height < o.BidOpenHeight {
		return types.Wrapf(types.ErrInvalidRequest, "order %d takes bids from height %d (now %d)", o.ID, o.BidOpenHeight, ctx.Height)
	}
	if o.Cluster != nil {
		if _, err := clusterBid(ctx, p, o, m); err != nil {
			return err
		}
	} else if _, err := placeBid(ctx, p, o, m); err != nil {
		return err
	}
	// NB: an automatic order whose window closed empty arms a fresh window with its
	// first late bid, so the bid wins within bid_window_blocks, not at expiry.
	if !o.Manual && ctx.Height > o.BidCloseHeight {
		if due := min(ctx.Height+p.BidWindowBlocks-1, o.ExpireHeight); due < o.NextCheck {
			schedule(ctx, o, due)
			setOrder(ctx, o)
		}
	}
	return nil
}

func (auction) Pick(ctx *types.Context, p Params, o *Order, m *MsgCreateLease) error {
	if o.State != OrderOpen {
		return types.Wrapf(types.ErrOrderClosed, "order %d is %s", o.ID, o.State)
	}
	if !o.Manual {
		return types.Wrapf(types.ErrInvalidRequest, "order %d picks its winner automatically at the end of height %d", o.ID, o.BidCloseHeight)
	}
	if ctx.Height <= o.BidCloseHeight {
		return types.Wrapf(types.ErrInvalidRequest, "order %d's bid window is open until the end of height %d (now %d)", o.ID, o.BidCloseHeight, ctx.Height)
	}
	b, ok := GetBid(ctx, o.ID, m.Provider)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "no open bid by %s on order %d", m.Provider, o.ID)
	}
	if err := fits(ctx, b); err != nil {
		return types.Wrapf(types.ErrInsufficientCapacity, "bid of %s on order %d no longer fits: %v", b.Provider, o.ID, err)
	}
	makeLease(ctx, p, o, b)
	return nil
}

// Check runs at the window's close (or a late bid's) and at expiry: the best bid
// that still fits wins; an order past its expiry closes.
func (auction) Check(ctx *types.Context, p Params, o *Order) {
	if o.Cluster != nil {
		checkCluster(ctx, p, o)
		return
	}
	bids := BidsOf(ctx, o.ID)
	if !o.Manual && len(bids) > 0 {
		rank(ctx, bids)
		for _, b := range bids {
			if fits(ctx, b) == nil {
				makeLease(ctx, p, o, b)
				return
			}
		}
		// NB: every bid lost its capacity to other leases since it was made; the order
		// waits for fresh bids until it expires.
		releaseBids(ctx, o.ID, nil, bidNoCapacity)
		bids = nil
	}
	if ctx.Height >= o.ExpireHeight {
		reason := ReasonNoBids
		if len(bids) > 0 {
			reason = ReasonNotPicked
		}
		closeOrder(ctx, o, reason)
		return
	}
	schedule(ctx, o, o.ExpireHeight)
	setOrder(ctx, o)
}
