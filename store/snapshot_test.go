package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// committedDB returns a DB at height 2 holding n keys (some deleted and rewritten in
// the second block), and its directory.
func committedDB(t *testing.T, n int) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := NewCache(db)
	for i := 0; i < n; i++ {
		c.Set([]byte(fmt.Sprintf("m/%05d", i)), bytes.Repeat([]byte{byte(i)}, i%97))
	}
	if err := db.Commit(db.Prepare(1, time.Unix(100, 0), c)); err != nil {
		t.Fatal(err)
	}
	c = NewCache(db)
	c.Delete([]byte("m/00003"))
	c.Set([]byte("m/00004"), []byte("rewritten"))
	c.Set([]byte("z"), []byte("last"))
	if err := db.Commit(db.Prepare(2, time.Unix(200, 0), c)); err != nil {
		t.Fatal(err)
	}
	return db
}

func writeSnap(t *testing.T, db *DB, chunk int) (string, SnapshotMeta) {
	t.Helper()
	dir := t.TempDir()
	v := db.View()
	defer v.Release()
	m, err := WriteSnapshot(v, dir, chunk)
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func emptyDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func restoreAll(t *testing.T, r *Restore, dir string, m SnapshotMeta) error {
	t.Helper()
	for i := range m.Chunks {
		c, err := LoadSnapshotChunk(dir, m.Height, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(i, c); err != nil {
			return err
		}
	}
	return nil
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := committedDB(t, 500)
	dir, m := writeSnap(t, src, 1024)
	if len(m.Chunks) < 5 {
		t.Fatalf("want several chunks at 1 KiB, got %d", len(m.Chunks))
	}
	list, err := ListSnapshots(dir)
	if err != nil || len(list) != 1 || list[0].Height != 2 {
		t.Fatalf("ListSnapshots = %v, %v", list, err)
	}
	dst := emptyDB(t)
	r, err := dst.BeginRestore(m, src.AppHash())
	if err != nil {
		t.Fatal(err)
	}
	if err := restoreAll(t, r, dir, m); err != nil {
		t.Fatal(err)
	}
	if !r.Done() || dst.Height() != 2 || !bytes.Equal(dst.AppHash(), src.AppHash()) {
		t.Fatalf("restored height %d hash %X, want 2 %X", dst.Height(), dst.AppHash(), src.AppHash())
	}
	if !bytes.Equal(dst.Recompute(), src.AppHash()) {
		t.Fatal("restored state does not recompute to the app hash")
	}
	if !dst.BlockTime().Equal(time.Unix(200, 0)) {
		t.Errorf("restored block time %v", dst.BlockTime())
	}
	if _, ok := dst.Get([]byte("m/00003")); ok {
		t.Error("a key deleted before the snapshot came back")
	}
	if v, _ := dst.Get([]byte("m/00004")); string(v) != "rewritten" {
		t.Errorf("m/00004 = %q", v)
	}
	// The restored node goes on committing blocks, and reopens where it left off.
	c := NewCache(dst)
	c.Set([]byte("after"), []byte("x"))
	if err := dst.Commit(dst.Prepare(3, time.Unix(300, 0), c)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Recompute(), dst.AppHash()) {
		t.Fatal("accumulator after restore and one block disagrees with the state")
	}
}

func TestRestoreRefusesCorruptChunkThenTakesTheRightOne(t *testing.T) {
	src := committedDB(t, 200)
	dir, m := writeSnap(t, src, 512)
	dst := emptyDB(t)
	r, err := dst.BeginRestore(m, src.AppHash())
	if err != nil {
		t.Fatal(err)
	}
	good, _ := LoadSnapshotChunk(dir, m.Height, 0)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x40
	if err := r.Apply(0, bad); !errors.Is(err, ErrChunkHash) {
		t.Fatalf("corrupt chunk: %v, want ErrChunkHash", err)
	}
	if r.Next() != 0 {
		t.Fatalf("after a refused chunk, next is %d", r.Next())
	}
	if err := r.Apply(1, good); err == nil {
		t.Fatal("out-of-order chunk accepted")
	}
	if err := restoreAll(t, r, dir, m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.AppHash(), src.AppHash()) {
		t.Fatal("restore after a refetched chunk did not reach the app hash")
	}
}

// A peer that forges a whole snapshot (consistent chunk hashes, the real app hash
// claimed) is caught at the end, and nothing it wrote is left behind.
func TestRestoreRefusesForgedState(t *testing.T) {
	src := committedDB(t, 50)
	other := committedDB(t, 51) // different state
	dir, m := writeSnap(t, other, 256)
	m.AppHash = src.AppHash() // claims the trusted hash
	dst := emptyDB(t)
	r, err := dst.BeginRestore(m, src.AppHash())
	if err != nil {
		t.Fatal(err)
	}
	err = restoreAll(t, r, dir, m)
	if err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("forged snapshot: %v", err)
	}
	if dst.Height() != 0 {
		t.Fatalf("height %d after a refused snapshot", dst.Height())
	}
	n := 0
	dst.Iterate(nil, func([]byte, []byte) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d keys left after a refused snapshot", n)
	}
	// The empty database then takes the honest snapshot.
	dir2, m2 := writeSnap(t, src, 256)
	r2, err := dst.BeginRestore(m2, src.AppHash())
	if err != nil {
		t.Fatal(err)
	}
	if err := restoreAll(t, r2, dir2, m2); err != nil {
		t.Fatal(err)
	}
}

func TestBeginRestoreRefuses(t *testing.T) {
	src := committedDB(t, 10)
	_, m := writeSnap(t, src, 1<<20)
	if _, err := emptyDB(t).BeginRestore(m, []byte("another hash")); err == nil {
		t.Error("snapshot whose app hash is not the trusted one accepted")
	}
	if _, err := src.BeginRestore(m, src.AppHash()); err == nil {
		t.Error("restore into a database with state accepted")
	}
	bad := m
	bad.Chunks = append([]HexBytes{{1, 2}}, m.Chunks[1:]...)
	if _, err := emptyDB(t).BeginRestore(bad, src.AppHash()); err == nil {
		t.Error("metadata with a short chunk hash accepted")
	}
}

func TestRestoreRefusesUnorderedOrMetaKeys(t *testing.T) {
	rec := func(k, v string) []byte {
		var b []byte
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = append(b, byte(len(v)))
		return append(b, v...)
	}
	for name, chunk := range map[string][]byte{
		"unordered": append(rec("b", "1"), rec("a", "2")...),
		"duplicate": append(rec("a", "1"), rec("a", "2")...),
		"meta key":  rec("\x00height", "x"),
		"truncated": rec("abc", "defgh")[:6],
	} {
		m := SnapshotMeta{Height: 1, AppHash: []byte{1}, Chunks: []HexBytes{sha(chunk)}}
		r, err := emptyDB(t).BeginRestore(m, []byte{1})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(0, chunk); err == nil || errors.Is(err, ErrChunkHash) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPruneSnapshots(t *testing.T) {
	dir := t.TempDir()
	for _, h := range []string{"5", "10", "15", ".tmp-123"} {
		if err := os.MkdirAll(filepath.Join(dir, h), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := PruneSnapshots(dir, 2); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != "10,15" {
		t.Errorf("after prune: %v", got)
	}
}

func FuzzSnapshotMeta(f *testing.F) {
	f.Add([]byte(`{"height":3,"app_hash":"01","time":"2026-01-01T00:00:00Z","keys":1,"chunks":["` + strings.Repeat("ab", 32) + `"]}`))
	f.Add([]byte(`{"height":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseSnapshotMeta(b)
		if err != nil {
			return
		}
		if m.Validate() != nil {
			t.Fatal("parsed metadata does not validate")
		}
	})
}

func FuzzRestoreChunk(f *testing.F) {
	f.Add([]byte{1, 'a', 1, 'b'})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, chunk []byte) {
		db, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		m := SnapshotMeta{Height: 1, AppHash: []byte{1}, Chunks: []HexBytes{sha(chunk)}}
		r, err := db.BeginRestore(m, []byte{1})
		if err != nil {
			t.Fatal(err)
		}
		// Any chunk either fails or restores to a state that is not the claimed one:
		// never a panic, never a committed height.
		_ = r.Apply(0, chunk)
		if db.Height() != 0 {
			t.Fatal("a chunk restoring to a wrong app hash committed a height")
		}
	})
}

func sha(b []byte) HexBytes {
	h := sha256.Sum256(b)
	return h[:]
}
