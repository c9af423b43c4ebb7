package testnet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
)

// The replay counts each distinct tx once: a generator retry that re-signs the same
// sequence and amount broadcasts the same bytes, and the chain applies them once.
func TestReplayCountsEachTxOnce(t *testing.T) {
	h := func(i int) string { return fmt.Sprintf("%064X", i) }
	tests := []struct {
		name    string
		recs    []rec
		applied map[string]int
		want    []uint64
		res     Result
	}{{
		name:    "one applied transfer",
		recs:    []rec{{hash: h(1), from: 0, to: 1, amount: 5, fee: 600, acked: true}},
		applied: map[string]int{h(1): 1},
		want:    []uint64{funding - 605, funding + 5},
		res:     Result{TxsSent: 1, TxsAcked: 1, TxsApplied: 1},
	}, {
		name: "the same bytes broadcast three times, applied once",
		recs: []rec{
			{hash: h(1), from: 0, to: 1, amount: 5, fee: 600},
			{hash: h(1), from: 0, to: 1, amount: 5, fee: 600},
			{hash: h(1), from: 0, to: 1, amount: 5, fee: 600, acked: true},
		},
		applied: map[string]int{h(1): 1},
		want:    []uint64{funding - 605, funding + 5},
		res:     Result{TxsSent: 1, TxsAcked: 1, TxsApplied: 1, TxsRebroadcast: 2},
	}, {
		name: "a failed tx and a lost acknowledged one",
		recs: []rec{
			{hash: h(1), from: 1, to: 0, amount: 7, fee: 600},
			{hash: h(2), from: 1, to: 0, amount: 8, fee: 600, acked: true},
		},
		applied: map[string]int{},
		want:    []uint64{funding, funding},
		res:     Result{TxsSent: 2, TxsAcked: 1, TxsLost: 1},
	}, {
		name:    "applied twice",
		recs:    []rec{{hash: h(3), from: 0, to: 1, amount: 1, fee: 10, acked: true}},
		applied: map[string]int{h(3): 2},
		want:    []uint64{funding - 11, funding + 1},
		res:     Result{TxsSent: 1, TxsAcked: 1, TxsApplied: 1, TxsAppliedTwice: 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res Result
			got := replay(tt.recs, tt.applied, 2, &res)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("balances %v, want %v", got, tt.want)
			}
			if fmt.Sprintf("%+v", res) != fmt.Sprintf("%+v", tt.res) {
				t.Errorf("result %+v, want %+v", res, tt.res)
			}
		})
	}
}

// judgeLease: a lease pays its price for each block from its start to its close and
// never after; one its tenant closed pays exactly those blocks.
func TestJudgeLease(t *testing.T) {
	open := market.Order{State: market.OrderOpen}
	closedOrder := market.Order{State: market.OrderClosed}
	paid := func(spent uint64) escrow.EscrowAccount {
		return escrow.EscrowAccount{Deposited: 100_000, Refunded: 100_000 - spent}
	}
	running := func(spent uint64) escrow.EscrowAccount {
		return escrow.EscrowAccount{Deposited: 100_000, Balance: 100_000 - spent}
	}
	tenantClosed := market.Lease{State: market.LeaseClosed, Price: 1000, StartedHeight: 10, ClosedHeight: 18, CloseReason: market.ReasonTenantClosed}
	unresponsive := market.Lease{State: market.LeaseClosed, Price: 1000, StartedHeight: 10, ClosedHeight: 18, CloseReason: market.ReasonProviderUnresponsive}
	active := market.Lease{State: market.LeaseActive, Price: 1000, StartedHeight: 10}
	tests := []struct {
		name     string
		o        market.Order
		acct     escrow.EscrowAccount
		l        market.Lease
		leased   bool
		overpaid bool
		problem  string // a part of it; "" for none
	}{
		{"closed by the tenant, 8 blocks paid", closedOrder, paid(8000), tenantClosed, true, false, ""},
		{"closed by the tenant, paid a block past the close", closedOrder, paid(9000), tenantClosed, true, true, "paid past its close"},
		{"closed by the tenant, a block short", closedOrder, paid(7000), tenantClosed, true, false, "want 8 blocks"},
		{"closed unresponsive, 7 blocks paid", closedOrder, paid(7000), unresponsive, true, false, ""},
		{"closed, escrow not emptied", closedOrder, escrow.EscrowAccount{Deposited: 100_000, Balance: 5, Refunded: 100_000 - 7000 - 5}, unresponsive, true, false, "still holds 5"},
		{"running, 20 blocks at height 30", open, running(20_000), active, true, false, ""},
		{"running, paid ahead of the height", open, running(21_000), active, true, true, "paid past its close"},
		{"never started, paid", closedOrder, paid(1000), market.Lease{State: market.LeaseClosed, Price: 1000, ClosedHeight: 18, CloseReason: market.ReasonTenantClosed}, true, true, "paid past its close"},
		{"no lease, nothing spent", closedOrder, paid(0), market.Lease{}, false, false, ""},
		{"no lease, spent", closedOrder, paid(10), market.Lease{}, false, false, "never had a lease"},
		{"no lease, closed, escrow not emptied", closedOrder, escrow.EscrowAccount{Deposited: 100, Balance: 100}, market.Lease{}, false, false, "still holds 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leased, _, overpaid, problem := judgeLease(7, tt.o, tt.acct, tt.l, tt.leased, 30)
			if leased != tt.leased || overpaid != tt.overpaid {
				t.Errorf("leased %v, overpaid %v; want %v, %v", leased, overpaid, tt.leased, tt.overpaid)
			}
			if (tt.problem == "") != (problem == "") || !strings.Contains(problem, tt.problem) {
				t.Errorf("problem %q, want one with %q", problem, tt.problem)
			}
		})
	}
}
