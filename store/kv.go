package store

import (
	"bytes"

	"github.com/google/btree"
)

// KV is a sorted key-value view of state.
type KV interface {
	// Get returns the value of key and whether it exists.
	Get(key []byte) ([]byte, bool)
	// Set writes key. Neither key nor value may be modified afterwards by the caller.
	Set(key, value []byte)
	// Delete removes key.
	Delete(key []byte)
	// Iterate calls fn for each key with the prefix in ascending order until fn returns false.
	Iterate(prefix []byte, fn func(key, value []byte) bool)
}

// btreeDegree is the fan-out of the ordered key sets: 32 keeps a million keys four
// levels deep with nodes that fit a few cache lines of pointers.
const btreeDegree = 32

func newKeySet() *btree.BTreeG[string] {
	return btree.NewG(btreeDegree, func(a, b string) bool { return a < b })
}

// ascendPrefix calls fn for each key of t with the prefix, ascending, until fn returns
// false. It costs O(log n + k) for k keys visited: a seek, not a scan.
func ascendPrefix(t *btree.BTreeG[string], prefix []byte, fn func(k string) bool) {
	if t == nil {
		return
	}
	if end := PrefixEnd(prefix); end != nil {
		t.AscendRange(string(prefix), string(end), fn)
		return
	}
	t.AscendGreaterOrEqual(string(prefix), fn)
}

// Cache is a copy-on-write layer over a parent KV. Writes stay in the cache until Write.
type Cache struct {
	parent KV
	dirty  map[string][]byte // nil value: deleted
	// keys is dirty's keys in order, so that Iterate seeks to its prefix instead of
	// scanning every write of the block; nil until the first write.
	keys *btree.BTreeG[string]
}

// NewCache returns an empty cache over parent.
func NewCache(parent KV) *Cache { return &Cache{parent: parent, dirty: make(map[string][]byte)} }

// Get implements KV.
func (c *Cache) Get(key []byte) ([]byte, bool) {
	if v, ok := c.dirty[string(key)]; ok {
		return v, v != nil
	}
	return c.parent.Get(key)
}

func (c *Cache) put(k string, v []byte) {
	if _, had := c.dirty[k]; !had {
		if c.keys == nil {
			c.keys = newKeySet()
		}
		c.keys.ReplaceOrInsert(k)
	}
	c.dirty[k] = v
}

// Set implements KV.
func (c *Cache) Set(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	c.put(string(key), value)
}

// Delete implements KV.
func (c *Cache) Delete(key []byte) { c.put(string(key), nil) }

// Iterate implements KV, merging the parent's entries with this cache's writes. It
// costs a seek in the parent and in this cache's writes plus the keys visited.
func (c *Cache) Iterate(prefix []byte, fn func(key, value []byte) bool) {
	dirty := newCursor(c.keys, prefix)
	stopped := false
	// emit dirty keys below k (exclusive; every one when k is nil), skipping deletions.
	flushBelow := func(k []byte) bool {
		for {
			dk, ok := dirty.peek()
			if !ok || (k != nil && dk >= string(k)) {
				return true
			}
			dirty.next()
			if v := c.dirty[dk]; v != nil {
				if !fn([]byte(dk), v) {
					return false
				}
			}
		}
	}
	c.parent.Iterate(prefix, func(k, v []byte) bool {
		if !flushBelow(k) {
			stopped = true
			return false
		}
		if _, overridden := c.dirty[string(k)]; overridden {
			return true // emitted (or deleted) from the dirty set
		}
		if !fn(k, v) {
			stopped = true
			return false
		}
		return true
	})
	if !stopped {
		flushBelow(nil)
	}
}

// cursorChunk is how many keys a cursor takes from its tree at a time: the callback
// of a walk runs between chunks, never inside the tree's own traversal, so it may
// write to the store it walks.
const cursorChunk = 64

// cursor walks the keys of an ordered set under a prefix, a chunk at a time.
type cursor struct {
	t     *btree.BTreeG[string]
	from  string // the next chunk starts at the first key >= from
	end   string // "" when the prefix has no end
	buf   []string
	i     int
	spent bool
}

// newCursor starts a walk over the keys t holds now: it walks a copy-on-write clone,
// so keys written during the walk are not visited (the snapshot a walk over pebble
// sees too), while a key deleted during the walk is skipped by the caller.
func newCursor(t *btree.BTreeG[string], prefix []byte) *cursor {
	if t != nil {
		t = t.Clone()
	}
	return &cursor{t: t, from: string(prefix), end: string(PrefixEnd(prefix)), spent: t == nil}
}

