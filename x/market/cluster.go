package market

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/registry"
)

// GPU clusters (issue 16). A cluster order (Order.Cluster) asks for Members members,
// each one instance of the order's single group, that may land on different
// providers and run one job together (torch.distributed, MPI, Ray).
//
// Placement is all or nothing (gang scheduling). Providers bid per member: a bid
// offers Bid.Members members at Bid.Price per member per block. At the close of the
// bid window the cheapest bids that still fit are taken, member by member, until all
// are placed; if the bids cannot place every member (too few, no longer fitting, not
// in one region for same_region, too far apart for max_rtt_ms), no member is placed:
// the order records why (Order.Unplaced), keeps its bids as offers and waits for
// more until it expires, when every bid is released and the deposit refunded
// (cluster_unplaced). Nothing is ever billed for half a cluster.
//
// Placed, each member gets an order of its own (MemberOf, Rank), split off the
// cluster order with its share of the deposit (by its price), and a lease of its
// own with its provider: per-provider escrow, heartbeats, settlement and completion
// are the core's. The cluster record (ClusterLease) follows the members: each
// member's provider reports the member ready with its overlay public key and UDP
// endpoint (MsgMemberReady), and once every member is ready for the current epoch,
// running (MsgMemberRunning), from which its lease bills.
//
// A member whose lease ends early fails the cluster per Cluster.OnMemberFailure:
// refund closes every member (paid up to then) and refunds the rest; replace re-opens
// that member's order for one member (the failed provider excluded), bumps the
// epoch, and every member reports ready again before the job restarts (from its last
// checkpoint). A member order that finds no replacement fails the cluster as refund
// does. The cluster completes when every member has completed.
//
// Contracts: a cluster order's members are all placed in one block or none is; the
// cluster order's escrow only ever funds its members' (no provider is paid from it);
// once any member fails for good the cluster closes all its members in the same
// block.

// Cluster failure policies (Cluster.OnMemberFailure).
const (
	// FailRefund closes the whole cluster when a member fails, refunding the rest.
	FailRefund = "refund"
	// FailReplace re-places the failed member; the job restarts from its checkpoint.
	FailReplace = "replace"
)

// MaxClusterMembers bounds a cluster's members.
const MaxClusterMembers = 64

// MaxClusterRTTMs bounds Cluster.MaxRTTMs.
const MaxClusterRTTMs = 10_000

// Cluster is what makes an order a GPU cluster.
type Cluster struct {
	// Members is how many members (machines) run the job, each one instance of the
	// order's group: 2 to MaxClusterMembers.
	Members uint32 `json:"members"`
	// GPUsPerMember is how many GPUs each member has; it equals the group's
	// gpu.units.
	GPUsPerMember uint32 `json:"gpus_per_member"`
	// SameRegion places every member in one provider region.
	SameRegion bool `json:"same_region,omitempty"`
	// MaxRTTMs, when not 0, is the most round-trip time allowed between any two
	// providers of the cluster, as they measured each other (MsgRTTProbe to
	// PeerLocation).
	MaxRTTMs uint32 `json:"max_rtt_ms,omitempty"`
	// OnMemberFailure is FailRefund or FailReplace.
	OnMemberFailure string `json:"on_member_failure"`
}

