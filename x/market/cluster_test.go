package market

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/registry"
)

// clusterOrder places a cluster order of members members with gpus H100s each and
// returns its ID.
func (e *env) clusterOrder(members, gpus uint32, policy string, sameRegion bool, maxPrice uint64) uint64 {
	e.t.Helper()
	id := e.nextOrderID()
	e.must(e.clusterMsg(members, gpus, policy, sameRegion, maxPrice))
	return id
}

func (e *env) clusterMsg(members, gpus uint32, policy string, sameRegion bool, maxPrice uint64) *MsgCreateOrder {
	g := Group{Name: "worker", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi, GPU: GPURequest{Units: gpus, Models: []GPUFilter{{Model: "h100"}}}}
	return &MsgCreateOrder{Owner: e.tenant, Kind: KindBatch, Groups: []Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, maxPrice*1000),
		Cluster: &Cluster{Members: members, GPUsPerMember: gpus, SameRegion: sameRegion, OnMemberFailure: policy}}
}

func (e *env) nextOrderID() uint64 {
	var id uint64 = 1
	if v, ok := e.ctx.Store.Get(orderSeqKey); ok {
		id = uint64(v[7]) | uint64(v[6])<<8 | uint64(v[5])<<16 | uint64(v[4])<<24 + 1
	}
	return id
}

func (e *env) cluster(id uint64) ClusterLease {
	e.t.Helper()
	c, ok := GetCluster(e.ctx, id)
	if !ok {
		e.t.Fatalf("cluster %d not placed; order: %+v", id, mustOrder(e, id))
	}
	return c
}

func mustOrder(e *env, id uint64) Order {
	o, _ := GetOrder(e.ctx, id)
	return o
}

func key(i int) string {
	var k [32]byte
	k[0] = byte(i + 1)
	return base64.StdEncoding.EncodeToString(k[:])
}

// readyAll reports every member of cluster id ready and then running, as the
// members' providers do.
func (e *env) readyAll(id uint64) {
	e.t.Helper()
	c := e.cluster(id)
	for i, m := range c.Members {
		e.must(&MsgMemberReady{Provider: m.Provider, Cluster: id, Rank: m.Rank, Epoch: c.Epoch, PublicKey: key(i), Endpoint: fmt.Sprintf("127.0.0.1:%d", 51820+i)})
	}
	for _, m := range c.Members {
		e.must(&MsgMemberRunning{Provider: m.Provider, Cluster: id, Rank: m.Rank, Epoch: c.Epoch})
	}
}

