package app

import (
	"crypto/sha256"
	"encoding/binary"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/types"
)

// blockRandKey holds the last finalized block's randomness in state, so that CheckTx
// and queries (and a restarted node) read the last committed block's value.
var blockRandKey = []byte("app/block_rand")

// deriveBlockRand computes block req's randomness from the previous block's and what
// the block itself commits to: its height, its hash (whose header commits to the
// previous block's commit signatures, the proposer, the time and the transactions) and
// its DecidedLastCommit (the round and, per validator in order, address, power and
// vote flag). Every field is length-prefixed. types.BlockRand says what a proposer can
// bias and what the value is fit for.
func deriveBlockRand(prev types.BlockRand, req *abcitypes.RequestFinalizeBlock) types.BlockRand {
	h := sha256.New()
	u64 := func(v uint64) { h.Write(binary.BigEndian.AppendUint64(nil, v)) }
	bytes := func(b []byte) { u64(uint64(len(b))); h.Write(b) }
	h.Write([]byte("kiln/block-rand/v1"))
	h.Write(prev[:])
	u64(uint64(req.Height))
	bytes(req.Hash)
	u64(uint64(req.DecidedLastCommit.Round))
	u64(uint64(len(req.DecidedLastCommit.Votes)))
	for _, v := range req.DecidedLastCommit.Votes {
		bytes(v.Validator.Address)
		u64(uint64(v.Validator.Power))
		u64(uint64(v.BlockIdFlag))
	}
	var r types.BlockRand
	h.Sum(r[:0])
	return r
}

// genesisBlockRand seeds the chain: from the chain-id, initial height and genesis time,
// which no transaction can influence (and which everyone knows: nothing should draw
// from it before block 1 has its own).
func genesisBlockRand(req *abcitypes.RequestInitChain) types.BlockRand {
	h := sha256.New()
	h.Write([]byte("kiln/block-rand/genesis/v1"))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(req.ChainId))))
	h.Write([]byte(req.ChainId))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(req.InitialHeight)))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(req.Time.UnixNano())))
	var r types.BlockRand
	h.Sum(r[:0])
	return r
}

// storedBlockRand reads the randomness stored by the last block written to kv.
func storedBlockRand(kv interface{ Get([]byte) ([]byte, bool) }) types.BlockRand {
	var r types.BlockRand
	if v, ok := kv.Get(blockRandKey); ok {
		copy(r[:], v)
	}
	return r
}

// wire gives ctx what the app holds for every context: the modules' hooks and the
// block randomness r.
func (a *App) wire(ctx *types.Context, r types.BlockRand) *types.Context {
	ctx.Hooks = a.hooks
	ctx.BlockRand = r
	return ctx
}
