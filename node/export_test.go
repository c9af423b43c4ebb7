package node

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// A real node's chain, exported after a transfer, starts again as a new chain of real
// nodes from the export: its first block's header commits to the exported app hash,
// the balances, supply and validator stake are the old chain's, and it commits blocks
// signed by the same validator key.
func TestExportAndStartFromExport(t *testing.T) {
	n, res, home := StartTestNode(t, "kiln-export-test")
	c, err := client.New(n.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	// 60 s covers a node start-up and a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	devKey, _, err := kr.PrivKey(DevKeyName)
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ := kr.Add("bob")
	if _, err := c.Send(ctx, devKey, client.SignOptions{}, &bank.MsgSend{From: res.DevAddress, To: bob.Address, Amount: types.Coins{types.NewCoin("ukiln", 4242)}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Export(home, ""); !errors.Is(err, ErrHomeInUse) {
		t.Fatalf("Export of a running node's home = %v, want ErrHomeInUse", err)
	}
	oldSupply, err := c.Supply(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}

	doc, e, err := Export(home, "")
	if err != nil {
		t.Fatal(err)
	}
	if doc.ChainID != "kiln-export-test" || doc.InitialHeight != e.Height+1 || e.Height != n.App.Height() || !bytes.Equal(e.AppHash, n.App.AppHash()) {
		t.Fatalf("export: chain %s from %d, state of %d %X; the node stopped at %d %X", doc.ChainID, doc.InitialHeight, e.Height, []byte(e.AppHash), n.App.Height(), n.App.AppHash())
	}
	gen := filepath.Join(t.TempDir(), "genesis.json")
	if err := doc.SaveAs(gen); err != nil {
		t.Fatal(err)
	}
	conf, _ := LoadConfig(home)
	home2 := TempHome(t)
	if _, err := InitFromGenesis(InitFromGenesisOptions{Home: home2, Genesis: gen, BlockTime: 100 * time.Millisecond, PrivValidatorKey: conf.PrivValidatorKeyFile()}); err != nil {
		t.Fatal(err)
	}
	if _, err := InitFromGenesis(InitFromGenesisOptions{Home: home2, Genesis: gen}); err == nil {
		t.Fatal("InitFromGenesis overwrote an initialized home")
	}
	n2 := StartHome(t, home2)
	c2, err := client.New(n2.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.WaitHeight(ctx, e.Height+3); err != nil {
		t.Fatalf("the chain started from the export does not commit: %v", err)
	}
	first := e.Height + 1
	blk, err := c2.RPC.Block(ctx, &first)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blk.Block.AppHash, e.AppHash) {
		t.Fatalf("block %d of the new chain commits to app hash %X, want the exported %X", first, []byte(blk.Block.AppHash), []byte(e.AppHash))
	}
	bal, err := c2.Balances(ctx, bob.Address)
	if err != nil || len(bal) != 1 || bal[0].Amount != 4242 {
		t.Fatalf("bob on the new chain: %v, %v; want 4242ukiln", bal, err)
	}
	acct, err := c2.Accounting(ctx)
	if err != nil || !acct.Conserved {
		t.Fatalf("the new chain's books: %+v, %v", acct, err)
	}
	vals, err := c2.Validators(ctx)
	if err != nil || len(vals) != 1 || vals[0].Tokens != ValidatorStake || vals[0].Jailed {
		t.Fatalf("validators on the new chain: %+v, %v; want the old one with %d", vals, err, ValidatorStake)
	}
	if supply, err := c2.Supply(ctx); err != nil || !reflect.DeepEqual(supply, oldSupply) {
		t.Fatalf("supply on the new chain %v (%v), on the old one %v", supply, err, oldSupply)
	}
}