// A 3-member cluster on three providers is placed in one block, each member on its
// own lease and escrow, paid per block once running; it completes when every
// member completes, and the tenant gets back all it did not pay.
func TestClusterPlacedTogetherAndPaidPerMember(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu", 16, map[string]uint32{"h100": 1})
	b := e.provider("b", "eu", 16, map[string]uint32{"h100": 1})
	c := e.provider("c", "us", 16, map[string]uint32{"h100": 1})
	before := bank.Balance(e.ctx, e.tenant, types.NativeDenom)
	id := e.clusterOrder(3, 1, FailRefund, false, 3000)
	e.next()
	for i, p := range []types.Address{a, b, c} {
		e.must(&MsgCreateBid{Provider: p, OrderID: id, Price: 900 + uint64(i)*10, Members: 1})
	}
	if len(BidsOf(e.ctx, id)) != 3 {
		t.Fatalf("bids = %d, want 3", len(BidsOf(e.ctx, id)))
	}
	e.next() // the window closes: all three placed
	cl := e.cluster(id)
	if len(cl.Members) != 3 || cl.State != ClusterPending {
		t.Fatalf("cluster = %+v", cl)
	}
	if o := mustOrder(e, id); o.State != OrderActive || len(BidsOf(e.ctx, id)) != 0 {
		t.Fatalf("cluster order %s with %d bids, want active with none", o.State, len(BidsOf(e.ctx, id)))
	}
	provs := map[types.Address]bool{}
	for i, m := range cl.Members {
		l, ok := GetLease(e.ctx, m.Lease)
		if !ok || l.State != LeaseActive || l.Provider != m.Provider || m.Rank != uint32(i) {
			t.Fatalf("member %d: lease %+v", i, l)
		}
		mo := mustOrder(e, m.Lease)
		if mo.MemberOf != id || mo.Rank != uint32(i) || mo.Parent != id {
			t.Fatalf("member order %+v", mo)
		}
		acct, _ := escrow.Get(e.ctx, m.Lease)
		if acct.Balance == 0 {
			t.Fatalf("member %d has no escrow", i)
		}
		provs[m.Provider] = true
	}
	if len(provs) != 3 {
		t.Fatalf("members on %d providers, want 3", len(provs))
	}
	// Running before every member is ready is refused, saying who is not.
	err := e.do(&MsgMemberRunning{Provider: cl.Members[0].Provider, Cluster: id, Rank: 0})
	if !errors.Is(err, types.ErrClusterWaiting) || !strings.Contains(err.Error(), "rank 1 pending") {
		t.Fatalf("running before ready: %v", err)
	}
	// Another provider's report, or one for another epoch, is refused.
	if err := e.do(&MsgMemberReady{Provider: cl.Members[1].Provider, Cluster: id, Rank: 0, PublicKey: key(0), Endpoint: "127.0.0.1:1"}); !errors.Is(err, types.ErrNotMember) {
		t.Fatalf("ready by another provider: %v", err)
	}
	if err := e.do(&MsgMemberReady{Provider: cl.Members[0].Provider, Cluster: id, Rank: 0, Epoch: 1, PublicKey: key(0), Endpoint: "127.0.0.1:1"}); !errors.Is(err, types.ErrStaleEpoch) {
		t.Fatalf("ready for epoch 1: %v", err)
	}
	if err := e.do(&MsgStartLease{Provider: cl.Members[0].Provider, LeaseID: cl.Members[0].Lease}); err == nil || !strings.Contains(err.Error(), "member-running") {
		t.Fatalf("start-lease on a member: %v", err)
	}
	e.readyAll(id)
	cl = e.cluster(id)
	if cl.State != ClusterRunning || cl.RunningHeight != e.ctx.Height {
		t.Fatalf("cluster after all running = %s at %d", cl.State, cl.RunningHeight)
	}
	for i := 0; i < 5; i++ {
		e.next()
	}
	for _, m := range cl.Members {
		e.must(&MsgCompleteLease{Provider: m.Provider, LeaseID: m.Lease, OutputHash: []byte{1}})
	}
	cl = e.cluster(id)
	if cl.State != ClusterDone || mustOrder(e, id).State != OrderClosed || mustOrder(e, id).CloseReason != ReasonCompleted {
		t.Fatalf("cluster %s, order %+v; want done and closed completed", cl.State, mustOrder(e, id))
	}
	e.next()
	var paid, fees uint64
	for _, m := range cl.Members {
		acct, _ := escrow.Get(e.ctx, m.Lease)
		if acct.State != escrow.StateClosed {
			t.Fatalf("member %d escrow still %s", m.Rank, acct.State)
		}
		paid += acct.Paid
		fees += acct.Fees
	}
	if paid == 0 {
		t.Fatal("no member was paid")
	}
	after := bank.Balance(e.ctx, e.tenant, types.NativeDenom)
	if before-after != paid+fees {
		t.Fatalf("tenant spent %d, members were paid %d + %d fees", before-after, paid, fees)
	}
}

// A cluster order that only two providers can serve is not half-placed: no member
// is leased, the order says why, and at its expiry it closes, every bid released
// and the whole deposit refunded.
func TestClusterNotHalfPlaced(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu", 16, map[string]uint32{"h100": 1})
	b := e.provider("b", "eu", 16, map[string]uint32{"h100": 1})
	before := bank.Balance(e.ctx, e.tenant, types.NativeDenom)
	id := e.clusterOrder(3, 1, FailRefund, false, 3000)
	e.next()
	// NB: each has room for one member only: a bid for two is refused at once.
	if err := e.do(&MsgCreateBid{Provider: a, OrderID: id, Price: 900, Members: 2}); !errors.Is(err, types.ErrRequirementsUnmet) {
		t.Fatalf("bid for 2 members on 1 GPU: %v", err)
	}
	e.must(&MsgCreateBid{Provider: a, OrderID: id, Price: 900, Members: 1})
	e.must(&MsgCreateBid{Provider: b, OrderID: id, Price: 900, Members: 1})
	e.next()
	o := mustOrder(e, id)
	if o.State != OrderOpen || len(Leases(e.ctx, LeaseFilter{State: LeaseActive})) != 0 {
		t.Fatalf("order %s with %d leases; want open with none", o.State, len(Leases(e.ctx, LeaseFilter{State: LeaseActive})))
	}
	if want := "only 2 of 3 members can be placed now (2 providers bid for 2 members in all)"; !strings.HasPrefix(o.Unplaced, want) {
		t.Fatalf("unplaced = %q, want %q", o.Unplaced, want)
	}
	if _, ok := GetCluster(e.ctx, id); ok {
		t.Fatal("a cluster record exists for an unplaced order")
	}
	for e.ctx.Height <= o.ExpireHeight {
		e.next()
	}
	o = mustOrder(e, id)
	if o.State != OrderClosed || o.CloseReason != ReasonClusterUnplaced || len(BidsOf(e.ctx, id)) != 0 {
		t.Fatalf("after expiry: order %+v with %d bids", o, len(BidsOf(e.ctx, id)))
	}
	if after := bank.Balance(e.ctx, e.tenant, types.NativeDenom); after != before {
		t.Fatalf("tenant has %d, had %d: the deposit was not refunded whole", after, before)
	}
}