// validateCluster checks a cluster order: the member group, the policy, and the
// order options a cluster does not take.
func (m *MsgCreateOrder) validateCluster() error {
	c := m.Cluster
	switch {
	case c.Members < 2 || c.Members > MaxClusterMembers:
		return types.InvalidField("cluster.members", c.Members, fmt.Sprintf("must be 2 to %d (one member is an ordinary order)", MaxClusterMembers))
	case c.OnMemberFailure != FailRefund && c.OnMemberFailure != FailReplace:
		return types.InvalidField("cluster.on_member_failure", c.OnMemberFailure, "must be refund or replace")
	case c.MaxRTTMs > MaxClusterRTTMs:
		return types.InvalidField("cluster.max_rtt_ms", c.MaxRTTMs, fmt.Sprintf("must be 0 (no limit) to %d", MaxClusterRTTMs))
	case len(m.Groups) != 1:
		return types.InvalidField("groups", len(m.Groups), "a cluster order has exactly one group: the member, repeated cluster.members times")
	case m.Groups[0].Count != 1:
		return types.InvalidField("groups[0].count", m.Groups[0].Count, "must be 1 in a cluster order: each member is one instance; ask for more with cluster.members")
	case m.Groups[0].GPU.Units != c.GPUsPerMember:
		return types.InvalidField("cluster.gpus_per_member", c.GPUsPerMember, fmt.Sprintf("must equal the group's gpu.units (%d)", m.Groups[0].GPU.Units))
	case m.Mode != "" && m.Mode != ModeAuction:
		return types.InvalidField("mode", m.Mode, "a cluster order is placed by the reverse auction (auction) only")
	case m.Manual:
		return types.InvalidField("manual", true, "a cluster order's members are placed together automatically; it cannot be manual")
	case m.AutoRedeploy:
		return types.InvalidField("auto_redeploy", true, "a cluster re-places failed members with cluster.on_member_failure: replace")
	case m.ReclaimWindowSeconds != 0:
		return types.InvalidField("reclaim_window_seconds", m.ReclaimWindowSeconds, "a cluster's members cannot be reclaimable: one reclaimed member stops the whole job")
	case m.MaxPrice < uint64(c.Members):
		return types.InvalidField("max_price", m.MaxPrice, fmt.Sprintf("is per block for the whole cluster: at least 1 per member (%d members)", c.Members))
	}
	return nil
}

// MemberCap is the most a cluster order o pays one member per block: its max price
// shared by its members.
func MemberCap(o *Order) uint64 { return o.MaxPrice / uint64(o.Cluster.Members) }

// memberGroups is o's group repeated n times (one instance each): what n members
// need.
func memberGroups(o *Order, n uint32) []Group {
	g := o.Groups[0]
	g.Count = n
	return []Group{g}
}

// Cluster and member states.
const (
	// ClusterPending: every member is placed; not all are ready this epoch.
	ClusterPending = "pending"
	// ClusterReady: every member reported ready this epoch; they start.
	ClusterReady = "ready"
	// ClusterRunning: every member reported running this epoch.
	ClusterRunning = "running"
	// ClusterPlacing: a failed member is being re-placed.
	ClusterPlacing = "placing"
	// ClusterDone: every member completed.
	ClusterDone = "done"
	// ClusterFailed: the cluster closed before completing.
	ClusterFailed = "failed"

	MemberPlacing = "placing" // its order looks for a (replacement) provider
	MemberPending = "pending" // placed; not ready this epoch
	MemberReady   = "ready"   // key and endpoint reported this epoch
	MemberRunning = "running" // its rank runs
	MemberDone    = "done"    // its lease completed
	MemberFailed  = "failed"  // its lease ended otherwise
)

