package store

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
)

// State sync.
//
// A snapshot is the whole hashed state of one committed height, cut into chunks: each
// chunk is a run of (uvarint len(key), key, uvarint len(value), value) records, keys in
// strictly increasing order across the whole snapshot, meta keys (0x00...) never
// included. The snapshot's metadata lists the SHA-256 of every chunk, so a node that
// restores one checks each chunk as it arrives (a corrupted chunk is refused and fetched
// again, from another peer if CometBFT has one) and, at the end, that the LtHash of the
// restored keys equals the app hash of the height, which the restoring node's light
// client has verified against the validators' signatures. A snapshot that restores to
// any other state is refused whole.
//
// Snapshots live in DIR/<height>/ (meta.json and chunk-NNNNNN files), written into a
// temporary directory and renamed, so a crash leaves either a whole snapshot or none.

// SnapshotFormat is the chunk format written and understood; a snapshot in another
// format is refused.
const SnapshotFormat uint32 = 1

// DefaultChunkSize is the size a chunk is cut at (a chunk may be larger by one record).
const DefaultChunkSize = 4 << 20

// MaxChunkSize bounds a chunk a restoring node accepts, and a record in it.
const MaxChunkSize = 64 << 20

// maxChunks bounds the chunk count a snapshot's metadata may claim.
const maxChunks = 1 << 20

// SnapshotMeta describes a snapshot: its height, the app hash its state hashes to, the
// block time recorded with that height, and the SHA-256 of each chunk in order.
type SnapshotMeta struct {
	Height  int64      `json:"height"`
	AppHash HexBytes   `json:"app_hash"`
	Time    time.Time  `json:"time"`
	Keys    uint64     `json:"keys"`
	Chunks  []HexBytes `json:"chunks"`
}

// HexBytes is a byte string written in JSON as hex.
type HexBytes []byte

// MarshalJSON writes b as a hex string.
func (b HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(b)) }

// UnmarshalJSON reads a hex string.
func (b *HexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not hex: %q", s)
	}
	*b = v
	return nil
}

// Validate checks metadata received from a peer before anything is restored from it.
func (m SnapshotMeta) Validate() error {
	switch {
	case m.Height <= 0:
		return fmt.Errorf("snapshot height %d: must be positive", m.Height)
	case len(m.AppHash) == 0:
		return errors.New("snapshot has no app hash")
	case len(m.Chunks) == 0:
		return errors.New("snapshot has no chunks")
	case len(m.Chunks) > maxChunks:
		return fmt.Errorf("snapshot claims %d chunks, more than %d", len(m.Chunks), maxChunks)
	}
	for i, c := range m.Chunks {
		if len(c) != sha256.Size {
			return fmt.Errorf("snapshot chunk %d hash is %d bytes, want %d", i, len(c), sha256.Size)
		}
	}
	return nil
}

// Hash is the snapshot's identity as CometBFT compares snapshots between peers: the
// SHA-256 of its canonical metadata.
func (m SnapshotMeta) Hash() []byte {
	b, _ := json.Marshal(m)
	h := sha256.Sum256(b)
	return h[:]
}

// ParseSnapshotMeta decodes and validates metadata (from a peer or from disk).
func ParseSnapshotMeta(b []byte) (SnapshotMeta, error) {
	var m SnapshotMeta
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return SnapshotMeta{}, fmt.Errorf("snapshot metadata: %w", err)
	}
	if err := m.Validate(); err != nil {
		return SnapshotMeta{}, err
	}
	return m, nil
}