// A provider may bid for several members; the cheapest bids win, member by member.
func TestClusterBidForSeveralMembers(t *testing.T) {
	e := newEnv(t)
	big := e.provider("big", "eu", 64, map[string]uint32{"h100": 8})
	small := e.provider("small", "eu", 16, map[string]uint32{"h100": 2})
	dear := e.provider("dear", "eu", 16, map[string]uint32{"h100": 2})
	id := e.clusterOrder(4, 2, FailRefund, false, 4000)
	e.next()
	e.must(&MsgCreateBid{Provider: big, OrderID: id, Price: 800, Members: 3})
	e.must(&MsgCreateBid{Provider: small, OrderID: id, Price: 700, Members: 1})
	e.must(&MsgCreateBid{Provider: dear, OrderID: id, Price: 999, Members: 1})
	if err := e.do(&MsgCreateBid{Provider: e.provider("greedy", "eu", 16, map[string]uint32{"h100": 2}), OrderID: id, Price: 1001}); err == nil || !strings.Contains(err.Error(), "per-member cap 1000") {
		t.Fatalf("bid over the per-member cap: %v", err)
	}
	e.next()
	cl := e.cluster(id)
	got := map[types.Address]int{}
	for _, m := range cl.Members {
		got[m.Provider]++
	}
	if got[small] != 1 || got[big] != 3 || got[dear] != 0 {
		t.Fatalf("members per provider = %v", got)
	}
	if cl.Members[0].Provider != small {
		t.Fatalf("rank 0 on %s, want the cheapest bid's provider", cl.Members[0].Provider)
	}
	if u := Used(e.ctx, big); u.gpu(GPUSpec{Model: "h100", MemoryBytes: 80 * registry.Gi, Interface: "sxm"}) != 6 {
		t.Fatalf("big holds %+v, want 6 H100s for 3 members", u)
	}
}

// same_region keeps every member in one region: three members with two providers
// in eu and one in us are not placed, two are, in eu.
func TestClusterSameRegion(t *testing.T) {
	e := newEnv(t)
	eu1 := e.provider("eu1", "eu", 16, map[string]uint32{"h100": 1})
	eu2 := e.provider("eu2", "eu", 16, map[string]uint32{"h100": 1})
	us := e.provider("us", "us", 16, map[string]uint32{"h100": 1})
	three := e.clusterOrder(3, 1, FailRefund, true, 3000)
	two := e.clusterOrder(2, 1, FailRefund, true, 3000)
	e.next()
	for _, id := range []uint64{three, two} {
		for _, p := range []types.Address{us, eu1, eu2} {
			e.must(&MsgCreateBid{Provider: p, OrderID: id, Price: 500, Members: 1})
		}
	}
	e.next()
	o := mustOrder(e, three)
	if o.State != OrderOpen || !strings.Contains(o.Unplaced, "the most in one region: 2 in eu") {
		t.Fatalf("3 members, same region: %s %q", o.State, o.Unplaced)
	}
	// NB: the 3-member order was checked first and placed nothing; the 2-member one
	// then fits eu.
	cl := e.cluster(two)
	for _, m := range cl.Members {
		if m.Provider == us {
			t.Fatalf("a member landed in us: %+v", cl.Members)
		}
	}
}

