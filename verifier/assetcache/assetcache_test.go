package assetcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// source serves blobs and counts fetches.
type source struct {
	blobs   map[string][]byte
	fetches int
}

func (s *source) fetch(sum string) func(context.Context, io.Writer) error {
	return func(_ context.Context, w io.Writer) error {
		s.fetches++
		_, err := w.Write(s.blobs[sum])
		return err
	}
}

func (s *source) add(b []byte) string {
	if s.blobs == nil {
		s.blobs = map[string][]byte{}
	}
	k := sum(b)
	s.blobs[k] = b
	return k
}

// A blob is fetched once and placed from the cache after; when the cache is over its
// bound, the least recently used blob goes, not one used since.
func TestPlaceFetchesOnceAndEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "cache"), 250)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Unix(1000, 0)
	c.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	var src source
	a, b, d := src.add(bytes.Repeat([]byte{'a'}, 100)), src.add(bytes.Repeat([]byte{'b'}, 100)), src.add(bytes.Repeat([]byte{'d'}, 100))
	n := 0
	place := func(s string) bool {
		t.Helper()
		n++
		dst := filepath.Join(dir, "job", string(rune('a'+n%26))+"-"+s[:8])
		os.MkdirAll(filepath.Dir(dst), 0o700)
		hit, err := c.Place(context.Background(), s, dst, src.fetch(s))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, src.blobs[s]) {
			t.Fatalf("placed %d bytes, want the blob", len(got))
		}
		return hit
	}
	if place(a) || place(b) || !place(a) {
		t.Fatal("first placements hit, or the second of a missed")
	}
	if src.fetches != 2 {
		t.Fatalf("%d fetches, want 2 (a once, b once)", src.fetches)
	}
	place(d) // 300 bytes > 250: b, the least recently used, goes
	if c.Has(b) || !c.Has(a) || !c.Has(d) || c.Size() != 200 {
		t.Fatalf("after d: has a %v b %v d %v, size %d; want a and d, 200 bytes", c.Has(a), c.Has(b), c.Has(d), c.Size())
	}
	// A reopened cache keeps what is on disk, in the same order of use, and drops an
	// interrupted download.
	os.WriteFile(filepath.Join(c.Dir(), d+"-123.part"), []byte("half"), 0o600)
	c2, err := Open(c.Dir(), 250)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Has(a) || !c2.Has(d) || c2.Size() != 200 {
		t.Fatalf("reopened: size %d, has a %v d %v", c2.Size(), c2.Has(a), c2.Has(d))
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), d+"-123.part")); !os.IsNotExist(err) {
		t.Fatalf("interrupted download left: %v", err)
	}
	// Shrunk: the older of a and d (a, last used before d) goes at open.
	c3, err := Open(c.Dir(), 150)
	if err != nil {
		t.Fatal(err)
	}
	if c3.Has(a) || !c3.Has(d) {
		t.Fatalf("shrunk to 150: has a %v d %v, want d only", c3.Has(a), c3.Has(d))
	}
}

// Content that does not hash to what was asked is refused and not kept; a bad sum is
// refused before anything is fetched.
func TestPlaceRefusesWrongContent(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(filepath.Join(dir, "cache"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := sum([]byte("the pinned scene"))
	dst := filepath.Join(dir, "scene.blend")
	_, err = c.Place(context.Background(), want, dst, func(_ context.Context, w io.Writer) error {
		_, err := w.Write([]byte("another scene"))
		return err
	})
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Place(wrong content) = %v, want ErrHashMismatch", err)
	}
	if c.Has(want) || c.Size() != 0 {
		t.Fatal("wrong content kept")
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("wrong content placed at %s: %v", dst, err)
	}
	if ents, _ := os.ReadDir(c.Dir()); len(ents) != 0 {
		t.Fatalf("cache dir holds %d files after a refused fetch", len(ents))
	}
	if _, err := c.Place(context.Background(), "nope", dst, nil); err == nil {
		t.Fatal("Place with a malformed sum succeeded")
	}
	if _, err := Open(dir, 0); err == nil {
		t.Fatal("Open with size 0 succeeded")
	}
}
