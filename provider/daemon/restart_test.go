package daemon_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// A daemon restarted while a transaction of its last run still waits in the mempool
// registers its new endpoint all the same: the chain's committed sequence is behind
// the mempool's, and the sender takes the sequence the node names and retries,
// instead of failing to start with "sequence already used".
func TestRestartWithTxInMempool(t *testing.T) {
	// NB: 2 s blocks, so that a tx broadcast just after a block is still in the
	// mempool while the restarted daemon registers (it takes well under a second).
	n := startNetBlocks(t, 2*time.Second, nil)
	stateDir := filepath.Join(t.TempDir(), "provider")
	n.startDaemon(t, stateDir).stop(t)
	// 60 s: a few 2 s blocks and a daemon start on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := n.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.c.WaitHeight(ctx, st.Height+1); err != nil {
		t.Fatal(err)
	}
	// The stopped daemon's last tx: accepted into the mempool, not yet in a block.
	raw, err := n.c.SignTx(ctx, n.provKey, client.SignOptions{}, &bank.MsgSend{From: n.prov, To: n.tenant, Amount: types.Coins{types.NewCoin(types.NativeDenom, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.c.RPC.BroadcastTxSync(ctx, raw)
	if err != nil || res.Code != 0 {
		t.Fatalf("broadcast the pending tx: %+v, %v", res, err)
	}
	d := n.startDaemon(t, stateDir)
	var prov registry.Provider
	if err := n.c.QueryJSON(ctx, client.PathProvider(n.prov), &prov); err != nil {
		t.Fatal(err)
	}
	if prov.Endpoint != d.Endpoint() {
		t.Fatalf("registered endpoint %q, want the restarted daemon's %q", prov.Endpoint, d.Endpoint())
	}
	// NB: both txs in one block show that the registration was sent while the other
	// was pending: the case where the committed sequence is the wrong one.
	tx, err := n.c.RPC.Tx(ctx, res.Hash, false)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Height != prov.UpdatedHeight {
		t.Fatalf("the pending tx landed at height %d, the registration at %d: the restart did not overlap it (blocks too fast for this machine?)", tx.Height, prov.UpdatedHeight)
	}
}