// max_rtt_ms keeps providers that have not measured each other, or are too far
// apart, out of one cluster.
func TestClusterMaxRTT(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu", 16, map[string]uint32{"h100": 1})
	b := e.provider("b", "eu", 16, map[string]uint32{"h100": 1})
	c := e.provider("c", "eu", 16, map[string]uint32{"h100": 1})
	m := e.clusterMsg(2, 1, FailRefund, false, 2000)
	m.Cluster.MaxRTTMs = 5
	id := e.nextOrderID()
	e.must(m)
	e.must(&MsgRTTProbe{Provider: a, Location: PeerLocation(b), RTTMicros: 9000})
	e.must(&MsgRTTProbe{Provider: c, Location: PeerLocation(a), RTTMicros: 2000})
	e.next()
	e.must(&MsgCreateBid{Provider: a, OrderID: id, Price: 500, Members: 1})
	e.must(&MsgCreateBid{Provider: b, OrderID: id, Price: 600, Members: 1})
	e.next()
	if o := mustOrder(e, id); o.State != OrderOpen || !strings.Contains(o.Unplaced, "9.0 ms from") {
		t.Fatalf("a and b 9 ms apart: %s %q", o.State, o.Unplaced)
	}
	e.must(&MsgCreateBid{Provider: c, OrderID: id, Price: 700, Members: 1})
	e.next() // the late bid's window
	cl := e.cluster(id)
	if cl.Members[0].Provider != a || cl.Members[1].Provider != c {
		t.Fatalf("members on %s, %s; want a and c (2 ms apart)", cl.Members[0].Provider, cl.Members[1].Provider)
	}
}

// A member whose provider stops heartbeating fails the cluster per its policy.
// refund: every member closes in that block, providers paid for the blocks run, the
// rest refunded. replace: the member's order re-opens for one member, the cluster
// moves to a new epoch, and a new provider takes the rank; every member reports
// ready again before running.
func TestClusterMemberFailure(t *testing.T) {
	for _, policy := range []string{FailRefund, FailReplace} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t)
			provs := []types.Address{
				e.provider("a", "eu", 16, map[string]uint32{"h100": 1}),
				e.provider("b", "eu", 16, map[string]uint32{"h100": 1}),
				e.provider("c", "eu", 16, map[string]uint32{"h100": 1}),
			}
			spare := e.provider("spare", "eu", 16, map[string]uint32{"h100": 1})
			before := bank.Balance(e.ctx, e.tenant, types.NativeDenom)
			id := e.clusterOrder(3, 1, policy, false, 3000)
			e.next()
			for _, p := range provs {
				e.must(&MsgCreateBid{Provider: p, OrderID: id, Price: 900, Members: 1})
			}
			e.next()
			e.readyAll(id)
			cl := e.cluster(id)
			lost := cl.Members[1]
			p := GetParams(e.ctx)
			// Every provider but rank 1's heartbeats until rank 1's times out.
			for i := int64(0); i <= p.HeartbeatTimeoutBlocks; i++ {
				e.next()
				for _, m := range cl.Members {
					if m.Rank != lost.Rank {
						if err := e.do(&MsgHeartbeat{Provider: m.Provider, LeaseID: m.Lease}); err != nil && policy == FailReplace {
							t.Fatalf("heartbeat: %v", err)
						}
					}
				}
			}
			e.next()
			cl = e.cluster(id)
			if policy == FailRefund {
				if cl.State != ClusterFailed || cl.CloseReason != ReasonProviderUnresponsive {
					t.Fatalf("cluster %s (%s), want failed (provider_unresponsive)", cl.State, cl.CloseReason)
				}
				var paid, fees uint64
				for _, m := range cl.Members {
					l, _ := GetLease(e.ctx, m.Lease)
					acct, _ := escrow.Get(e.ctx, m.Lease)
					if l.State != LeaseClosed || acct.State != escrow.StateClosed {
						t.Fatalf("member %d lease %s escrow %s, want both closed", m.Rank, l.State, acct.State)
					}
					if m.Rank != lost.Rank && l.CloseReason != ReasonClusterMemberFailed {
						t.Fatalf("member %d closed %s, want %s", m.Rank, l.CloseReason, ReasonClusterMemberFailed)
					}
					if acct.Paid == 0 {
						t.Fatalf("member %d was never paid for the blocks it ran", m.Rank)
					}
					paid += acct.Paid
					fees += acct.Fees
				}
				if o := mustOrder(e, id); o.State != OrderClosed {
					t.Fatalf("cluster order %s", o.State)
				}
				if spent := before - bank.Balance(e.ctx, e.tenant, types.NativeDenom); spent != paid+fees {
					t.Fatalf("tenant spent %d, members were paid %d + %d fees", spent, paid, fees)
				}
				return
			}
			if cl.State != ClusterPlacing || cl.Epoch != 1 || cl.Members[lost.Rank].State != MemberPlacing || cl.Members[0].State != MemberPending {
				t.Fatalf("after losing rank 1: %+v", cl)
			}
			mo := mustOrder(e, lost.Lease)
			if mo.State != OrderOpen || len(mo.Excluded) != 1 || mo.Excluded[0] != lost.Provider {
				t.Fatalf("member order %+v, want open with the lost provider excluded", mo)
			}
			e.must(&MsgCreateBid{Provider: spare, OrderID: lost.Lease, Price: 800})
			e.next()
			cl = e.cluster(id)
			if cl.State != ClusterPending || cl.Members[lost.Rank].Provider != spare || cl.Members[lost.Rank].Replaced != 1 {
				t.Fatalf("after re-placing: %+v", cl)
			}
			if err := e.do(&MsgMemberReady{Provider: cl.Members[0].Provider, Cluster: id, Rank: 0, Epoch: 0, PublicKey: key(0), Endpoint: "127.0.0.1:9"}); !errors.Is(err, types.ErrStaleEpoch) {
				t.Fatalf("ready for the old epoch: %v", err)
			}
			e.readyAll(id)
			if cl = e.cluster(id); cl.State != ClusterRunning || cl.Epoch != 1 {
				t.Fatalf("after restart: %s epoch %d", cl.State, cl.Epoch)
			}
			// The tenant closes the cluster order: every member closes.
			e.must(&MsgCloseOrder{Owner: e.tenant, OrderID: id})
			for _, m := range e.cluster(id).Members {
				if l, _ := GetLease(e.ctx, m.Lease); l.State != LeaseClosed || l.CloseReason != ReasonTenantClosed {
					t.Fatalf("member %d after the tenant closed: %s %s", m.Rank, l.State, l.CloseReason)
				}
			}
			e.next()
		})
	}
}

