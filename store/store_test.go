package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func collect(kv KV, prefix string) []string {
	var out []string
	kv.Iterate([]byte(prefix), func(k, v []byte) bool {
		out = append(out, string(k)+"="+string(v))
		return true
	})
	return out
}

func TestCacheIterateMergesSorted(t *testing.T) {
	m := NewMem()
	m.Set([]byte("a/1"), []byte("x"))
	m.Set([]byte("a/3"), []byte("x"))
	m.Set([]byte("a/5"), []byte("x"))
	m.Set([]byte("b/1"), []byte("x"))
	c := NewCache(m)
	c.Set([]byte("a/2"), []byte("y"))
	c.Set([]byte("a/3"), []byte("y"))
	c.Delete([]byte("a/5"))
	c.Set([]byte("a/6"), []byte("y"))
	got := fmt.Sprint(collect(c, "a/"))
	want := fmt.Sprint([]string{"a/1=x", "a/2=y", "a/3=y", "a/6=y"})
	if got != want {
		t.Fatalf("Iterate = %s, want %s", got, want)
	}
	if fmt.Sprint(collect(m, "a/")) != fmt.Sprint([]string{"a/1=x", "a/3=x", "a/5=x"}) {
		t.Fatal("cache changed its parent before Write")
	}
	c.Write()
	if got := fmt.Sprint(collect(m, "a/")); got != want {
		t.Fatalf("after Write parent = %s, want %s", got, want)
	}
}

// Property: a cache over a random parent with random writes iterates exactly like a
// map with the same writes applied.
func TestCacheIterateProperty(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		parent, model := NewMem(), NewMem()
		for i := 0; i < r.Intn(20); i++ {
			k := []byte{byte('a' + r.Intn(3)), byte('0' + r.Intn(10))}
			parent.Set(k, []byte{byte(i)})
			model.Set(k, []byte{byte(i)})
		}
		c := NewCache(parent)
		for i := 0; i < r.Intn(20); i++ {
			k := []byte{byte('a' + r.Intn(3)), byte('0' + r.Intn(10))}
			if r.Intn(3) == 0 {
				c.Delete(k)
				model.Delete(k)
			} else {
				c.Set(k, []byte{byte(100 + i)})
				model.Set(k, []byte{byte(100 + i)})
			}
		}
		for _, p := range []string{"", "a", "b", "c"} {
			if got, want := fmt.Sprint(collect(c, p)), fmt.Sprint(collect(model, p)); got != want {
				t.Fatalf("round %d prefix %q: Iterate = %s, want %s", round, p, got, want)
			}
		}
	}
}

func TestLtHashOrderIndependentAndRemovable(t *testing.T) {
	var a, b LtHash
	a.Add([]byte("k1"), []byte("v1"))
	a.Add([]byte("k2"), []byte("v2"))
	b.Add([]byte("k2"), []byte("v2"))
	b.Add([]byte("k1"), []byte("v1"))
	if !bytes.Equal(a.Sum(), b.Sum()) {
		t.Fatal("LtHash depends on insertion order")
	}
	b.Add([]byte("k3"), []byte("v3"))
	if bytes.Equal(a.Sum(), b.Sum()) {
		t.Fatal("adding a pair did not change the hash")
	}
	b.Remove([]byte("k3"), []byte("v3"))
	if !bytes.Equal(a.Sum(), b.Sum()) {
		t.Fatal("remove did not undo add")
	}
	var c LtHash
	c.Add([]byte("ab"), []byte("c"))
	var d LtHash
	d.Add([]byte("a"), []byte("bc"))
	if bytes.Equal(c.Sum(), d.Sum()) {
		t.Fatal("key/value boundary is ambiguous")
	}
}

func TestDBCommitReopenAndRecompute(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(db)
	for i := 0; i < 100; i++ {
		c.Set([]byte(fmt.Sprintf("k/%03d", i)), []byte{byte(i)})
	}
	p := db.Prepare(1, time.Unix(1, 0), c)
	if err := db.Commit(p); err != nil {
		t.Fatal(err)
	}
	c2 := NewCache(db)
	c2.Delete([]byte("k/005"))
	c2.Set([]byte("k/006"), []byte("changed"))
	p2 := db.Prepare(2, time.Unix(2, 0), c2)
	if err := db.Commit(p2); err != nil {
		t.Fatal(err)
	}
	if got := db.Recompute(); !bytes.Equal(got, p2.AppHash) {
		t.Fatalf("incremental hash %x != recomputed %x", p2.AppHash, got)
	}
	db.Close()
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Height() != 2 || !bytes.Equal(db.AppHash(), p2.AppHash) {
		t.Fatalf("reopened at height %d hash %x, want 2 %x", db.Height(), db.AppHash(), p2.AppHash)
	}
	if got, want := db.BlockTime(), time.Unix(2, 0).UTC(); !got.Equal(want) {
		t.Fatalf("reopened with block time %v, want %v", got, want)
	}
	if v, ok := db.Get([]byte("k/006")); !ok || string(v) != "changed" {
		t.Fatalf("Get(k/006) = %q, %v", v, ok)
	}
	if _, ok := db.Get([]byte("k/005")); ok {
		t.Fatal("deleted key still present")
	}
}

