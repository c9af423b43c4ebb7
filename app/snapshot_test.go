package app

import (
	"bytes"
	"context"
	"testing"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
)

// A node that joins through state sync restores a peer's snapshot over ABCI (a
// corrupted chunk refused and fetched again), reaches the same app hash, and then
// executes the next blocks exactly as the node that served it.
func TestStateSyncRestoresAndFollows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := newHarnessOpts(t, 4, Options{CheckInvariants: true, Snapshots: &Snapshots{Dir: dir, Interval: 5, Keep: 2, ChunkSize: 512}}, nil)
	hashes := map[int64][]byte{}
	for i := 0; i < 12; i++ {
		h.block(h.send(h.accs[i%4], h.accs[(i+1)%4], uint64(1000+i)))
		h.accs[i%4].seq++
		hashes[h.height] = h.app.AppHash()
	}
	h.app.WaitSnapshots()
	list, err := h.app.ListSnapshots(ctx, &abcitypes.RequestListSnapshots{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Snapshots) != 2 || list.Snapshots[0].Height != 10 || list.Snapshots[1].Height != 5 {
		t.Fatalf("snapshots kept: %v (want heights 10 and 5)", list.Snapshots)
	}
	snap := list.Snapshots[0]
	if snap.Chunks < 2 {
		t.Fatalf("want several chunks at 512 bytes, got %d", snap.Chunks)
	}
	view := h.app.db.View()
	if view.Height() != 13 {
		t.Fatalf("serving node at height %d", view.Height())
	}
	view.Release()
	// The app hash a light client verified for height 10 is the one the chain
	// committed there.
	trusted := hashes[10]

	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	joiner := New(db, Options{CheckInvariants: true})
	defer db.Close()

	// Refusals first: a wrong trusted hash, a forged metadata hash.
	if r, _ := joiner.OfferSnapshot(ctx, &abcitypes.RequestOfferSnapshot{Snapshot: snap, AppHash: []byte("not the hash")}); r.Result != abcitypes.ResponseOfferSnapshot_REJECT {
		t.Fatalf("offer with a wrong app hash: %v", r.Result)
	}
	forged := *snap
	forged.Hash = bytes.Repeat([]byte{1}, 32)
	if r, _ := joiner.OfferSnapshot(ctx, &abcitypes.RequestOfferSnapshot{Snapshot: &forged, AppHash: trusted}); r.Result != abcitypes.ResponseOfferSnapshot_REJECT_SENDER {
		t.Fatalf("offer with a forged hash: %v", r.Result)
	}
	if r, _ := joiner.OfferSnapshot(ctx, &abcitypes.RequestOfferSnapshot{Snapshot: snap, AppHash: trusted}); r.Result != abcitypes.ResponseOfferSnapshot_ACCEPT {
		t.Fatalf("offer: %v", r.Result)
	}
	for i := uint32(0); i < snap.Chunks; i++ {
		c, err := h.app.LoadSnapshotChunk(ctx, &abcitypes.RequestLoadSnapshotChunk{Height: snap.Height, Format: snap.Format, Chunk: i})
		if err != nil || len(c.Chunk) == 0 {
			t.Fatalf("load chunk %d: %v", i, err)
		}
		if i == 1 {
			bad := bytes.Clone(c.Chunk)
			bad[0] ^= 1
			r, _ := joiner.ApplySnapshotChunk(ctx, &abcitypes.RequestApplySnapshotChunk{Index: i, Chunk: bad, Sender: "liar"})
			if r.Result != abcitypes.ResponseApplySnapshotChunk_RETRY || len(r.RefetchChunks) != 1 || r.RefetchChunks[0] != 1 || r.RejectSenders[0] != "liar" {
				t.Fatalf("corrupt chunk answer: %+v", r)
			}
		}
		r, _ := joiner.ApplySnapshotChunk(ctx, &abcitypes.RequestApplySnapshotChunk{Index: i, Chunk: c.Chunk, Sender: "honest"})
		if r.Result != abcitypes.ResponseApplySnapshotChunk_ACCEPT {
			t.Fatalf("chunk %d: %v", i, r.Result)
		}
	}
	info, _ := joiner.Info(ctx, &abcitypes.RequestInfo{})
	if info.LastBlockHeight != 10 || !bytes.Equal(info.LastBlockAppHash, trusted) {
		t.Fatalf("joiner at %d %X, want 10 %X", info.LastBlockHeight, info.LastBlockAppHash, trusted)
	}
	if joiner.ChainID() != testChain {
		t.Fatalf("joiner chain id %q", joiner.ChainID())
	}

	// Replaying blocks 11..13 from a second harness that saw the same history gives
	// the serving node's hash at each height: the joiner executes like everyone else.
	replay := newHarnessOpts(t, 4, Options{CheckInvariants: true}, nil)
	var blocks [][]byte
	for i := 0; i < 12; i++ {
		raw := replay.send(replay.accs[i%4], replay.accs[(i+1)%4], uint64(1000+i))
		replay.accs[i%4].seq++
		blocks = append(blocks, raw)
		if replay.height+1 <= 10 {
			replay.block(raw)
		}
	}
	for height := int64(11); height <= 13; height++ {
		raw := blocks[height-2]
		want, err := replay.app.FinalizeBlock(ctx, replay.finalizeReq(height, raw))
		if err != nil {
			t.Fatal(err)
		}
		replay.app.Commit(ctx, &abcitypes.RequestCommit{})
		replay.height = height
		got, err := joiner.FinalizeBlock(ctx, replay.finalizeReq(height, raw))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := joiner.Commit(ctx, &abcitypes.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.AppHash, want.AppHash) {
			t.Fatalf("height %d: joiner %X, node %X", height, got.AppHash, want.AppHash)
		}
		if got.TxResults[0].Code != 0 {
			t.Fatalf("height %d: tx refused on the joiner: %s", height, got.TxResults[0].Log)
		}
	}
	if !bytes.Equal(joiner.AppHash(), h.app.AppHash()) {
		t.Fatalf("joiner ends at %X, the serving node at %X", joiner.AppHash(), h.app.AppHash())
	}
}