// A replacement round that finds nobody fails the cluster as refund does.
func TestClusterReplaceFindsNobody(t *testing.T) {
	e := newEnv(t)
	a := e.provider("a", "eu", 16, map[string]uint32{"h100": 1})
	b := e.provider("b", "eu", 16, map[string]uint32{"h100": 1})
	id := e.clusterOrder(2, 1, FailReplace, false, 2000)
	e.next()
	e.must(&MsgCreateBid{Provider: a, OrderID: id, Price: 900, Members: 1})
	e.must(&MsgCreateBid{Provider: b, OrderID: id, Price: 900, Members: 1})
	e.next()
	e.readyAll(id)
	cl := e.cluster(id)
	e.must(&MsgCloseLease{Sender: cl.Members[1].Provider, LeaseID: cl.Members[1].Lease})
	// NB: provider_closed does not re-place (only a provider gone silent does): the
	// cluster fails at once.
	if got := e.cluster(id); got.State != ClusterFailed || got.CloseReason != ReasonProviderClosed {
		t.Fatalf("after a provider closed its member: %s (%s)", got.State, got.CloseReason)
	}
	e.next()
}

// Cluster orders are checked field by field, with the field named.
func TestClusterOrderValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		edit  func(m *MsgCreateOrder)
		field string
	}{
		{"one member", func(m *MsgCreateOrder) { m.Cluster.Members = 1 }, "cluster.members"},
		{"too many", func(m *MsgCreateOrder) { m.Cluster.Members = MaxClusterMembers + 1 }, "cluster.members"},
		{"no policy", func(m *MsgCreateOrder) { m.Cluster.OnMemberFailure = "" }, "cluster.on_member_failure"},
		{"gpus differ", func(m *MsgCreateOrder) { m.Cluster.GPUsPerMember = 2 }, "cluster.gpus_per_member"},
		{"count", func(m *MsgCreateOrder) { m.Groups[0].Count = 2 }, "groups[0].count"},
		{"two groups", func(m *MsgCreateOrder) {
			m.Groups = append(m.Groups, Group{Name: "x", Count: 1, CPUMilli: 1, MemoryBytes: 1})
		}, "groups"},
		{"order book", func(m *MsgCreateOrder) { m.Mode = ModeMarket }, "mode"},
		{"manual", func(m *MsgCreateOrder) { m.Manual = true }, "manual"},
		{"auto redeploy", func(m *MsgCreateOrder) { m.AutoRedeploy = true }, "auto_redeploy"},
		{"reclaimable", func(m *MsgCreateOrder) { m.ReclaimWindowSeconds = 60 }, "reclaim_window_seconds"},
		{"rtt", func(m *MsgCreateOrder) { m.Cluster.MaxRTTMs = MaxClusterRTTMs + 1 }, "cluster.max_rtt_ms"},
		{"price", func(m *MsgCreateOrder) { m.MaxPrice = 2 }, "max_price"},
	} {
		m := e.clusterMsg(3, 1, FailRefund, false, 3000)
		tc.edit(m)
		err := m.ValidateBasic()
		if err == nil || !strings.HasPrefix(err.Error(), "invalid message: "+tc.field+":") {
			t.Errorf("%s: ValidateBasic = %v, want an error on %s", tc.name, err, tc.field)
		}
	}
	if err := e.clusterMsg(3, 1, FailRefund, false, 3000).ValidateBasic(); err != nil {
		t.Fatalf("a good cluster order: %v", err)
	}
	id := e.order(ModeAuction, "", 1, "h100", 1, 1000)
	e.next()
	if err := e.do(&MsgCreateBid{Provider: e.provider("p", "eu", 8, map[string]uint32{"h100": 1}), OrderID: id, Price: 10, Members: 2}); err == nil || !strings.Contains(err.Error(), "not a cluster order") {
		t.Fatalf("members on an ordinary order: %v", err)
	}
}