func (c *cursor) fill() {
	c.buf, c.i = c.buf[:0], 0
	fn := func(k string) bool {
		c.buf = append(c.buf, k)
		return len(c.buf) < cursorChunk
	}
	if c.end != "" {
		c.t.AscendRange(c.from, c.end, fn)
	} else {
		c.t.AscendGreaterOrEqual(c.from, fn)
	}
	if len(c.buf) < cursorChunk {
		c.spent = true
	}
	if n := len(c.buf); n > 0 {
		c.from = c.buf[n-1] + "\x00" // NB: the least key after the last one taken
	}
}

// peek returns the next key without taking it.
func (c *cursor) peek() (string, bool) {
	if c.i == len(c.buf) {
		if c.spent {
			return "", false
		}
		c.fill()
		if len(c.buf) == 0 {
			return "", false
		}
	}
	return c.buf[c.i], true
}

func (c *cursor) next() { c.i++ }

// Write applies the cache's writes to its parent in key order and empties the cache.
func (c *Cache) Write() {
	for _, k := range c.SortedKeys() {
		v := c.dirty[k]
		if v == nil {
			c.parent.Delete([]byte(k))
		} else {
			c.parent.Set([]byte(k), v)
		}
	}
	c.dirty = make(map[string][]byte)
	c.keys = nil
}

// SortedKeys returns the keys written (or deleted) in this cache, ascending.
func (c *Cache) SortedKeys() []string {
	keys := make([]string, 0, len(c.dirty))
	ascendPrefix(c.keys, nil, func(k string) bool {
		keys = append(keys, k)
		return true
	})
	return keys
}

// Dirty returns the cached value of key: (nil, true) for a deletion, (v, true) for a
// write, (nil, false) when untouched.
func (c *Cache) Dirty(key string) ([]byte, bool) {
	v, ok := c.dirty[key]
	return v, ok
}

// Clone returns an independent cache over the same parent holding the same writes.
func (c *Cache) Clone() *Cache {
	d := make(map[string][]byte, len(c.dirty))
	for k, v := range c.dirty {
		d[k] = v
	}
	out := &Cache{parent: c.parent, dirty: d}
	if c.keys != nil {
		out.keys = c.keys.Clone() // NB: copy-on-write; later writes to either do not show in the other
	}
	return out
}

// Len returns the number of keys written or deleted.
func (c *Cache) Len() int { return len(c.dirty) }

// Mem is an in-memory KV for tests and tools (the market simulator keeps a million
// GPUs' state in one). Get is a map lookup; Iterate seeks in an ordered key set, so a
// prefix costs what it holds, not the whole store.
type Mem struct {
	m    map[string][]byte
	keys *btree.BTreeG[string]
}

// NewMem returns an empty in-memory KV.
func NewMem() *Mem { return &Mem{m: make(map[string][]byte), keys: newKeySet()} }

// Get implements KV.
func (m *Mem) Get(key []byte) ([]byte, bool) { v, ok := m.m[string(key)]; return v, ok }

// Set implements KV.
func (m *Mem) Set(key, value []byte) {
	k := string(key)
	if _, had := m.m[k]; !had {
		m.keys.ReplaceOrInsert(k)
	}
	m.m[k] = value
}

// Delete implements KV.
func (m *Mem) Delete(key []byte) {
	k := string(key)
	if _, had := m.m[k]; had {
		m.keys.Delete(k)
		delete(m.m, k)
	}
}

// Len returns the number of keys held.
func (m *Mem) Len() int { return len(m.m) }

// Iterate implements KV. fn may write to m: the walk reads keys a chunk at a time,
// outside the ordered set's own traversal.
func (m *Mem) Iterate(prefix []byte, fn func(key, value []byte) bool) {
	c := newCursor(m.keys, prefix)
	for {
		k, ok := c.peek()
		if !ok {
			return
		}
		c.next()
		v, ok := m.m[k]
		if !ok {
			continue // NB: deleted by fn earlier in this walk
		}
		if !fn([]byte(k), v) {
			return
		}
	}
}

// PrefixEnd returns the smallest key greater than every key with the prefix, or nil if
// there is none (prefix of all 0xff).
func PrefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