// WriteSnapshot writes the state of view into dir/<height>/, cut into chunks of about
// chunkSize bytes, and returns its metadata. It reads only the View, so blocks go on
// committing while it runs.
func WriteSnapshot(view *View, dir string, chunkSize int) (SnapshotMeta, error) {
	if chunkSize <= 0 || chunkSize > MaxChunkSize {
		return SnapshotMeta{}, fmt.Errorf("snapshot chunk size %d: must be in 1..%d", chunkSize, MaxChunkSize)
	}
	if view.Height() <= 0 {
		return SnapshotMeta{}, errors.New("snapshot of an empty state: nothing is committed yet")
	}
	final := filepath.Join(dir, strconv.FormatInt(view.Height(), 10))
	if _, err := os.Stat(final); err == nil {
		return ReadSnapshotMeta(final)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SnapshotMeta{}, err
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return SnapshotMeta{}, err
	}
	defer os.RemoveAll(tmp)
	m := SnapshotMeta{Height: view.Height(), AppHash: bytes.Clone(view.AppHash()), Time: view.BlockTime()}
	var buf bytes.Buffer
	flush := func() error {
		if buf.Len() == 0 {
			return nil
		}
		h := sha256.Sum256(buf.Bytes())
		name := filepath.Join(tmp, chunkName(len(m.Chunks)))
		if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
			return err
		}
		m.Chunks = append(m.Chunks, h[:])
		buf.Reset()
		return nil
	}
	var werr error
	view.Iterate(nil, func(k, v []byte) bool {
		buf.Write(binary.AppendUvarint(nil, uint64(len(k))))
		buf.Write(k)
		buf.Write(binary.AppendUvarint(nil, uint64(len(v))))
		buf.Write(v)
		m.Keys++
		if buf.Len() >= chunkSize {
			werr = flush()
		}
		return werr == nil
	})
	if werr == nil {
		werr = flush()
	}
	if werr != nil {
		return SnapshotMeta{}, fmt.Errorf("write snapshot at height %d: %w", m.Height, werr)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return SnapshotMeta{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), mb, 0o600); err != nil {
		return SnapshotMeta{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return SnapshotMeta{}, err
	}
	return m, nil
}

func chunkName(i int) string { return fmt.Sprintf("chunk-%06d", i) }

// ReadSnapshotMeta reads the metadata of the snapshot in dir (DIR/<height>).
func ReadSnapshotMeta(dir string) (SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return SnapshotMeta{}, err
	}
	return ParseSnapshotMeta(b)
}

// ListSnapshots returns the snapshots in dir, newest first; directories that are not
// whole snapshots are skipped.
func ListSnapshots(dir string) ([]SnapshotMeta, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotMeta
	for _, e := range ents {
		if _, err := strconv.ParseInt(e.Name(), 10, 64); err != nil || !e.IsDir() {
			continue
		}
		m, err := ReadSnapshotMeta(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b SnapshotMeta) int { return cmp.Compare(b.Height, a.Height) })
	return out, nil
}

// LoadSnapshotChunk returns chunk index of the snapshot at height in dir.
func LoadSnapshotChunk(dir string, height int64, index int) ([]byte, error) {
	if index < 0 || index >= maxChunks {
		return nil, fmt.Errorf("snapshot chunk %d out of range", index)
	}
	f, err := os.Open(filepath.Join(dir, strconv.FormatInt(height, 10), chunkName(index)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxChunkSize+1))
}

// PruneSnapshots removes all but the keep newest snapshots in dir (and any temporary
// directory a crash left behind).
func PruneSnapshots(dir string, keep int) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var heights []int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
			continue
		}
		if h, err := strconv.ParseInt(e.Name(), 10, 64); err == nil {
			heights = append(heights, h)
		}
	}
	slices.Sort(heights)
	for len(heights) > keep {
		if err := os.RemoveAll(filepath.Join(dir, strconv.FormatInt(heights[0], 10))); err != nil {
			return err
		}
		heights = heights[1:]
	}
	return nil
}

// ErrChunkHash is returned (wrapped) for a chunk whose SHA-256 is not the one its
// snapshot's metadata lists: the chunk must be fetched again.
var ErrChunkHash = errors.New("snapshot chunk does not match its hash in the snapshot metadata")

// Restore is a snapshot being restored into an empty DB, chunk by chunk.
type Restore struct {
	d       *DB
	meta    SnapshotMeta
	appHash []byte
	next    int
	lastKey []byte
	acc     LtHash
	keys    uint64
}

// BeginRestore starts restoring the snapshot meta into d, which must be empty. appHash
// is the app hash the restoring node trusts for meta.Height (from its light client);
// the restored state must hash to it.
func (d *DB) BeginRestore(meta SnapshotMeta, appHash []byte) (*Restore, error) {
	if err := meta.Validate(); err != nil {
		return nil, err
	}
	if d.Height() != 0 {
		return nil, fmt.Errorf("restore snapshot: the state database is already at height %d", d.Height())
	}
	if !bytes.Equal(meta.AppHash, appHash) {
		return nil, fmt.Errorf("snapshot at height %d claims app hash %X, the trusted header says %X", meta.Height, []byte(meta.AppHash), appHash)
	}
	empty := true
	iterate(d.db, nil, func([]byte, []byte) bool { empty = false; return false })
	if !empty {
		return nil, errors.New("restore snapshot: the state database holds keys but no height (a failed restore?); remove it first")
	}
	return &Restore{d: d, meta: meta, appHash: bytes.Clone(appHash)}, nil
}