// Whatever the bids, capacities and failures, a cluster order is placed whole or
// not at all, and money is conserved after every block (env.next checks supply,
// balances and every invariant).
func TestClusterPlacementProperty(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		e := newEnv(t)
		rng := rand.New(rand.NewPCG(seed, 16))
		var provs []types.Address
		for i := 0; i < 5; i++ {
			provs = append(provs, e.provider(fmt.Sprint("p", i), []string{"eu", "us"}[rng.IntN(2)], 32, map[string]uint32{"h100": uint32(1 + rng.IntN(4))}))
		}
		var clusters []uint64
		defer func() {
			st := map[string]int{}
			for _, id := range clusters {
				c, ok := GetCluster(e.ctx, id)
				if !ok {
					st["unplaced"]++
					continue
				}
				st[c.State+"/"+c.CloseReason]++
			}
			t.Logf("seed %d: clusters %v", seed, st)
		}()
		for block := 0; block < 120; block++ {
			switch rng.IntN(6) {
			case 0:
				n := uint32(2 + rng.IntN(4))
				clusters = append(clusters, e.clusterOrder(n, uint32(1+rng.IntN(2)), []string{FailRefund, FailReplace}[rng.IntN(2)], rng.IntN(3) == 0, uint64(n)*1000))
			case 1:
				if len(clusters) > 0 {
					_ = e.do(&MsgCloseOrder{Owner: e.tenant, OrderID: clusters[rng.IntN(len(clusters))]})
				}
			}
			for _, o := range Orders(e.ctx, OrderFilter{State: OrderOpen}) {
				p := provs[rng.IntN(len(provs))]
				max := uint32(1)
				if o.Cluster != nil {
					max = o.Cluster.Members
				}
				members := uint32(0)
				if o.Cluster != nil {
					members = uint32(1 + rng.IntN(int(max)))
				}
				_ = e.do(&MsgCreateBid{Provider: p, OrderID: o.ID, Price: uint64(100 + rng.IntN(900)), Members: members})
			}
			for _, id := range clusters {
				c, ok := GetCluster(e.ctx, id)
				if !ok || c.ended() {
					continue
				}
				for _, m := range c.Members {
					if m.Provider == provs[0] && block > 40 {
						continue // NB: provider p0 dies: its members time out
					}
					switch rng.IntN(10) {
					case 0: // this member's provider misses a block
					case 1:
						_ = e.do(&MsgCompleteLease{Provider: m.Provider, LeaseID: m.Lease, OutputHash: []byte{1}})
					default:
						_ = e.do(&MsgMemberReady{Provider: m.Provider, Cluster: id, Rank: m.Rank, Epoch: c.Epoch, PublicKey: key(int(m.Rank)), Endpoint: "127.0.0.1:5"})
						_ = e.do(&MsgMemberRunning{Provider: m.Provider, Cluster: id, Rank: m.Rank, Epoch: c.Epoch})
						if rng.IntN(3) > 0 {
							_ = e.do(&MsgHeartbeat{Provider: m.Provider, LeaseID: m.Lease})
						}
					}
				}
			}
			e.next()
			for _, id := range clusters {
				o := mustOrder(e, id)
				c, placed := GetCluster(e.ctx, id)
				active := 0
				for _, l := range Leases(e.ctx, LeaseFilter{State: LeaseActive}) {
					if mustOrder(e, l.ID).MemberOf == id {
						active++
					}
				}
				switch {
				case !placed && active != 0:
					t.Fatalf("seed %d: cluster order %d unplaced with %d member leases", seed, id, active)
				case placed && len(c.Members) != int(o.Cluster.Members):
					t.Fatalf("seed %d: cluster %d placed %d of %d members", seed, id, len(c.Members), o.Cluster.Members)
				case placed && c.ended() && active != 0:
					t.Fatalf("seed %d: cluster %d %s with %d member leases active", seed, id, c.State, active)
				case placed && !c.ended() && o.State != OrderActive:
					t.Fatalf("seed %d: cluster %d %s but its order is %s", seed, id, c.State, o.State)
				}
			}
		}
	}
}