// ClusterLease is a placed cluster: its members, their providers and overlay
// endpoints, and where the job stands. Its ID is the cluster order's ID.
type ClusterLease struct {
	ID    uint64        `json:"id,string"`
	Owner types.Address `json:"owner"`
	// Epoch counts re-placements: members report ready and running for the
	// current epoch only, and restart when it changes.
	Epoch   uint32   `json:"epoch"`
	State   string   `json:"state"`
	Policy  string   `json:"on_member_failure"`
	Members []Member `json:"members"`
	// RunningHeight is the height at which every member ran this epoch (0 until).
	RunningHeight int64  `json:"running_height,string,omitempty"`
	CloseReason   string `json:"close_reason,omitempty"`
	ClosedHeight  int64  `json:"closed_height,string,omitempty"`
	CreatedHeight int64  `json:"created_height,string"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

// Member is one rank of a cluster.
type Member struct {
	Rank uint32 `json:"rank"`
	// Lease is the member's own order (and lease) ID.
	Lease    uint64        `json:"lease,string"`
	Provider types.Address `json:"provider"`
	State    string        `json:"state"`
	// PublicKey is the member's overlay (WireGuard) public key, base64, and Endpoint
	// its UDP endpoint (host:port), as its provider reported them this epoch.
	PublicKey     string `json:"public_key,omitempty"`
	Endpoint      string `json:"endpoint,omitempty"`
	ReadyHeight   int64  `json:"ready_height,string,omitempty"`
	RunningHeight int64  `json:"running_height,string,omitempty"`
	// Replaced counts the providers this member lost.
	Replaced      uint32 `json:"replaced,omitempty"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

var clusterPrefix = []byte("market/cluster/") // id → ClusterLease

// GetCluster returns the cluster placed for cluster order id.
func GetCluster(ctx *types.Context, id uint64) (ClusterLease, bool) {
	var c ClusterLease
	return c, getJSON(ctx, u64key(clusterPrefix, id), &c)
}

func setCluster(ctx *types.Context, c *ClusterLease) {
	c.UpdatedHeight = ctx.Height
	setJSON(ctx, u64key(clusterPrefix, c.ID), c)
}

func (c *ClusterLease) ended() bool { return c.State == ClusterDone || c.State == ClusterFailed }

// PeerLocation is the RTT probe location under which a provider publishes its
// round-trip time to provider p (for Cluster.MaxRTTMs).
func PeerLocation(p types.Address) string { return fmt.Sprintf("peer-%x", p[:12]) }

// seat is part of a cluster placement: count members on one bid's provider.
type seat struct {
	bid   Bid
	count uint32
}

// clusterBid checks provider m.Provider's bid on cluster order o for m.Members
// members (0: 1) at m.Price per member and locks it.
func clusterBid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) (Bid, error) {
	n := max(m.Members, 1)
	if n > o.Cluster.Members {
		return Bid{}, types.InvalidField("members", m.Members, fmt.Sprintf("order %d's cluster has %d members", o.ID, o.Cluster.Members))
	}
	limit := MemberCap(o)
	oo := *o
	oo.Groups = memberGroups(o, n)
	need, choices, err := vetBid(ctx, &oo, m.Provider, m.GPUModels, func() error {
		if m.Price > limit {
			return types.Wrapf(types.ErrInvalidRequest, "price: %d%s per member per block is above cluster order %d's per-member cap %d (max price %d over %d members)",
				m.Price, o.Denom, o.ID, limit, o.MaxPrice, o.Cluster.Members)
		}
		return nil
	})
	if err != nil {
		return Bid{}, err
	}
	return lockBid(ctx, p, Bid{OrderID: o.ID, Provider: m.Provider, Price: m.Price, GPUs: choices, Usage: need, Members: n})
}

// fitMembers is how many of want members of cluster order o fit provider prov's free
// capacity with taken more of its resources set aside, and what they need.
func fitMembers(o *Order, prov registry.Provider, used Usage, b Bid, want uint32) (uint32, Usage) {
	prefs := []string{""}
	if len(b.GPUs) > 0 && b.GPUs[0].Model != "" {
		prefs[0] = b.GPUs[0].Model
	}
	for n := want; n > 0; n-- {
		need, _, static, inUse := Fit(memberGroups(o, n), prefs, prov.Inventory, used)
		if len(static)+len(inUse) == 0 {
			return n, need
		}
	}
	return 0, Usage{}
}

