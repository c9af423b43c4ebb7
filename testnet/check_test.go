package testnet

import (
	"fmt"
	"testing"
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
