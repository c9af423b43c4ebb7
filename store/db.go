package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
)

// MetaPrefix starts keys that hold bookkeeping (height, app hash, accumulator); they are
// outside the hashed state. Module prefixes never start with 0x00.
var MetaPrefix = []byte{0x00}

var (
	metaHeight  = []byte("\x00height")
	metaAppHash = []byte("\x00apphash")
	metaLtHash  = []byte("\x00lthash")
	metaTime    = []byte("\x00time")
)

// DB is committed state in pebble. Reads see only committed data; writes happen only
// through Commit.
type DB struct {
	db      *pebble.DB
	dir     string
	mu      sync.RWMutex // guards height, appHash, time, acc and view: queries read them while Commit writes
	height  int64
	appHash []byte
	time    time.Time
	acc     LtHash
	view    *View // the last committed height, for readers beside Commit
}

// Open opens (or creates) the state database in dir.
func Open(dir string) (*DB, error) {
	pdb, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("open state db %s: %w", dir, err)
	}
	d := &DB{db: pdb, dir: dir}
	if v, ok := d.Get(metaHeight); ok {
		if len(v) != 8 {
			return nil, errors.New("state db: corrupt height record")
		}
		d.height = int64(binary.BigEndian.Uint64(v))
	}
	if v, ok := d.Get(metaAppHash); ok {
		d.appHash = bytes.Clone(v)
	}
	if v, ok := d.Get(metaLtHash); ok {
		if !d.acc.SetBytes(v) {
			return nil, errors.New("state db: corrupt accumulator record")
		}
	}
	if v, ok := d.Get(metaTime); ok {
		if len(v) != 8 {
			return nil, errors.New("state db: corrupt block time record")
		}
		d.time = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
	}
	d.view = d.newView()
	return d, nil
}

// Close closes the database. Every View taken from it must be released first.
func (d *DB) Close() error {
	d.mu.Lock()
	v := d.view
	d.view = nil
	d.mu.Unlock()
	if v != nil {
		v.Release()
	}
	return d.db.Close()
}

// Dir returns the directory the database lives in.
func (d *DB) Dir() string { return d.dir }

// Height returns the last committed height (0 before genesis is committed).
func (d *DB) Height() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.height
}

// AppHash returns the last committed app hash.
func (d *DB) AppHash() []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.appHash
}

// BlockTime returns the time of the last committed block (zero before the first, and
// for a database last committed by a version that did not record it).
func (d *DB) BlockTime() time.Time {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.time
}

// Get implements KV over committed state.
func (d *DB) Get(key []byte) ([]byte, bool) { return get(d.db, key) }

func get(r pebble.Reader, key []byte) ([]byte, bool) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		// NB: a disk read failure must halt the node, not turn into "not found".
		panic(fmt.Sprintf("state db get: %v", err))
	}
	out := bytes.Clone(v)
	closer.Close()
	return out, true
}

// Set panics: committed state changes only through Commit.
func (d *DB) Set(key, value []byte) { panic("store: write to committed DB outside Commit") }

// Delete panics: committed state changes only through Commit.
func (d *DB) Delete(key []byte) { panic("store: delete in committed DB outside Commit") }

// Iterate implements KV over committed state.
func (d *DB) Iterate(prefix []byte, fn func(key, value []byte) bool) { iterate(d.db, prefix, fn) }

func iterate(r pebble.Reader, prefix []byte, fn func(key, value []byte) bool) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		panic(fmt.Sprintf("state db iterate: %v", err))
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if bytes.HasPrefix(it.Key(), MetaPrefix) && !bytes.HasPrefix(prefix, MetaPrefix) {
			continue
		}
		if !fn(bytes.Clone(it.Key()), bytes.Clone(it.Value())) {
			return
		}
	}
}

// Pending is a block's writes with the accumulator and app hash they lead to.
type Pending struct {
	Height  int64
	Time    time.Time // the block's time, from its header
	AppHash []byte
	acc     LtHash
	cache   *Cache
}

// Prepare computes the app hash the cache's writes lead to, without writing anything.
// t is the block's time, recorded with it (outside the hashed state: the header commits
// to it).
func (d *DB) Prepare(height int64, t time.Time, c *Cache) *Pending {
	d.mu.RLock()
	p := &Pending{Height: height, Time: t, acc: d.acc, cache: c}
	d.mu.RUnlock()
	for _, k := range c.SortedKeys() {
		if bytes.HasPrefix([]byte(k), MetaPrefix) {
			panic(fmt.Sprintf("store: module wrote meta key %q", k))
		}
		nv, _ := c.Dirty(k)
		old, had := d.Get([]byte(k))
		if had {
			p.acc.Remove([]byte(k), old)
		}
		if nv != nil {
			p.acc.Add([]byte(k), nv)
		}
	}
	p.AppHash = p.acc.Sum()
	return p
}

// Commit writes a prepared block atomically and durably.
func (d *DB) Commit(p *Pending) error {
	b := d.db.NewBatch()
	for _, k := range p.cache.SortedKeys() {
		v, _ := p.cache.Dirty(k)
		var err error
		if v == nil {
			err = b.Delete([]byte(k), nil)
		} else {
			err = b.Set([]byte(k), v, nil)
		}
		if err != nil {
			return fmt.Errorf("stage key: %w", err)
		}
	}
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], uint64(p.Height))
	if err := b.Set(metaHeight, h[:], nil); err != nil {
		return err
	}
	if err := b.Set(metaAppHash, p.AppHash, nil); err != nil {
		return err
	}
	if err := b.Set(metaLtHash, p.acc.Bytes(), nil); err != nil {
		return err
	}
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(p.Time.UnixNano()))
	if err := b.Set(metaTime, ts[:], nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit height %d: %w", p.Height, err)
	}
	d.mu.Lock()
	d.height, d.appHash, d.time, d.acc = p.Height, p.AppHash, p.Time.UTC(), p.acc
	// NB: the snapshot is taken after the batch is applied and before any later
	// commit, under the lock that View takes: a reader gets this height whole or the
	// previous one whole, never a mix.
	old := d.view
	d.view = d.newView()
	d.mu.Unlock()
	if old != nil {
		old.Release()
	}
	return nil
}

// Recompute hashes the whole committed state from scratch; it must equal the
// accumulator. Used by tests and `kiln node --verify-state`.
func (d *DB) Recompute() []byte {
	var acc LtHash
	d.Iterate(nil, func(k, v []byte) bool {
		acc.Add(k, v)
		return true
	})
	return acc.Sum()
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Errorf(string, ...interface{}) {}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}
