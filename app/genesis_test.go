package app

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
)

// Of several invalid parameter sets, genesis reports the same one (the first module by
// name) on every run: which is named must not depend on map iteration order.
func TestGenesisReportsInvalidParamsInModuleOrder(t *testing.T) {
	g := DefaultGenesis()
	g.Params.Staking.MaxValidators = 0
	g.Params.Market.BidWindowBlocks = 0
	g.Params.Escrow.ProtocolFeeBps = 20_000
	g.Params.Bank.FeeProposerBps = 20_000
	gb, _ := json.Marshal(g)
	const want = "genesis params: bank params: fee_proposer_bps: must be <= 10000 (got 20000)"
	for run := 0; run < 30; run++ {
		db, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(db, Options{}).InitChain(context.Background(), &abcitypes.RequestInitChain{ChainId: testChain, AppStateBytes: gb, InitialHeight: 1})
		db.Close()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("run %d: InitChain = %v, want %q", run, err, want)
		}
	}
}