// planCluster places cluster order o's members on its bids, cheapest first: the
// seats, or none and why not.
func planCluster(ctx *types.Context, p Params, o *Order) ([]seat, string) {
	bids := BidsOf(ctx, o.ID)
	want := o.Cluster.Members
	if len(bids) == 0 {
		return nil, fmt.Sprintf("no provider bid for any of the %d members", want)
	}
	rank(ctx, bids)
	provs := map[types.Address]registry.Provider{}
	regions := []string{""}
	if o.Cluster.SameRegion {
		regions = nil
	}
	offered := uint32(0)
	for _, b := range bids {
		prov, ok := registry.Get(ctx, b.Provider)
		if !ok {
			continue
		}
		provs[b.Provider] = prov
		offered += b.Members
		if o.Cluster.SameRegion && !slices.Contains(regions, prov.Inventory.Region) {
			regions = append(regions, prov.Inventory.Region)
		}
	}
	slices.Sort(regions)
	// One pass per region (one pass in all without same_region): the full placement
	// that costs least wins, the first region on a tie; failing that, the pass that
	// placed most explains why.
	type pass struct {
		region string
		seats  []seat
		placed uint32
		cost   uint64
		why    []string
	}
	var best *pass
	for _, region := range regions {
		ps := &pass{region: region}
		for _, b := range bids {
			if ps.placed == want {
				break
			}
			prov, ok := provs[b.Provider]
			if !ok {
				ps.why = append(ps.why, fmt.Sprintf("%s is no longer registered", b.Provider))
				continue
			}
			if o.Cluster.SameRegion && prov.Inventory.Region != region {
				continue
			}
			if far := tooFar(ctx, p, o, ps.seats, b.Provider); far != "" {
				ps.why = append(ps.why, far)
				continue
			}
			n, _ := fitMembers(o, prov, Used(ctx, b.Provider), b, min(b.Members, want-ps.placed))
			if n < min(b.Members, want-ps.placed) {
				ps.why = append(ps.why, fmt.Sprintf("%s bid for %d members but has room for %d now", b.Provider, b.Members, n))
			}
			if n == 0 {
				continue
			}
			ps.seats = append(ps.seats, seat{bid: b, count: n})
			ps.placed += n
			ps.cost += uint64(n) * b.Price
		}
		switch {
		case best == nil:
			best = ps
		case ps.placed == want && (best.placed < want || ps.cost < best.cost):
			best = ps
		case best.placed < want && ps.placed > best.placed:
			best = ps
		}
	}
	bestPlaced, bestRegion, bestWhy := best.placed, best.region, best.why
	if bestPlaced == want {
		return best.seats, ""
	}
	// NB: counted per provider, as a tenant reads it: "only 2 providers can serve 3
	// members".
	why := fmt.Sprintf("only %d of %d members can be placed now (%s bid for %s in all)", bestPlaced, want, plural(len(bids), "provider"), plural(int(offered), "member"))
	if o.Cluster.SameRegion {
		why += fmt.Sprintf("; the most in one region: %d in %s", bestPlaced, orNone(bestRegion))
	}
	if len(bestWhy) > 0 {
		why += ": " + strings.Join(bestWhy, "; ")
	}
	return nil, why
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// tooFar says why provider q may not join seats under o's max_rtt_ms ("" if it may):
// every pair of the cluster's providers must have a fresh probe of one to the other
// within the limit.
func tooFar(ctx *types.Context, p Params, o *Order, seats []seat, q types.Address) string {
	limit := uint64(o.Cluster.MaxRTTMs) * 1000
	if limit == 0 {
		return ""
	}
	for _, s := range seats {
		a := s.bid.Provider
		best, found := uint64(0), false
		for _, pr := range []struct{ from, to types.Address }{{a, q}, {q, a}} {
			if x, ok := GetProbe(ctx, pr.from, PeerLocation(pr.to)); ok && ctx.Height-x.Height <= p.RTTProbeTTLBlocks {
				if !found || x.RTTMicros < best {
					best, found = x.RTTMicros, true
				}
			}
		}
		switch {
		case !found:
			return fmt.Sprintf("%s and %s have not measured their round-trip time (max_rtt_ms %d)", q, a, o.Cluster.MaxRTTMs)
		case best > limit:
			return fmt.Sprintf("%s is %.1f ms from %s, max_rtt_ms is %d", q, float64(best)/1000, a, o.Cluster.MaxRTTMs)
		}
	}
	return ""
}

// checkCluster is the auction's check of a cluster order at its window's close (or
// a late bid's) and at its expiry: place every member, or none.
func checkCluster(ctx *types.Context, p Params, o *Order) {
	seats, why := planCluster(ctx, p, o)
	if seats != nil {
		placeCluster(ctx, p, o, seats)
		return
	}
	if why != o.Unplaced {
		o.Unplaced = why
		ctx.Emit("cluster_unplaced", "order", idStr(o.ID), "why", why)
	}
	if ctx.Height >= o.ExpireHeight {
		closeOrder(ctx, o, ReasonClusterUnplaced)
		return
	}
	// NB: the bids stay as offers: a late bid arms a fresh window (auction.Bid).
	schedule(ctx, o, o.ExpireHeight)
	setOrder(ctx, o)
}

// placeCluster makes every member of cluster order o: an order of its own per member
// funded with its share of o's deposit by price, and its lease, ranks in seat order.
func placeCluster(ctx *types.Context, p Params, o *Order, seats []seat) {
	acct, _ := escrow.Get(ctx, o.ID)
	var total uint64
	for _, s := range seats {
		total += uint64(s.count) * s.bid.Price
	}
	c := ClusterLease{ID: o.ID, Owner: o.Owner, State: ClusterPending, Policy: o.Cluster.OnMemberFailure, CreatedHeight: ctx.Height}
	var winners []types.Address
	rank := uint32(0)
	for _, s := range seats {
		winners = append(winners, s.bid.Provider)
		prov, _ := registry.Get(ctx, s.bid.Provider)
		prefs := []string{""}
		if len(s.bid.GPUs) > 0 {
			prefs[0] = s.bid.GPUs[0].Model
		}
		// NB: one member's need, against the whole inventory: the seat's fit was
		// checked for all its members together.
		need, choices, fails := resolve(o.Groups, prefs, prov.Inventory.Region, prov.Inventory.Attributes, Total(prov.Inventory))
		if len(fails) > 0 {
			panic(fmt.Sprintf("market: cluster %d: a member no longer fits %s after planning: %v", o.ID, s.bid.Provider, fails))
		}
		for i := uint32(0); i < s.count; i++ {
			id := nextSeq(ctx, orderSeqKey)
			if err := escrow.Split(ctx, o.ID, id, mulDiv(acct.Balance, s.bid.Price, total)); err != nil {
				panic(fmt.Sprintf("market: fund member %d of cluster %d: %v", rank, o.ID, err))
			}
			m := Order{ID: id, Owner: o.Owner, Kind: o.Kind, Groups: o.Groups, MaxPrice: MemberCap(o), Denom: o.Denom,
				AutoRedeploy: o.Cluster.OnMemberFailure == FailReplace, Mode: ModeAuction, Parent: o.ID, MemberOf: o.ID, Rank: rank,
				TEE: o.TEE, AllowedMeasurements: o.AllowedMeasurements, State: OrderOpen, CreatedHeight: ctx.Height}
			makeLease(ctx, p, &m, Bid{OrderID: id, Provider: s.bid.Provider, Price: s.bid.Price, GPUs: choices, Usage: need})
			c.Members = append(c.Members, Member{Rank: rank, Lease: id, Provider: s.bid.Provider, State: MemberPending, UpdatedHeight: ctx.Height})
			rank++
		}
	}
	for _, b := range BidsOf(ctx, o.ID) {
		r := bidLost
		if slices.Contains(winners, b.Provider) {
			r = bidWon
		}
		releaseBid(ctx, b, r)
	}
	setCluster(ctx, &c)
	o.State = OrderActive
	o.Unplaced = ""
	ctx.Store.Delete(u64key(openPrefix, o.ID))
	schedule(ctx, o, 0)
	setOrder(ctx, o)
	provs := map[types.Address]bool{}
	for _, w := range winners {
		provs[w] = true
	}
	ctx.Emit("cluster_placed", "order", idStr(o.ID), "members", strconv.Itoa(len(c.Members)), "providers", strconv.Itoa(len(provs)),
		"price", strconv.FormatUint(total, 10))
}

// memberLeased records a replacement member's new lease l (order o); the members
// placed with the cluster are recorded by placeCluster.
func memberLeased(ctx *types.Context, o *Order, l *Lease) {
	c, ok := GetCluster(ctx, o.MemberOf)
	if !ok || c.ended() || int(o.Rank) >= len(c.Members) {
		return
	}
	m := &c.Members[o.Rank]
	m.Provider, m.State, m.UpdatedHeight = l.Provider, MemberPending, ctx.Height
	if c.State == ClusterPlacing && !anyMember(&c, MemberPlacing) {
		c.State = ClusterPending
	}
	setCluster(ctx, &c)
	ctx.Emit("cluster_member_replaced", "cluster", idStr(c.ID), "rank", strconv.FormatUint(uint64(o.Rank), 10), "lease", idStr(l.ID),
		"provider", l.Provider.String(), "epoch", strconv.FormatUint(uint64(c.Epoch), 10))
}

func anyMember(c *ClusterLease, state string) bool {
	for _, m := range c.Members {
		if m.State == state {
			return true
		}
	}
	return false
}

// memberReopened handles member order o re-opened after its lease l failed (policy
// replace): a new epoch, in which every member not done reports ready again.
func memberReopened(ctx *types.Context, o *Order, l *Lease) {
	c, ok := GetCluster(ctx, o.MemberOf)
	if !ok || c.ended() {
		return
	}
	c.Epoch++
	c.State = ClusterPlacing
	c.RunningHeight = 0
	for i := range c.Members {
		m := &c.Members[i]
		if m.State == MemberDone {
			continue
		}
		m.State, m.PublicKey, m.Endpoint, m.ReadyHeight, m.RunningHeight, m.UpdatedHeight = MemberPending, "", "", 0, 0, ctx.Height
		if m.Rank == o.Rank {
			m.State, m.Provider = MemberPlacing, types.Address{}
			m.Replaced++
		}
	}
	setCluster(ctx, &c)
	ctx.Emit("cluster_member_lost", "cluster", idStr(c.ID), "rank", strconv.FormatUint(uint64(o.Rank), 10), "provider", l.Provider.String(),
		"reason", l.CloseReason, "epoch", strconv.FormatUint(uint64(c.Epoch), 10))
}

// memberClosed handles member order o closed for reason: completed, the member is
// done (and the cluster once every member is); otherwise the cluster fails and
// every other member closes in this block.
func memberClosed(ctx *types.Context, o *Order, reason string) {
	c, ok := GetCluster(ctx, o.MemberOf)
	if !ok || int(o.Rank) >= len(c.Members) {
		return
	}
	m := &c.Members[o.Rank]
	m.UpdatedHeight = ctx.Height
	if reason == ReasonCompleted {
		m.State = MemberDone
	} else {
		m.State = MemberFailed
	}
	if c.ended() {
		setCluster(ctx, &c)
		return
	}
	if m.State == MemberDone {
		done := true
		for _, x := range c.Members {
			done = done && x.State == MemberDone
		}
		if !done {
			setCluster(ctx, &c)
			return
		}
		c.State, c.CloseReason, c.ClosedHeight = ClusterDone, ReasonCompleted, ctx.Height
		setCluster(ctx, &c)
		closeClusterOrder(ctx, c.ID, ReasonCompleted)
		return
	}
	// NB: marked failed first, so closing the others below does not fail it again.
	c.State, c.CloseReason, c.ClosedHeight = ClusterFailed, reason, ctx.Height
	setCluster(ctx, &c)
	ctx.Emit("cluster_failed", "cluster", idStr(c.ID), "rank", strconv.FormatUint(uint64(o.Rank), 10), "reason", reason)
	others := ReasonClusterMemberFailed
	if reason == ReasonTenantClosed {
		others = ReasonTenantClosed
	}
	closeMembers(ctx, &c, others)
	closeClusterOrder(ctx, c.ID, reason)
}

// closeMembers closes every member of c still active (its lease) or placing (its
// order) for reason.
func closeMembers(ctx *types.Context, c *ClusterLease, reason string) {
	p := GetParams(ctx)
	for _, m := range c.Members {
		mo, ok := GetOrder(ctx, m.Lease)
		if !ok {
			continue
		}
		switch mo.State {
		case OrderActive:
			_, l, err := activeLease(ctx, m.Lease)
			if err != nil {
				panic(fmt.Sprintf("market: cluster %d member %d: %v", c.ID, m.Rank, err))
			}
			closeLease(ctx, p, &mo, &l, reason, "")
		case OrderOpen:
			closeOrder(ctx, &mo, reason)
		}
	}
}

// closeClusterOrder closes cluster order id (whose members are closed), refunding
// what its escrow kept.
func closeClusterOrder(ctx *types.Context, id uint64, reason string) {
	o, ok := GetOrder(ctx, id)
	if !ok || o.State == OrderClosed {
		return
	}
	closeOrder(ctx, &o, reason)
}

// closeCluster closes placed cluster order o and all its members for reason (the
// tenant closed it).
func closeCluster(ctx *types.Context, o *Order, reason string) {
	c, ok := GetCluster(ctx, o.ID)
	if !ok {
		panic(fmt.Sprintf("market: cluster order %d is active without a cluster record", o.ID))
	}
	if !c.ended() {
		c.State, c.CloseReason, c.ClosedHeight = ClusterFailed, reason, ctx.Height
		setCluster(ctx, &c)
	}
	closeMembers(ctx, &c, reason)
	closeClusterOrder(ctx, o.ID, reason)
}

// memberFor returns cluster id's record and the member of rank whose provider is
// prov, refusing a report from anyone else or for another epoch.
func memberFor(ctx *types.Context, id uint64, rank, epoch uint32, prov types.Address) (ClusterLease, *Member, error) {
	c, ok := GetCluster(ctx, id)
	switch {
	case !ok:
		return c, nil, types.Wrapf(types.ErrNotFound, "cluster %d (a placed cluster order)", id)
	case c.ended():
		return c, nil, types.Wrapf(types.ErrLeaseClosed, "cluster %d is %s since height %d (%s)", id, c.State, c.ClosedHeight, c.CloseReason)
	case int(rank) >= len(c.Members):
		return c, nil, types.InvalidField("rank", rank, fmt.Sprintf("cluster %d has ranks 0 to %d", id, len(c.Members)-1))
	}
	m := &c.Members[rank]
	switch {
	case m.Provider != prov:
		return c, nil, types.Wrapf(types.ErrNotMember, "rank %d of cluster %d is run by %s, not %s", rank, id, m.Provider, prov)
	case epoch != c.Epoch:
		return c, nil, types.Wrapf(types.ErrStaleEpoch, "cluster %d is in epoch %d (report was for %d)", id, c.Epoch, epoch)
	case m.State == MemberDone || m.State == MemberFailed:
		return c, nil, types.Wrapf(types.ErrLeaseClosed, "rank %d of cluster %d is %s", rank, id, m.State)
	}
	return c, m, nil
}

func memberReady(ctx *types.Context, msg *MsgMemberReady) error {
	c, m, err := memberFor(ctx, msg.Cluster, msg.Rank, msg.Epoch, msg.Provider)
	if err != nil {
		return err
	}
	if m.State == MemberRunning {
		return types.Wrapf(types.ErrAlreadyExists, "rank %d of cluster %d runs since height %d", m.Rank, c.ID, m.RunningHeight)
	}
	m.State, m.PublicKey, m.Endpoint, m.ReadyHeight, m.UpdatedHeight = MemberReady, msg.PublicKey, msg.Endpoint, ctx.Height, ctx.Height
	all := true
	for _, x := range c.Members {
		all = all && (x.State == MemberReady || x.State == MemberDone)
	}
	if all && c.State == ClusterPending {
		c.State = ClusterReady
		ctx.Emit("cluster_ready", "cluster", idStr(c.ID), "epoch", strconv.FormatUint(uint64(c.Epoch), 10))
	}
	setCluster(ctx, &c)
	ctx.Emit("cluster_member_ready", "cluster", idStr(c.ID), "rank", strconv.FormatUint(uint64(m.Rank), 10), "provider", msg.Provider.String(),
		"endpoint", msg.Endpoint, "epoch", strconv.FormatUint(uint64(c.Epoch), 10))
	return nil
}

func memberRunning(ctx *types.Context, msg *MsgMemberRunning) error {
	c, m, err := memberFor(ctx, msg.Cluster, msg.Rank, msg.Epoch, msg.Provider)
	if err != nil {
		return err
	}
	switch {
	case c.State != ClusterReady && c.State != ClusterRunning:
		var waiting []string
		for _, x := range c.Members {
			if x.State != MemberReady && x.State != MemberRunning && x.State != MemberDone {
				waiting = append(waiting, fmt.Sprintf("rank %d %s", x.Rank, x.State))
			}
		}
		return types.Wrapf(types.ErrClusterWaiting, "cluster %d is %s in epoch %d: %s", c.ID, c.State, c.Epoch, strings.Join(waiting, ", "))
	case m.State == MemberRunning:
		return types.Wrapf(types.ErrAlreadyExists, "rank %d of cluster %d runs since height %d", m.Rank, c.ID, m.RunningHeight)
	}
	o, l, err := activeLease(ctx, m.Lease)
	if err != nil {
		return err
	}
	m.State, m.RunningHeight, m.UpdatedHeight = MemberRunning, ctx.Height, ctx.Height
	all := true
	for _, x := range c.Members {
		all = all && (x.State == MemberRunning || x.State == MemberDone)
	}
	if all {
		c.State, c.RunningHeight = ClusterRunning, ctx.Height
		ctx.Emit("cluster_running", "cluster", idStr(c.ID), "epoch", strconv.FormatUint(uint64(c.Epoch), 10))
	}
	setCluster(ctx, &c)
	l.LastHeartbeat = ctx.Height
	if l.StartedHeight == 0 {
		startLease(ctx, GetParams(ctx), &o, &l)
		return nil
	}
	setLease(ctx, &l)
	return nil
}
