package store

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
)

// View is the committed state of one height, read-only, with that height's app hash and
// block time. Commits after it was taken never change what it reads, so a reader that
// makes many reads (a query) sees one height whole while the next block commits.
//
// A View MUST be released once: it pins a pebble snapshot, which holds back compaction
// of the versions it can see.
type View struct {
	snap    *pebble.Snapshot
	height  int64
	appHash []byte
	time    time.Time
	refs    atomic.Int64
}

// newView snapshots the committed state; d.mu must be held. The DB holds the first
// reference until the next commit replaces it.
func (d *DB) newView() *View {
	v := &View{snap: d.db.NewSnapshot(), height: d.height, appHash: d.appHash, time: d.time}
	v.refs.Store(1)
	return v
}

// View returns the last committed height's View. The caller MUST Release it.
func (d *DB) View() *View {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.view == nil {
		panic("store: View on a closed DB")
	}
	d.view.refs.Add(1)
	return d.view
}

// Release gives the View back; the last release closes its snapshot.
func (v *View) Release() {
	switch n := v.refs.Add(-1); {
	case n == 0:
		v.snap.Close()
	case n < 0:
		panic("store: View released twice")
	}
}

// Height returns the height the View shows (0 before genesis is committed).
func (v *View) Height() int64 { return v.height }

// AppHash returns the app hash of the View's height.
func (v *View) AppHash() []byte { return v.appHash }

// BlockTime returns the time of the View's block (see DB.BlockTime).
func (v *View) BlockTime() time.Time { return v.time }

// Get implements KV.
func (v *View) Get(key []byte) ([]byte, bool) { return get(v.snap, key) }

// Iterate implements KV.
func (v *View) Iterate(prefix []byte, fn func(key, value []byte) bool) { iterate(v.snap, prefix, fn) }

// Set panics: a View is read-only.
func (v *View) Set(key, value []byte) { panic("store: write to a read-only View") }

// Delete panics: a View is read-only.
func (v *View) Delete(key []byte) { panic("store: delete in a read-only View") }
