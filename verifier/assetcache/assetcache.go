// Package assetcache keeps a verifier's pinned job inputs (scenes, datasets, scripts)
// on disk by SHA-256, bounded in size, evicting the least recently used, so that
// checking many units of one job downloads its assets once.
package assetcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// ErrHashMismatch: what was fetched does not have the SHA-256 asked for.
var ErrHashMismatch = errors.New("content does not have the pinned sha256")

// Cache is a directory of files named by their hex SHA-256. Safe for concurrent use
// by one process.
type Cache struct {
	dir string
	max int64

	mu    sync.Mutex
	files map[string]*entry // sum → entry
	size  int64
	now   func() time.Time
}

type entry struct {
	size int64
	used time.Time
}

// Open opens (creating) the cache in dir, holding at most maxBytes; files already
// there are kept, their modification time as their last use. A file whose content
// does not match its name is removed.
func Open(dir string, maxBytes int64) (*Cache, error) {
	if maxBytes < 1 {
		return nil, fmt.Errorf("asset cache %s: size %d: must be > 0", dir, maxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	c := &Cache{dir: dir, max: maxBytes, files: map[string]*entry{}, now: time.Now}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("asset cache: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if !validSum(name) || !de.Type().IsRegular() {
			// NB: a download interrupted by a crash leaves a temporary file.
			if filepath.Ext(name) == ".part" {
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		c.files[name] = &entry{size: fi.Size(), used: fi.ModTime()}
		c.size += fi.Size()
	}
	c.mu.Lock()
	c.evictLocked("")
	c.mu.Unlock()
	return c, nil
}

func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Size is the bytes the cache holds now.
func (c *Cache) Size() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.size }

// Has reports whether the cache holds sum.
func (c *Cache) Has(sum string) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.files[sum] != nil }

func (c *Cache) path(sum string) string { return filepath.Join(c.dir, sum) }

// Place puts the content with hex SHA-256 sum at dst (a hard link where the file
// system allows, a copy otherwise), fetching it with fetch only when the cache does
// not hold it. fetch writes the content to w; content that does not hash to sum is
// refused (ErrHashMismatch) and not kept. It returns whether the cache already held
// it. dst must not exist.
func (c *Cache) Place(ctx context.Context, sum, dst string, fetch func(ctx context.Context, w io.Writer) error) (hit bool, err error) {
	if !validSum(sum) {
		return false, fmt.Errorf("asset cache: sha256 %q: must be 64 hex digits", sum)
	}
	c.mu.Lock()
	e := c.files[sum]
	if e != nil {
		e.used = c.now()
	}
	c.mu.Unlock()
	if e != nil {
		// NB: the recency survives a restart through the file's modification time.
		os.Chtimes(c.path(sum), time.Time{}, e.used)
		if err := place(c.path(sum), dst); err == nil {
			return true, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return true, err
		}
		// NB: removed behind our back: fetch it again.
		c.forget(sum)
	}
	if err := c.fill(ctx, sum, fetch); err != nil {
		return false, err
	}
	return false, place(c.path(sum), dst)
}

func (c *Cache) forget(sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.files[sum]; e != nil {
		c.size -= e.size
		delete(c.files, sum)
	}
}

// fill fetches sum into the cache and evicts what no longer fits.
func (c *Cache) fill(ctx context.Context, sum string, fetch func(ctx context.Context, w io.Writer) error) error {
	f, err := os.CreateTemp(c.dir, sum+"-*.part")
	if err != nil {
		return fmt.Errorf("asset cache: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = fetch(ctx, cw)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%w: got %s, want %s (%d bytes)", ErrHashMismatch, got, sum, cw.n)
	}
	// NB: read-only, since job directories hard-link it: a re-execution that wrote
	// to its input would change the cached copy.
	if err := os.Chmod(tmp, 0o400); err != nil {
		return fmt.Errorf("asset cache: %w", err)
	}
	if err := os.Rename(tmp, c.path(sum)); err != nil {
		return fmt.Errorf("asset cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.files[sum]; old != nil {
		c.size -= old.size
	}
	c.files[sum] = &entry{size: cw.n, used: c.now()}
	os.Chtimes(c.path(sum), time.Time{}, c.files[sum].used)
	c.size += cw.n
	c.evictLocked(sum)
	return nil
}

// evictLocked removes the least recently used files, never keep, until the cache
// fits its bound (one file bigger than the bound stays alone until the next fill).
func (c *Cache) evictLocked(keep string) {
	if c.size <= c.max {
		return
	}
	sums := make([]string, 0, len(c.files))
	for s := range c.files {
		sums = append(sums, s)
	}
	sort.Slice(sums, func(i, j int) bool {
		a, b := c.files[sums[i]], c.files[sums[j]]
		if !a.used.Equal(b.used) {
			return a.used.Before(b.used)
		}
		return sums[i] < sums[j]
	})
	for _, s := range sums {
		if c.size <= c.max {
			return
		}
		if s == keep {
			continue
		}
		// NB: a job directory that linked the file keeps its own link.
		os.Remove(c.path(s))
		c.size -= c.files[s].size
		delete(c.files, s)
	}
}

// place links src to dst, or copies it where links cannot be made.
func place(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	} else if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(src); serr != nil {
			return serr
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