func FuzzDecodeClusterMsgs(f *testing.F) {
	co := sampleOrder()
	co.Cluster = &Cluster{Members: 3, GPUsPerMember: 1, SameRegion: true, MaxRTTMs: 20, OnMemberFailure: FailReplace}
	f.Add(uint8(0), encode(co))
	f.Add(uint8(1), encode(&MsgCreateBid{Provider: types.Address{1}, OrderID: 7, Price: 5, Members: 2}))
	f.Add(uint8(2), encode(&MsgMemberReady{Provider: types.Address{1}, Cluster: 7, Rank: 2, Epoch: 1, PublicKey: key(1), Endpoint: "127.0.0.1:51820"}))
	f.Add(uint8(3), encode(&MsgMemberRunning{Provider: types.Address{1}, Cluster: 7, Rank: 2, Epoch: 1}))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		d := []func(*codec.Reader) types.Msg{DecodeCreateOrder, DecodeCreateBid, DecodeMemberReady, DecodeMemberRunning}
		roundTrip(t, d[int(which)%len(d)], b)
	})
}

// A member's key and endpoint are checked before anything runs.
func TestMemberReadyValidation(t *testing.T) {
	good := MsgMemberReady{Provider: types.Address{1}, Cluster: 7, Rank: 1, PublicKey: key(1), Endpoint: "127.0.0.1:51820"}
	if err := good.ValidateBasic(); err != nil {
		t.Fatalf("good: %v", err)
	}
	for _, tc := range []struct {
		edit  func(m *MsgMemberReady)
		field string
	}{
		{func(m *MsgMemberReady) { m.PublicKey = "AAAA" }, "public_key"},
		{func(m *MsgMemberReady) { m.PublicKey = "not base64!" }, "public_key"},
		{func(m *MsgMemberReady) { m.Endpoint = "localhost:51820" }, "endpoint"},
		{func(m *MsgMemberReady) { m.Endpoint = "127.0.0.1:0" }, "endpoint"},
		{func(m *MsgMemberReady) { m.Endpoint = "0.0.0.0:51820" }, "endpoint"},
		{func(m *MsgMemberReady) { m.Cluster = 0 }, "cluster"},
		{func(m *MsgMemberReady) { m.Rank = MaxClusterMembers }, "rank"},
	} {
		m := good
		tc.edit(&m)
		if err := m.ValidateBasic(); err == nil || !strings.HasPrefix(err.Error(), "invalid message: "+tc.field+":") {
			t.Errorf("%+v: ValidateBasic = %v, want an error on %s", m, err, tc.field)
		}
	}
}
