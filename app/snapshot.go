package app

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
)

// Snapshots configure state-sync snapshots: every Interval heights the app writes the
// committed state into Dir (store.WriteSnapshot) and keeps the Keep newest; peers
// joining through state sync fetch them (ListSnapshots, LoadSnapshotChunk).
type Snapshots struct {
	Dir       string
	Interval  int64 // 0: take none (the node can still restore one)
	Keep      int   // newest snapshots kept (at least 1)
	ChunkSize int   // 0: store.DefaultChunkSize
}

// snapshotter takes snapshots beside consensus and restores one for state sync.
type snapshotter struct {
	cfg     Snapshots
	mu      sync.Mutex
	running bool
	wg      sync.WaitGroup
	restore *store.Restore // the snapshot being restored, between OfferSnapshot and its last chunk
	onErr   func(error)
}

// afterCommit starts a snapshot of height when it falls on the interval; it reads a
// View, so the next blocks commit while it is written. One runs at a time: a height
// that comes while one is still being written is skipped.
func (s *snapshotter) afterCommit(db *store.DB, height int64) {
	if s == nil || s.cfg.Interval <= 0 || height%s.cfg.Interval != 0 {
		return
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.mu.Unlock()
	view := db.View()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer view.Release()
		size := s.cfg.ChunkSize
		if size == 0 {
			size = store.DefaultChunkSize
		}
		_, err := store.WriteSnapshot(view, s.cfg.Dir, size)
		if err == nil {
			err = store.PruneSnapshots(s.cfg.Dir, max(s.cfg.Keep, 1))
		}
		if err != nil && s.onErr != nil {
			s.onErr(err)
		}
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
}

// WaitSnapshots waits for a snapshot being written (before the database closes).
func (a *App) WaitSnapshots() {
	if a.snaps != nil {
		a.snaps.wg.Wait()
	}
}

// ListSnapshots offers the snapshots this node keeps to a peer in state sync.
func (a *App) ListSnapshots(context.Context, *abcitypes.RequestListSnapshots) (*abcitypes.ResponseListSnapshots, error) {
	resp := &abcitypes.ResponseListSnapshots{}
	if a.snaps == nil {
		return resp, nil
	}
	list, err := store.ListSnapshots(a.snaps.cfg.Dir)
	if err != nil {
		return nil, err
	}
	for _, m := range list {
		meta, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		resp.Snapshots = append(resp.Snapshots, &abcitypes.Snapshot{
			Height: uint64(m.Height), Format: store.SnapshotFormat, Chunks: uint32(len(m.Chunks)), Hash: m.Hash(), Metadata: meta,
		})
	}
	return resp, nil
}

// LoadSnapshotChunk serves one chunk of a snapshot this node keeps.
func (a *App) LoadSnapshotChunk(_ context.Context, req *abcitypes.RequestLoadSnapshotChunk) (*abcitypes.ResponseLoadSnapshotChunk, error) {
	if a.snaps == nil || req.Format != store.SnapshotFormat {
		return &abcitypes.ResponseLoadSnapshotChunk{}, nil
	}
	c, err := store.LoadSnapshotChunk(a.snaps.cfg.Dir, int64(req.Height), int(req.Chunk))
	if err != nil {
		// NB: an empty chunk tells CometBFT this node cannot serve it; the syncing
		// peer asks another.
		return &abcitypes.ResponseLoadSnapshotChunk{}, nil
	}
	return &abcitypes.ResponseLoadSnapshotChunk{Chunk: c}, nil
}

// OfferSnapshot decides whether to restore a peer's snapshot: the format must be ours,
// the metadata well formed and consistent with the offer, and its app hash the one
// CometBFT's light client verified for that height.
func (a *App) OfferSnapshot(_ context.Context, req *abcitypes.RequestOfferSnapshot) (*abcitypes.ResponseOfferSnapshot, error) {
	reject := func(r abcitypes.ResponseOfferSnapshot_Result, why string, args ...any) (*abcitypes.ResponseOfferSnapshot, error) {
		a.log.Info("state sync: snapshot refused", append([]any{"why", why}, args...)...)
		return &abcitypes.ResponseOfferSnapshot{Result: r}, nil
	}
	s := req.Snapshot
	if s == nil {
		return reject(abcitypes.ResponseOfferSnapshot_REJECT, "no snapshot in the offer")
	}
	if s.Format != store.SnapshotFormat {
		return reject(abcitypes.ResponseOfferSnapshot_REJECT_FORMAT, "unknown format", "format", s.Format)
	}
	m, err := store.ParseSnapshotMeta(s.Metadata)
	if err != nil {
		return reject(abcitypes.ResponseOfferSnapshot_REJECT_SENDER, err.Error())
	}
	if uint64(m.Height) != s.Height || uint32(len(m.Chunks)) != s.Chunks || string(m.Hash()) != string(s.Hash) {
		return reject(abcitypes.ResponseOfferSnapshot_REJECT_SENDER, "metadata does not match the offer", "height", s.Height)
	}
	if a.snaps == nil {
		a.snaps = &snapshotter{}
	}
	if a.snaps.restore != nil {
		a.snaps.restore.Abort()
		a.snaps.restore = nil
	}
	r, err := a.db.BeginRestore(m, req.AppHash)
	if err != nil {
		return reject(abcitypes.ResponseOfferSnapshot_REJECT, err.Error(), "height", s.Height)
	}
	a.snaps.restore = r
	a.log.Info("state sync: restoring snapshot", "height", m.Height, "chunks", len(m.Chunks), "keys", m.Keys)
	return &abcitypes.ResponseOfferSnapshot{Result: abcitypes.ResponseOfferSnapshot_ACCEPT}, nil
}

// ApplySnapshotChunk restores one chunk. A chunk that does not hash to what the
// snapshot's metadata lists is refused and fetched again from another peer; a snapshot
// whose whole state does not hash to the trusted app hash is refused whole.
func (a *App) ApplySnapshotChunk(_ context.Context, req *abcitypes.RequestApplySnapshotChunk) (*abcitypes.ResponseApplySnapshotChunk, error) {
	if a.snaps == nil || a.snaps.restore == nil {
		return &abcitypes.ResponseApplySnapshotChunk{Result: abcitypes.ResponseApplySnapshotChunk_ABORT}, nil
	}
	r := a.snaps.restore
	err := r.Apply(int(req.Index), req.Chunk)
	switch {
	case err == nil:
		if r.Done() {
			a.snaps.restore = nil
			a.afterRestore()
			a.log.Info("state sync: snapshot restored", "height", a.db.Height())
		}
		return &abcitypes.ResponseApplySnapshotChunk{Result: abcitypes.ResponseApplySnapshotChunk_ACCEPT}, nil
	case errors.Is(err, store.ErrChunkHash):
		a.log.Info("state sync: chunk refused, fetching it again", "chunk", req.Index, "sender", req.Sender, "err", err)
		return &abcitypes.ResponseApplySnapshotChunk{Result: abcitypes.ResponseApplySnapshotChunk_RETRY,
			RefetchChunks: []uint32{req.Index}, RejectSenders: []string{req.Sender}}, nil
	default:
		a.log.Info("state sync: snapshot refused", "err", err)
		r.Abort()
		a.snaps.restore = nil
		return &abcitypes.ResponseApplySnapshotChunk{Result: abcitypes.ResponseApplySnapshotChunk_REJECT_SNAPSHOT}, nil
	}
}

// afterRestore reloads what the app keeps in memory from the restored state, as New
// does from a database it opens.
func (a *App) afterRestore() {
	if v, ok := a.db.Get(chainIDKey); ok {
		a.chainID = string(v)
	}
	a.checkMu.Lock()
	a.check = store.NewCache(a.db)
	a.checkTime = a.db.BlockTime()
	a.checkMu.Unlock()
}
