package app

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/market"
)

// exportedGenesis is app_state carrying e, as `kiln export` writes it.
func exportedGenesis(t *testing.T, e ExportedState) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"exported": e})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freshApp(t *testing.T) *App {
	t.Helper()
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db, Options{CheckInvariants: true})
}

// A chain exported mid-lease and started again from the export holds the very same
// state (the same app hash, under the same chain-id) and goes on exactly as the old
// one would: fed the same blocks, both reach the same app hashes, and the lease keeps
// billing.
func TestExportedChainContinues(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("train", 1, 1))})
	h.mustExec(bid(p1, 1, 900), bid(p2, 1, 800))
	h.mustExec(start(p2, 1))
	h.block()
	e, err := Export(h.app.db)
	if err != nil {
		t.Fatal(err)
	}
	if e.Height != h.height || e.ChainID != testChain || !bytes.Equal(e.AppHash, h.app.AppHash()) {
		t.Fatalf("export of height %d %s %X; the chain is at %d %s %X", e.Height, e.ChainID, []byte(e.AppHash), h.height, testChain, h.app.AppHash())
	}

	a2 := freshApp(t)
	res, err := a2.InitChain(context.Background(), &abcitypes.RequestInitChain{ChainId: testChain, AppStateBytes: exportedGenesis(t, e),
		InitialHeight: e.Height + 1, Time: blockTime(e.Height)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.AppHash, e.AppHash) {
		t.Fatalf("InitChain from the export: app hash %X, want the exported %X", res.AppHash, []byte(e.AppHash))
	}
	if len(res.Validators) != 1 || res.Validators[0].Power != 10 {
		t.Fatalf("InitChain validators = %v, want the old chain's one validator of power 10", res.Validators)
	}
	old := h.app
	t.Cleanup(func() { h.app = old }) // NB: the harness closes h.app's db; freshApp closes a2's
	providerBefore := bank.Balance(h.ctx(), p2.addr, "ukiln")
	for k := 0; k < 3; k++ {
		raw := h.send(h.accs[0], tenant, 1234)
		h.accs[0].seq++
		h.app = old
		r1 := h.block(raw)
		h.app, h.height = a2, h.height-1
		r2 := h.block(raw)
		if !bytes.Equal(r1.AppHash, r2.AppHash) || r2.TxResults[0].Code != 0 {
			t.Fatalf("height %d: the old chain reaches %X, the exported one %X (tx code %d)", h.height, r1.AppHash, r2.AppHash, r2.TxResults[0].Code)
		}
	}
	if got := bank.Balance(h.ctx(), p2.addr, "ukiln"); got != providerBefore+3*796 {
		t.Fatalf("provider on the exported chain: %d, want %d (the lease billed 3 more blocks)", got, providerBefore+3*796)
	}
	if l := h.lease(1); l.State != market.LeaseActive {
		t.Fatalf("lease on the exported chain: %+v", l)
	}

	// A new chain-id is the new chain's: the state is the same but that key.
	a3 := freshApp(t)
	res, err = a3.InitChain(context.Background(), &abcitypes.RequestInitChain{ChainId: "kiln-2", AppStateBytes: exportedGenesis(t, e),
		InitialHeight: e.Height + 1, Time: blockTime(e.Height)})
	if err != nil || bytes.Equal(res.AppHash, e.AppHash) || a3.chainID != "kiln-2" {
		t.Fatalf("InitChain under a new chain-id: %v, app hash %X (exported %X), chain %q", err, res.AppHash, []byte(e.AppHash), a3.chainID)
	}
}

// An export that was changed, cut short, or given the wrong start height is refused,
// saying what is wrong; so is a genesis that sets anything beside it.
func TestExportedGenesisRefusals(t *testing.T) {
	h := newHarness(t, 2)
	h.block(h.send(h.accs[0], h.accs[1], 10))
	e, err := Export(h.app.db)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(e *ExportedState)) ExportedState {
		c := e
		c.Pairs = append([]ExportedPair(nil), e.Pairs...)
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name    string
		state   []byte
		initial int64
		want    string
	}{
		{"a changed balance", exportedGenesis(t, edit(func(c *ExportedState) {
			p := c.Pairs[len(c.Pairs)/2]
			c.Pairs[len(c.Pairs)/2] = ExportedPair{Key: p.Key, Value: append(bytes.Clone(p.Value), 1)}
		})), e.Height + 1, "not to the app hash"},
		{"a pair left out", exportedGenesis(t, edit(func(c *ExportedState) { c.Pairs = c.Pairs[1:] })), e.Height + 1, "not to the app hash"},
		{"pairs out of order", exportedGenesis(t, edit(func(c *ExportedState) { c.Pairs[0], c.Pairs[1] = c.Pairs[1], c.Pairs[0] })), e.Height + 1, "not after"},
		{"a bookkeeping key", exportedGenesis(t, edit(func(c *ExportedState) {
			c.Pairs = append([]ExportedPair{{Key: store.MetaPrefix, Value: []byte{1}}}, c.Pairs...)
		})), e.Height + 1, "bookkeeping"},
		{"the wrong initial height", exportedGenesis(t, e), 1, "continues at height"},
		{"params beside it", []byte(strings.Replace(string(exportedGenesis(t, e)), `{"exported"`, `{"params":{},"exported"`, 1)), e.Height + 1, `"params" beside`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := freshApp(t).InitChain(context.Background(), &abcitypes.RequestInitChain{ChainId: testChain, AppStateBytes: tc.state, InitialHeight: tc.initial, Time: blockTime(e.Height)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("InitChain = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
