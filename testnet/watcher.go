package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	cmtcons "github.com/cometbft/cometbft/proto/tendermint/consensus"
	cmttypes "github.com/cometbft/cometbft/types"
)

// The watcher: what a fisherman does on a real network. A validator that runs two
// instances with one key signs two different votes at one height, round and step;
// an honest validator that receives both reports the evidence itself, but CometBFT
// passes on only one vote per validator and step to a peer that already holds one,
// so the second rarely reaches anyone while the height is live (a lagging twin even
// drops its own vote when the other instance's arrives first). The watcher reads
// both signed votes from the twin's consensus write-ahead log (it records every vote
// it signs and every vote it receives) and broadcasts them as duplicate-vote
// evidence to a validator's RPC, as anyone may. From there on it is CometBFT's: the
// evidence pool verifies the signatures against the validator set of that height,
// gossips the evidence, a proposer puts it in a block, and the app receives it as
// ABCI misbehavior.

// walMaxRecord bounds one WAL record: CometBFT's own limit is a block part or a vote
// with its extension, well under 1 MiB.
const walMaxRecord = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// findDoubleSign reads the consensus WAL at path and returns the first two votes
// signed by addr at one height, round and type for different block IDs. ok is false
// when there are none (yet); a record still being written ends the read.
func findDoubleSign(path string, addr []byte) (a, b *cmttypes.Vote, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, false, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	type key struct {
		h int64
		r int32
		t int32
	}
	seen := map[key]*cmttypes.Vote{}
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, nil, false, nil
		}
		n := binary.BigEndian.Uint32(hdr[4:])
		if n > walMaxRecord {
			return nil, nil, false, fmt.Errorf("%s: a record of %d bytes (most is %d): not a consensus WAL", path, n, walMaxRecord)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil || crc32.Checksum(data, castagnoli) != binary.BigEndian.Uint32(hdr[:4]) {
			return nil, nil, false, nil // the tail is being written
		}
		var m cmtcons.TimedWALMessage
		if err := m.Unmarshal(data); err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", path, err)
		}
		mi := m.Msg.GetMsgInfo()
		if mi == nil || mi.Msg.GetVote() == nil || mi.Msg.GetVote().Vote == nil {
			continue
		}
		v, err := cmttypes.VoteFromProto(mi.Msg.GetVote().Vote)
		if err != nil || !bytes.Equal(v.ValidatorAddress, addr) {
			continue
		}
		k := key{v.Height, v.Round, int32(v.Type)}
		if prev, dup := seen[k]; !dup {
			seen[k] = v
		} else if !prev.BlockID.Equals(v.BlockID) {
			return prev, v, true, nil
		}
	}
}

// errNotYet: the height of the double-sign is not committed yet.
var errNotYet = errors.New("the height is not committed yet")

// reportDoubleSign makes duplicate-vote evidence of votes a and b (the block time
// and validator set of their height, from node0) and broadcasts it to node0.
func (n *net) reportDoubleSign(ctx context.Context, a, b *cmttypes.Vote) (*cmttypes.DuplicateVoteEvidence, error) {
	c := n.cl[0]
	h := a.Height
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Height < h {
		return nil, errNotYet
	}
	blk, err := c.RPC.Block(ctx, &h)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", h, err)
	}
	perPage := 100
	vals, err := c.RPC.Validators(ctx, &h, nil, &perPage)
	if err != nil {
		return nil, fmt.Errorf("validators at %d: %w", h, err)
	}
	ev, err := cmttypes.NewDuplicateVoteEvidence(a, b, blk.Block.Time, cmttypes.NewValidatorSet(vals.Validators))
	if err != nil {
		return nil, err
	}
	if _, err := c.RPC.BroadcastEvidence(ctx, ev); err != nil {
		return nil, fmt.Errorf("broadcast evidence: %w", err)
	}
	return ev, nil
}
