package lightclient

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cometbft/cometbft/light/provider"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	"github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/node"
)

// forger serves the real node's light blocks, but its own version of one height.
type forger struct {
	provider.Provider
	at    int64
	forge func(t *testing.T, lb *types.LightBlock)
	t     *testing.T
}

func (f forger) LightBlock(ctx context.Context, h int64) (*types.LightBlock, error) {
	lb, err := f.Provider.LightBlock(ctx, h)
	if err != nil || lb.Height != f.at {
		return lb, err
	}
	pb, err := lb.ToProto()
	if err != nil {
		return nil, err
	}
	c, err := types.LightBlockFromProto(pb)
	if err != nil {
		return nil, err
	}
	f.forge(f.t, c)
	return c, nil
}

// startNode runs a real single-validator node with 100 ms blocks until height 8.
func startNode(t *testing.T) (*client.Client, string) {
	t.Helper()
	n, res, _ := node.StartTestNode(t, "kiln-light-test")
	c, err := client.New(n.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	// 30 s covers a few 100 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 8); err != nil {
		t.Fatal(err)
	}
	return c, res.ChainID
}

// Headers from a real node verify from a trusted one, skipping and sequentially; a
// header with a forged app hash, a forged validator set (self-consistent, signed by
// its own key) or a broken signature is refused, as is a trusted hash the node does
// not have.
func TestLightClientVerifiesAndRefusesForgeries(t *testing.T) {
	c, chainID := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	trust := int64(2)
	blk, err := c.RPC.Block(ctx, &trust)
	if err != nil {
		t.Fatal(err)
	}
	target := int64(7)
	want, err := c.RPC.Block(ctx, &target)
	if err != nil {
		t.Fatal(err)
	}
	real, err := httpProvider(chainID, c.RPC.Remote())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{ChainID: chainID, TrustHeight: trust, TrustHash: blk.BlockID.Hash, Height: target}

	for _, seq := range []bool{false, true} {
		o := o
		o.Sequential = seq
		res, err := VerifyWith(ctx, o, real, nil)
		if err != nil || !res.Verified || res.Height != target || res.Hash != want.BlockID.Hash.String() || res.AppHash != want.Block.AppHash.String() {
			t.Fatalf("sequential=%v: %+v, %v; want header %d %s with app hash %s", seq, res, err, target, want.BlockID.Hash, want.Block.AppHash)
		}
	}
	latest := o
	latest.Height = 0
	if res, err := VerifyWith(ctx, latest, real, nil); err != nil || res.Height < target {
		t.Fatalf("latest: %+v, %v", res, err)
	}

	fakeKey := types.NewMockPV()
	for _, tc := range []struct {
		name  string
		forge func(t *testing.T, lb *types.LightBlock)
	}{
		{"forged app hash", func(_ *testing.T, lb *types.LightBlock) { lb.AppHash = bytes.Repeat([]byte{0xab}, 32) }},
		{"broken signature", func(_ *testing.T, lb *types.LightBlock) { lb.Commit.Signatures[0].Signature[0] ^= 1 }},
		{"forged validator set", func(t *testing.T, lb *types.LightBlock) {
			pub, _ := fakeKey.GetPubKey()
			vals := types.NewValidatorSet([]*types.Validator{types.NewValidator(pub, 10)})
			lb.ValidatorSet, lb.ValidatorsHash, lb.NextValidatorsHash = vals, vals.Hash(), vals.Hash()
			id := types.BlockID{Hash: lb.Header.Hash(), PartSetHeader: lb.Commit.BlockID.PartSetHeader}
			v, err := types.MakeVote(fakeKey, chainID, 0, lb.Height, lb.Commit.Round, cmtproto.PrecommitType, id, lb.Time.Add(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			lb.Commit = &types.Commit{Height: lb.Height, Round: lb.Commit.Round, BlockID: id, Signatures: []types.CommitSig{v.CommitSig()}}
			if err := lb.ValidateBasic(chainID); err != nil {
				t.Fatalf("the forgery is not even self-consistent: %v", err)
			}
		}},
	} {
		for _, seq := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s sequential=%v", tc.name, seq), func(t *testing.T) {
				o := o
				o.Sequential = seq
				f := forger{Provider: real, at: target, forge: tc.forge, t: t}
				// The forger is primary; the real node a witness, then the forger alone.
				for _, w := range [][]provider.Provider{{real}, nil} {
					res, err := VerifyWith(ctx, o, f, w)
					if err == nil {
						t.Fatalf("sequential=%v, %d witnesses: the forged header was accepted: %+v", seq, len(w), res)
					}
				}
			})
		}
	}

	bad := o
	bad.TrustHash = bytes.Repeat([]byte{1}, 32)
	if _, err := VerifyWith(ctx, bad, real, nil); err == nil || !strings.Contains(err.Error(), "trust header") {
		t.Fatalf("an unknown trusted hash: %v, want a refusal", err)
	}
	for _, o := range []Options{
		{ChainID: chainID, TrustHeight: 0, TrustHash: blk.BlockID.Hash},
		{ChainID: chainID, TrustHeight: 2, TrustHash: []byte{1, 2}},
		{ChainID: chainID, TrustHeight: 5, TrustHash: blk.BlockID.Hash, Height: 3},
		{TrustHeight: 2, TrustHash: blk.BlockID.Hash},
	} {
		if _, err := VerifyWith(ctx, o, real, nil); err == nil {
			t.Fatalf("options %+v accepted", o)
		}
	}
}
