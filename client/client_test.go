package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/mempool"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// Sending the same signed bytes twice to a real node: the second answer is CometBFT's
// mempool cache error, which the client reports as the chain's own refusal of a used
// sequence (code 7), naming the height of the first copy; nothing is applied twice.
func TestRebroadcastIsReplayRefusal(t *testing.T) {
	home := node.TempHome(t)
	res, err := node.Init(node.InitOptions{Home: home, ChainID: "client-test", BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	node.UseFreePorts(conf)
	n, err := node.Start(conf, node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	c, err := client.New(n.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	// 30 s covers node start-up and a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 1); err != nil {
		t.Fatal(err)
	}
	kr, _ := keyring.Open(home, keyring.BackendTest, nil)
	key, _, err := kr.PrivKey(node.DevKeyName)
	if err != nil {
		t.Fatal(err)
	}
	to := types.Address{9}
	raw, err := c.SignTx(ctx, key, client.SignOptions{}, &bank.MsgSend{From: res.DevAddress, To: to, Amount: types.Coins{types.NewCoin("ukiln", 5)}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.BroadcastCommit(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.BroadcastCommit(ctx, raw)
	var te *client.TxError
	if !errors.As(err, &te) || te.Code != types.CodeSequenceReplayed || !errors.Is(err, types.ErrSequenceReplayed) || again.TxHash != first.TxHash {
		t.Fatalf("BroadcastCommit of the same bytes again = %+v, %v; want a code-7 *TxError for %s", again, err, first.TxHash)
	}
	for _, want := range []string{"sequence already used", first.TxHash, "committed at height", mempool.ErrTxInCache.Error()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if bal, err := c.Balances(ctx, to); err != nil || bal.String() != "5ukiln" {
		t.Fatalf("balance after a transfer sent twice = %v, %v; want 5ukiln", bal, err)
	}
}