// A View keeps reading the height it was taken at, whatever commits after it; a View
// taken after the commit reads the new height.
func TestViewIsolatedFromLaterCommits(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit := func(h int64, writes map[string]string) {
		c := NewCache(db)
		for _, k := range slices.Sorted(maps.Keys(writes)) {
			if writes[k] == "" {
				c.Delete([]byte(k))
			} else {
				c.Set([]byte(k), []byte(writes[k]))
			}
		}
		if err := db.Commit(db.Prepare(h, time.Unix(h, 0), c)); err != nil {
			t.Fatal(err)
		}
	}
	commit(1, map[string]string{"k/a": "1", "k/b": "1"})
	v1 := db.View()
	commit(2, map[string]string{"k/a": "2", "k/b": "", "k/c": "2"})
	v2 := db.View()
	tests := []struct {
		v      *View
		height int64
		want   string
	}{
		{v1, 1, "[k/a=1 k/b=1]"},
		{v2, 2, "[k/a=2 k/c=2]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(collect(tt.v, "k/")); got != tt.want || tt.v.Height() != tt.height || !tt.v.BlockTime().Equal(time.Unix(tt.height, 0)) {
			t.Errorf("View at height %d (time %v) reads %s, want height %d: %s", tt.v.Height(), tt.v.BlockTime(), got, tt.height, tt.want)
		}
		if all := collect(tt.v, ""); len(all) != 2 {
			t.Errorf("View at height %d iterates %v, want its 2 state keys and no bookkeeping", tt.height, all)
		}
	}
	if !bytes.Equal(v2.AppHash(), db.AppHash()) || bytes.Equal(v1.AppHash(), v2.AppHash()) {
		t.Errorf("View app hashes %x, %x; committed %x", v1.AppHash(), v2.AppHash(), db.AppHash())
	}
	v1.Release()
	v2.Release()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("releasing a View twice did not panic")
			}
		}()
		v1.Release()
	}()
}

// Readers that take Views while blocks commit each read one height whole: every key
// holds the height that wrote it (-race checks the locking).
func TestViewsBesideCommits(t *testing.T) {
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const keys, blocks = 50, 100
	var done atomic.Bool
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				v := db.View()
				want := fmt.Sprint(v.Height())
				for i := 0; i < keys; i++ {
					if got, ok := v.Get([]byte(fmt.Sprintf("k/%02d", i))); v.Height() > 0 && (!ok || string(got) != want) {
						errs <- fmt.Errorf("View at height %s: k/%02d = %q", want, i, got)
						v.Release()
						return
					}
				}
				v.Release()
			}
		}()
	}
	for h := int64(1); h <= blocks; h++ {
		c := NewCache(db)
		for i := 0; i < keys; i++ {
			c.Set([]byte(fmt.Sprintf("k/%02d", i)), []byte(fmt.Sprint(h)))
		}
		if err := db.Commit(db.Prepare(h, time.Unix(h, 0), c)); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// modelIterate is Iterate over a plain map: every key, filtered and sorted.
func modelIterate(m map[string]string, prefix string, limit int) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if len(out) == limit {
			break
		}
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k+"="+m[k])
		}
	}
	return out
}

// Property: Mem and a cache over Mem iterate like a sorted map, across the cursors'
// chunk boundaries (many keys under one prefix), when the walk stops early, and when
// the callback deletes the keys it walks.
func TestOrderedIterateMatchesSortedMap(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	key := func() string { return fmt.Sprintf("%c/%03d", 'a'+r.Intn(3), r.Intn(400)) }
	for round := 0; round < 30; round++ {
		parent, model := NewMem(), map[string]string{}
		for i := 0; i < r.Intn(600); i++ {
			k := key()
			parent.Set([]byte(k), []byte(fmt.Sprint(i)))
			model[k] = fmt.Sprint(i)
		}
		c := NewCache(parent)
		for i := 0; i < r.Intn(600); i++ {
			k := key()
			if r.Intn(3) == 0 {
				c.Delete([]byte(k))
				delete(model, k)
			} else {
				c.Set([]byte(k), []byte(fmt.Sprint(-i)))
				model[k] = fmt.Sprint(-i)
			}
		}
		for _, p := range []string{"", "a", "b/", "b/1", "c/39", "d"} {
			limit := r.Intn(200) + 1
			for name, kv := range map[string]KV{"cache": c} {
				var got []string
				kv.Iterate([]byte(p), func(k, v []byte) bool {
					got = append(got, string(k)+"="+string(v))
					return len(got) < limit
				})
				if want := modelIterate(model, p, limit); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("round %d %s prefix %q limit %d:\n got %v\nwant %v", round, name, p, limit, got, want)
				}
			}
		}
		c.Write()
		if got, want := collect(parent, ""), modelIterate(model, "", -1); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: parent after Write = %d keys, want %d", round, len(got), len(want))
		}
		// Deleting every key during the walk visits each once and leaves nothing.
		for name, kv := range map[string]KV{"mem": parent, "cache": NewCache(parent)} {
			n := 0
			kv.Iterate(nil, func(k, _ []byte) bool {
				kv.Delete(k)
				n++
				return true
			})
			if n != len(model) || len(collect(kv, "")) != 0 {
				t.Fatalf("round %d %s: delete-while-walking visited %d of %d, %d left", round, name, n, len(model), len(collect(kv, "")))
			}
			if name == "mem" {
				for k, v := range model {
					parent.Set([]byte(k), []byte(v))
				}
			}
		}
	}
}
