package market

import (
	"errors"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/registry"
)

// A reclaimable lease: its provider may reclaim it with at least the order's window
// of notice, never less, never on a lease that is not reclaimable, never twice; the
// lease runs until the deadline, then closes reclaimed, paid for what ran; an
// auto_redeploy order is placed again with another provider, otherwise refunded.
func TestReclaim(t *testing.T) {
	for _, redeploy := range []bool{false, true} {
		t.Run(map[bool]string{false: "refund", true: "auto_redeploy"}[redeploy], func(t *testing.T) {
			e := newEnv(t)
			a := e.provider("a", "eu-west", 64, nil)
			b := e.provider("b", "eu-west", 64, nil)
			g := Group{Name: "main", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi}
			place := func(window uint64) uint64 {
				id := uint64(len(Orders(e.ctx, OrderFilter{})) + 1)
				e.must(&MsgCreateOrder{Owner: e.tenant, Kind: KindService, Groups: []Group{g}, MaxPrice: 10, Deposit: types.NewCoin(types.NativeDenom, 100_000),
					AutoRedeploy: redeploy, ReclaimWindowSeconds: window})
				e.next()
				e.must(&MsgCreateBid{Provider: a, OrderID: id, Price: 5})
				e.next()
				e.must(&MsgStartLease{Provider: a, LeaseID: id})
				return id
			}
			plain := place(0)
			id := place(30)
			for _, tt := range []struct {
				m    *MsgReclaimLease
				want error
			}{
				{&MsgReclaimLease{Provider: a, LeaseID: plain, Reason: "maintenance", NoticeSeconds: 60}, types.ErrReclaimRefused},
				{&MsgReclaimLease{Provider: a, LeaseID: id, Reason: "maintenance", NoticeSeconds: 29}, types.ErrReclaimRefused},
				{&MsgReclaimLease{Provider: b, LeaseID: id, Reason: "maintenance", NoticeSeconds: 60}, types.ErrUnauthorized},
				{&MsgReclaimLease{Provider: a, LeaseID: id, Reason: "", NoticeSeconds: 60}, types.ErrInvalidMsg},
			} {
				if err := e.do(tt.m); !errors.Is(err, tt.want) {
					t.Fatalf("%+v: %v, want %v", tt.m, err, tt.want)
				}
			}
			e.must(&MsgReclaimLease{Provider: a, LeaseID: id, Reason: "owner needs the GPUs back", NoticeSeconds: 30})
			deadline := e.ctx.Time.Unix() + 30
			if err := e.do(&MsgReclaimLease{Provider: a, LeaseID: id, Reason: "again", NoticeSeconds: 60}); !errors.Is(err, types.ErrReclaimRefused) {
				t.Fatalf("second reclaim: %v", err)
			}
			l, _ := GetLease(e.ctx, id)
			if l.State != LeaseActive || l.Reclaim == nil || l.Reclaim.State != LeaseReclaiming || l.Reclaim.Deadline != deadline {
				t.Fatalf("lease being reclaimed = %+v / %+v", l, l.Reclaim)
			}
			for e.ctx.Time.Unix() < deadline {
				e.must(&MsgHeartbeat{Provider: a, LeaseID: id})
				e.next()
				if l, _ := GetLease(e.ctx, id); l.State != LeaseActive && e.ctx.Time.Unix() <= deadline {
					t.Fatalf("lease closed at %d, before its deadline %d", e.ctx.Time.Unix()-1, deadline)
				}
			}
			e.next()
			l, _ = GetLease(e.ctx, id)
			if l.Attempt != 1 || l.State != LeaseClosed || l.CloseReason != ReasonReclaimed {
				t.Fatalf("after the deadline: %+v", l)
			}
			o, _ := GetOrder(e.ctx, id)
			if redeploy {
				if o.State != OrderOpen || len(o.Excluded) != 1 || o.Excluded[0] != a {
					t.Fatalf("auto_redeploy order after the reclaim = %s, excluded %v", o.State, o.Excluded)
				}
				e.must(&MsgCreateBid{Provider: b, OrderID: id, Price: 5})
				e.next()
				if l, _ := GetLease(e.ctx, id); l.Provider != b || l.State != LeaseActive {
					t.Fatalf("redeployed lease = %+v", l)
				}
				return
			}
			if o.State != OrderClosed || o.CloseReason != ReasonReclaimed {
				t.Fatalf("order after the reclaim = %s/%s", o.State, o.CloseReason)
			}
			// Paid for every block it ran, from the one after it started through the
			// deadline's; the rest refunded.
			acct, _ := escrow.Get(e.ctx, id)
			if ran := uint64(l.ClosedHeight - l.StartedHeight); acct.Paid+acct.Fees != ran*5 || acct.Refunded != 100_000-ran*5 {
				t.Fatalf("escrow after the reclaim = %+v; want %d blocks at 5 paid, the rest refunded", acct, ran)
			}
		})
	}
}

func FuzzDecodeReclaimLease(f *testing.F) {
	f.Add(encode(&MsgReclaimLease{Provider: types.Address{1}, LeaseID: 7, Reason: "maintenance", NoticeSeconds: 86400}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeReclaimLease, b) })
}
