package daemon

import (
	"context"
	"fmt"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// bid sends one bid per open order that fits and pays.
func (d *Daemon) bid(ctx context.Context, h int64) error {
	c := d.deps.Client
	orders, err := c.Orders(ctx, market.OrderOpen, types.Address{})
	if err != nil {
		return err
	}
	open := map[uint64]bool{}
	var cands []market.Order
	d.mu.Lock()
	for _, o := range orders {
		open[o.ID] = true
		// NB: CheckTx runs at h+1, the first height an order placed at h takes bids.
		if d.noBid[o.ID] || o.BidOpenHeight > h+1 || !takesBids(o.Mode) {
			continue
		}
		if o.Mode == market.ModeSealed && h+1 > o.BidCloseHeight {
			continue // NB: the commit window has passed; the next round opens a new one
		}
		if s, ok := d.bidSent[o.ID]; ok && h-s < 3 {
			continue // sent recently: it is on chain or about to be
		}
		cands = append(cands, o)
	}
	for id := range d.bidSent {
		if !open[id] {
			delete(d.bidSent, id)
		}
	}
	for id := range d.noBid {
		if !open[id] {
			delete(d.noBid, id)
		}
	}
	d.mu.Unlock()
	d.reveal(ctx, h, orders)
	if len(cands) == 0 {
		return nil
	}
	mine, err := c.Bids(ctx, 0, d.self)
	if err != nil {
		return err
	}
	capr, err := c.ProviderCapacity(ctx, d.self)
	if err != nil {
		return err
	}
	// NB: capacity held by our open bids counts as used, so every bid we make can be
	// honoured if it wins.
	used := capr.Used
	have := map[uint64]bool{}
	for _, b := range mine {
		have[b.OrderID] = true
		used = used.Add(b.Usage)
	}
	var msgs []types.Msg
	var ids []uint64
	for _, o := range cands {
		if have[o.ID] {
			continue
		}
		never := func(why string, args ...any) {
			d.log.Debug("no bid", append([]any{"order", o.ID, "why", why}, args...)...)
			d.mu.Lock()
			d.noBid[o.ID] = true
			d.mu.Unlock()
			d.metrics.skipped.Inc()
		}
		if excluded(o, d.self) {
			never("excluded after an earlier lease of this order")
			continue
		}
		if o.TEE != "" {
			if d.att == nil {
				never("order requires a TEE ("+o.TEE+") and this provider does not attest ([tee] attest = false)", "constraint", "tee")
				continue
			}
			if why, always := d.att.bidRefusal(o, h); always {
				never("order requires a TEE ("+o.TEE+"): "+why, "constraint", "tee")
				continue
			} else if why != "" {
				d.log.Debug("no bid this block", "order", o.ID, "why", "order requires a TEE ("+o.TEE+"): "+why)
				continue
			}
		}
		if o.Cluster != nil && d.clusterWhy != "" {
			d.log.Info("no bid on cluster order", "order", o.ID, "why", d.clusterWhy)
			never("cluster order: " + d.clusterWhy)
			continue
		}
		groups, members := o.Groups, uint32(0)
		if o.Cluster != nil {
			// NB: a cluster order is bid per member: as many members as fit, at
			// the price of one.
			if members = clusterMembers(o, d.inv, used); members > 0 {
				groups = clusterGroups(o, members)
			}
		}
		need, choices, static, inUse := market.Fit(groups, nil, d.inv, used)
		if len(static) > 0 {
			never("does not fit the inventory", "constraint", static[0].String())
			continue
		}
		if len(inUse) > 0 {
			d.log.Debug("no bid this block", "order", o.ID, "why", inUse[0].String())
			continue
		}
		price, err := d.cfg.Pricing.Price(o.Groups, choices) // NB: for a cluster, per member
		if o.Mode == market.ModePerformance {
			// NB: per benchmark TFLOP-hour; the chain turns it into a price per block
			// by the GPUs' scores.
			price, err = d.cfg.Pricing.TFLOPHour, nil
			if price == 0 {
				err = fmt.Errorf("no tflop_hour price")
			}
		}
		if err != nil {
			never(err.Error())
			continue
		}
		if o.ReclaimWindowSeconds > 0 {
			price = max(1, price-price*d.cfg.Pricing.ReclaimDiscountBps/10_000)
		}
		if price > o.MaxPrice {
			never("max price below ours", "price", price, "max_price", o.MaxPrice)
			continue
		}
		if o.Cluster != nil && price > market.MemberCap(&o) {
			never("cluster's per-member cap below ours", "price", price, "member_cap", market.MemberCap(&o))
			continue
		}
		models := make([]string, len(choices))
		for i, ch := range choices {
			models[i] = ch.Model
		}
		if o.Mode == market.ModeSealed {
			if s := o.Session; s != nil && s.Location != "" && d.cfg.RTTEndpoints[s.Location] == "" {
				never("session wants an RTT probe to a location this provider does not measure", "location", s.Location)
				continue
			}
			m, err := d.commitment(o.ID, price, models)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		} else {
			msgs = append(msgs, &market.MsgCreateBid{Provider: d.self, OrderID: o.ID, Price: price, GPUModels: models, Members: members})
		}
		ids = append(ids, o.ID)
		used = used.Add(need)
		d.log.Info("bid", "order", o.ID, "price", price, "gpus", models, "height", h)
	}
	if len(msgs) == 0 {
		return nil
	}
	d.mu.Lock()
	for _, id := range ids {
		d.bidSent[id] = h
	}
	d.mu.Unlock()
	errs := d.snd.sendEach(ctx, msgs)
	d.metrics.bids.Add(float64(len(msgs) - len(errs)))
	for i, err := range errs {
		d.log.Warn("bid refused", "order", ids[i], "err", err)
	}
	return nil
}

// takesBids reports whether the bidder offers on orders of pricing mode mode: the
// auction's (MsgCreateBid) and sealed ones' (MsgCommitBid, revealed by reveal). The
// order book fills from asks (postAsks).
func takesBids(mode string) bool {
	switch mode {
	case "", market.ModeAuction, market.ModeSealed, market.ModePerformance:
		return true
	}
	return false
}

// clusterMembers is how many members of cluster order o fit inv's free capacity
// beside used (0 when none does).
func clusterMembers(o market.Order, inv registry.Inventory, used market.Usage) uint32 {
	for n := o.Cluster.Members; n > 0; n-- {
		if _, _, static, inUse := market.Fit(clusterGroups(o, n), nil, inv, used); len(static)+len(inUse) == 0 {
			return n
		}
	}
	return 0
}

// clusterGroups is cluster order o's member group, n instances of it.
func clusterGroups(o market.Order, n uint32) []market.Group {
	g := o.Groups[0]
	g.Count = n
	return []market.Group{g}
}

func excluded(o market.Order, p types.Address) bool {
	for _, x := range o.Excluded {
		if x == p {
			return true
		}
	}
	return false
}