// Next returns the index of the chunk the restore needs next.
func (r *Restore) Next() int { return r.next }

// Done reports whether every chunk is applied and the state committed.
func (r *Restore) Done() bool { return r.next == len(r.meta.Chunks) }

// Apply checks and writes chunk index, which must be the next one. After the last
// chunk it checks the whole state against the trusted app hash and commits the height;
// on a mismatch it removes what it wrote.
func (r *Restore) Apply(index int, chunk []byte) error {
	if r.Done() {
		return errors.New("restore snapshot: every chunk is already applied")
	}
	if index != r.next {
		return fmt.Errorf("restore snapshot: chunk %d arrived, chunk %d is next", index, r.next)
	}
	if len(chunk) > MaxChunkSize {
		return fmt.Errorf("%w: chunk %d is over %d bytes", ErrChunkHash, index, MaxChunkSize)
	}
	if h := sha256.Sum256(chunk); !bytes.Equal(h[:], r.meta.Chunks[index]) {
		return fmt.Errorf("%w: chunk %d hashes to %X", ErrChunkHash, index, h[:8])
	}
	b := r.d.db.NewBatch()
	defer b.Close()
	rest := chunk
	for len(rest) > 0 {
		k, v, n, err := readRecord(rest)
		if err != nil {
			return fmt.Errorf("restore snapshot: chunk %d: %w", index, err)
		}
		rest = rest[n:]
		if bytes.HasPrefix(k, MetaPrefix) {
			return fmt.Errorf("restore snapshot: chunk %d holds a meta key %q", index, k)
		}
		if r.lastKey != nil && bytes.Compare(k, r.lastKey) <= 0 {
			return fmt.Errorf("restore snapshot: chunk %d: key %q is not after %q", index, k, r.lastKey)
		}
		r.lastKey = k
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		r.acc.Add(k, v)
		r.keys++
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("restore snapshot: write chunk %d: %w", index, err)
	}
	r.next++
	if !r.Done() {
		return nil
	}
	if sum := r.acc.Sum(); !bytes.Equal(sum, r.appHash) || r.keys != r.meta.Keys {
		r.wipe()
		return fmt.Errorf("restore snapshot: the restored state (%d keys) hashes to %X, the trusted app hash at height %d is %X", r.keys, sum, r.meta.Height, r.appHash)
	}
	return r.d.Commit(&Pending{Height: r.meta.Height, Time: r.meta.Time, AppHash: r.appHash, acc: r.acc, cache: NewCache(r.d)})
}

// Abort removes what a restore wrote, leaving the database empty for another snapshot.
func (r *Restore) Abort() {
	if !r.Done() || r.d.Height() == 0 {
		r.wipe()
	}
}

func (r *Restore) wipe() {
	// NB: an empty database has no meta keys yet, so every key here is the restore's.
	b := r.d.db.NewBatch()
	defer b.Close()
	var err error
	iterate(r.d.db, nil, func(k, _ []byte) bool {
		err = b.Delete(k, nil)
		return err == nil
	})
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	if err != nil {
		panic(fmt.Sprintf("state db: remove a refused snapshot: %v", err))
	}
	r.next, r.lastKey, r.acc, r.keys = 0, nil, LtHash{}, 0
}

// readRecord reads one (key, value) record and returns how many bytes it took.
func readRecord(b []byte) (key, value []byte, n int, err error) {
	kl, a := binary.Uvarint(b)
	if a <= 0 || kl > uint64(len(b)-a) || kl == 0 {
		return nil, nil, 0, errors.New("malformed key length")
	}
	key = b[a : a+int(kl)]
	n = a + int(kl)
	vl, c := binary.Uvarint(b[n:])
	if c <= 0 || vl > uint64(len(b)-n-c) {
		return nil, nil, 0, fmt.Errorf("malformed value length after key %q", key)
	}
	n += c
	value = b[n : n+int(vl)]
	return bytes.Clone(key), bytes.Clone(value), n + int(vl), nil
}
