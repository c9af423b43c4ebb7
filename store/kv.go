package store

import (
	"bytes"
	"sort"
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

// Cache is a copy-on-write layer over a parent KV. Writes stay in the cache until Write.
type Cache struct {
	parent KV
	dirty  map[string][]byte // nil value: deleted
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

// Set implements KV.
func (c *Cache) Set(key, value []byte) {
	if value == nil {
		value = []byte{}
	}
	c.dirty[string(key)] = value
}

// Delete implements KV.
func (c *Cache) Delete(key []byte) { c.dirty[string(key)] = nil }

// Iterate implements KV, merging the parent's entries with this cache's writes.
func (c *Cache) Iterate(prefix []byte, fn func(key, value []byte) bool) {
	var keys []string
	for k := range c.dirty {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	i := 0
	stopped := false
	// emit dirty keys below k (exclusive), skipping deletions.
	flushBelow := func(k []byte, inclusive bool) bool {
		for i < len(keys) {
			dk := []byte(keys[i])
			cmp := bytes.Compare(dk, k)
			if k != nil && (cmp > 0 || (cmp == 0 && !inclusive)) {
				return true
			}
			i++
			if v := c.dirty[keys[i-1]]; v != nil {
				if !fn(dk, v) {
					return false
				}
			}
		}
		return true
	}
	c.parent.Iterate(prefix, func(k, v []byte) bool {
		if !flushBelow(k, false) {
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
		flushBelow(nil, true)
	}
}

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
}

// SortedKeys returns the keys written (or deleted) in this cache, ascending.
func (c *Cache) SortedKeys() []string {
	keys := make([]string, 0, len(c.dirty))
	for k := range c.dirty {
		keys = append(keys, k)
	}
	sort.Strings(keys)
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
	return &Cache{parent: c.parent, dirty: d}
}

// Len returns the number of keys written or deleted.
func (c *Cache) Len() int { return len(c.dirty) }

// Mem is an in-memory KV for tests and tools.
type Mem struct{ m map[string][]byte }

// NewMem returns an empty in-memory KV.
func NewMem() *Mem { return &Mem{m: make(map[string][]byte)} }

// Get implements KV.
func (m *Mem) Get(key []byte) ([]byte, bool) { v, ok := m.m[string(key)]; return v, ok }

// Set implements KV.
func (m *Mem) Set(key, value []byte) { m.m[string(key)] = value }

// Delete implements KV.
func (m *Mem) Delete(key []byte) { delete(m.m, string(key)) }

// Iterate implements KV.
func (m *Mem) Iterate(prefix []byte, fn func(key, value []byte) bool) {
	var keys []string
	for k := range m.m {
		if bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !fn([]byte(k), m.m[k]) {
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
