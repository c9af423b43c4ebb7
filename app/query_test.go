package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
)

// Queries and Info run beside Commit (CometBFT gives them their own ABCI connection) and
// must each see one committed height whole: its height, app hash, sequences and
// balances all from the same block, never some from the block being committed.
func TestQueriesSeeOneHeightWhileCommitting(t *testing.T) {
	blocks := 300
	if testing.Short() {
		blocks = 100
	}
	h := newHarness(t, 2)
	a, b := h.accs[0], h.accs[1]
	// Height H0+i has seen i transfers of 1ukiln from a to b: a's sequence is i and b's
	// balance b0+i (b never proposes, so fees never reach it).
	h0 := h.height
	b0 := bank.Balance(h.ctx(), b.addr, "ukiln")
	var hashes sync.Map // height -> app hash, stored before that height commits
	hashes.Store(h.height, bytes.Clone(h.app.AppHash()))

	var done atomic.Bool
	var queries atomic.Int64
	errs := make(chan error, 16)
	query := func(path string, out any) int64 {
		res, _ := h.app.Query(context.Background(), &abcitypes.RequestQuery{Path: path})
		if res.Code != 0 {
			errs <- fmt.Errorf("Query(%s) = %d %s", path, res.Code, res.Log)
			return -1
		}
		if err := json.Unmarshal(res.Value, out); err != nil {
			errs <- fmt.Errorf("Query(%s): %v", path, err)
			return -1
		}
		queries.Add(1)
		return res.Height
	}
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				var acc auth.Account
				if ht := query("/auth/account/"+a.addr.String(), &acc); ht >= h0 && acc.Sequence != uint64(ht-h0) {
					errs <- fmt.Errorf("/auth/account at height %d: sequence %d, want %d", ht, acc.Sequence, ht-h0)
					return
				}
				var bal struct{ Balances types.Coins }
				if ht := query("/bank/balances/"+b.addr.String(), &bal); ht >= h0 && (len(bal.Balances) == 0 || bal.Balances[0].Amount != b0+uint64(ht-h0)) {
					errs <- fmt.Errorf("/bank/balances at height %d: %v, want %d", ht, bal.Balances, b0+uint64(ht-h0))
					return
				}
				info, _ := h.app.Info(context.Background(), &abcitypes.RequestInfo{})
				if want, ok := hashes.Load(info.LastBlockHeight); !ok || !bytes.Equal(info.LastBlockAppHash, want.([]byte)) {
					errs <- fmt.Errorf("Info at height %d: app hash %x, want %x", info.LastBlockHeight, info.LastBlockAppHash, want)
					return
				}
				var st struct {
					Height  int64  `json:"height"`
					AppHash []byte `json:"app_hash"`
				}
				if query("/app/status", &st) >= 0 {
					if want, ok := hashes.Load(st.Height); !ok || !bytes.Equal(st.AppHash, want.([]byte)) {
						errs <- fmt.Errorf("/app/status at height %d: app hash %x, want %x", st.Height, st.AppHash, want)
						return
					}
				}
			}
		}()
	}
	for i := 0; i < blocks && len(errs) == 0; i++ {
		raw := h.send(a, b, 1)
		a.seq++
		h.height++
		res, err := h.app.FinalizeBlock(context.Background(), h.finalizeReq(h.height, raw))
		if err != nil || res.TxResults[0].Code != 0 {
			t.Fatalf("block %d: %v %v", h.height, err, res.TxResults)
		}
		hashes.Store(h.height, res.AppHash)
		if _, err := h.app.Commit(context.Background(), &abcitypes.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d queries beside %d commits", queries.Load(), blocks)
}
