// Package vault keeps each lease's inputs and outputs on the provider's disk encrypted with a per-lease age key, and erases them when the lease ends.
//
// Layout under Config.Dir:
//
//	leases/<id>/in/data/<name>   input, age-encrypted
//	leases/<id>/in/meta/<name>   its size and SHA-256, age-encrypted JSON
//	leases/<id>/out/data/<name>  output, likewise
//	leases/<id>/out/meta/<name>
//	leases/<id>/tmp/             uploads in progress
//
// and under Config.KeyDir (default <Dir>/keys): <id>.key, the lease's X25519
// identity, mode 0600.
//
// Trade-off. The key is held in memory and written to a key file so that a
// restarted daemon can still serve a lease's data: with the default KeyDir the
// key sits on the same disk as the ciphertext, which protects against a copy
// of the data files alone (a backup, a snapshot of the data volume, a support
// bundle) and makes Erase a crypto-shred (once the 32-byte key is gone, blocks
// of ciphertext left behind by the SSD or filesystem are unreadable). It does
// not protect against someone who reads the whole disk while the lease runs,
// nor against root on the host, who can read the plaintext the workload itself
// sees. Put KeyDir on a tmpfs to keep keys off disk entirely, at the price of
// losing every lease's data on reboot.
//
// File names are stored in clear; sizes and hashes are not. Writes are not
// fsynced: a crash may lose an upload in progress or just completed, which the
// tenant repeats.
package vault

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kiln-network/kiln/proof"

	"filippo.io/age"
)

// Sentinel errors callers branch on.
var (
	// ErrTooLarge is returned by PutInput for a stream over its limit; nothing is stored.
	ErrTooLarge = errors.New("too large")
	// ErrNotFound is returned for a file or lease the vault does not hold.
	ErrNotFound = errors.New("not found")
	// ErrBadName is returned for a file name that does not match NamePattern.
	ErrBadName = errors.New("bad file name")
)

// NamePattern is the pattern input and output names must match; "." and ".."
// are refused as well. It keeps names usable as single path elements.
const NamePattern = `^[A-Za-z0-9._-]{1,128}$`

var namePattern = regexp.MustCompile(NamePattern)

// ValidateName checks that name is usable as an input or output name.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w %q: must match %s and not be . or ..", ErrBadName, name, NamePattern)
	}
	return nil
}

// File describes one stored input or output, as hashed in plaintext.
type File struct {
	// Name is the file name (see NamePattern).
	Name string `json:"name"`
	// Size is the plaintext size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the SHA-256 of the plaintext.
	SHA256 [32]byte `json:"-"`
}

// SHA256Hex returns the hash in lower-case hex.
func (f File) SHA256Hex() string { return hex.EncodeToString(f.SHA256[:]) }

// Config configures a vault.
type Config struct {
	// Dir holds the encrypted files. Required.
	Dir string
	// KeyDir holds the per-lease key files; empty means <Dir>/keys. A tmpfs
	// keeps keys off disk (see the package doc).
	KeyDir string
	// Logger receives the vault's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a config with every field but Dir set.
func DefaultConfig() Config { return Config{} }

// Validate checks the config.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("vault: dir: must be set")
	}
	return nil
}

// Vault holds the leases' encrypted files. It is safe for concurrent use.
type Vault struct {
	dir, keyDir string
	log         *slog.Logger

	mu     sync.Mutex
	leases map[uint64]*Lease
}

// Open opens (creating if needed) a vault.
func Open(cfg Config) (*Vault, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.KeyDir == "" {
		cfg.KeyDir = filepath.Join(cfg.Dir, "keys")
	}
	for _, d := range []string{filepath.Join(cfg.Dir, "leases"), cfg.KeyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open vault: create %s: %w", d, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Vault{dir: cfg.Dir, keyDir: cfg.KeyDir, log: log.With("component", "vault"), leases: map[uint64]*Lease{}}, nil
}

func (v *Vault) leaseDir(id uint64) string {
	return filepath.Join(v.dir, "leases", strconv.FormatUint(id, 10))
}
func (v *Vault) keyFile(id uint64) string {
	return filepath.Join(v.keyDir, strconv.FormatUint(id, 10)+".key")
}

// Lease returns the lease's storage, creating its key on first use and
// loading it from the key file after a restart.
func (v *Vault) Lease(id uint64) (*Lease, error) {
	return v.lease(id, true)
}

// Find returns the lease's storage if the vault holds a key for it, and
// ErrNotFound otherwise; it never creates a key.
func (v *Vault) Find(id uint64) (*Lease, error) {
	return v.lease(id, false)
}

func (v *Vault) lease(id uint64, create bool) (*Lease, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if l, ok := v.leases[id]; ok {
		return l, nil
	}
	var ident *age.X25519Identity
	b, err := os.ReadFile(v.keyFile(id))
	switch {
	case err == nil:
		ident, err = age.ParseX25519Identity(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("load key of lease %d: %w", id, err)
		}
	case errors.Is(err, fs.ErrNotExist) && create:
		ident, err = age.GenerateX25519Identity()
		if err != nil {
			return nil, fmt.Errorf("generate key of lease %d: %w", id, err)
		}
		if err := writeFileAtomic(v.keyFile(id), []byte(ident.String()+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write key of lease %d: %w", id, err)
		}
		v.log.Info("lease key created", "lease", id)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("lease %d: %w", id, ErrNotFound)
	default:
		return nil, fmt.Errorf("load key of lease %d: %w", id, err)
	}
	dir := v.leaseDir(id)
	for _, d := range []string{"in/data", "in/meta", "out/data", "out/meta", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create vault dir of lease %d: %w", id, err)
		}
	}
	l := &Lease{id: id, dir: dir, ident: ident, log: v.log.With("lease", id)}
	v.leases[id] = l
	return l, nil
}

// Erase removes everything the vault holds for the lease: its key (overwritten
// first) and its files. Erasing a lease the vault does not hold is a no-op.
// Readers already open keep reading what they had open.
func (v *Vault) Erase(id uint64) error {
	v.mu.Lock()
	delete(v.leases, id)
	v.mu.Unlock()
	kf := v.keyFile(id)
	if f, err := os.OpenFile(kf, os.O_WRONLY, 0); err == nil {
		// NB: best effort; on copy-on-write or journaling filesystems the old
		// blocks may survive, which is why the key is small and kept apart.
		if st, err := f.Stat(); err == nil {
			f.Write(make([]byte, st.Size()))
		}
		f.Close()
	}
	if err := os.Remove(kf); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("erase key of lease %d: %w", id, err)
	}
	if err := os.RemoveAll(v.leaseDir(id)); err != nil {
		return fmt.Errorf("erase files of lease %d: %w", id, err)
	}
	v.log.Info("lease erased", "lease", id)
	return nil
}

// Leases lists the leases the vault holds a key for, sorted.
func (v *Vault) Leases() ([]uint64, error) {
	ents, err := os.ReadDir(v.keyDir)
	if err != nil {
		return nil, fmt.Errorf("list vault keys: %w", err)
	}
	var ids []uint64
	for _, e := range ents {
		if s, ok := strings.CutSuffix(e.Name(), ".key"); ok {
			if id, err := strconv.ParseUint(s, 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Lease is one lease's encrypted storage. It is safe for concurrent use;
// writers of one name race and the last to finish wins.
type Lease struct {
	id    uint64
	dir   string
	ident *age.X25519Identity
	log   *slog.Logger
}

// ID returns the lease id.
func (l *Lease) ID() uint64 { return l.id }

const (
	kindIn  = "in"
	kindOut = "out"
)

// PutInput stores r as input name, encrypted, and returns its plaintext size
// and hash. A stream longer than maxBytes (when > 0) fails with ErrTooLarge
// and stores nothing; so does any other error. An input of the same name is
// replaced.
func (l *Lease) PutInput(name string, r io.Reader, maxBytes int64) (File, error) {
	return l.put(kindIn, name, r, maxBytes)
}

// Inputs lists the stored inputs, sorted by name.
func (l *Lease) Inputs() ([]File, error) { return l.list(kindIn) }

// Outputs lists the sealed outputs, sorted by name.
func (l *Lease) Outputs() ([]File, error) { return l.list(kindOut) }

// InputReader returns the decrypted input. The reader fails at the end if
// the ciphertext was truncated or altered.
func (l *Lease) InputReader(name string) (io.ReadCloser, File, error) {
	return l.open(kindIn, name)
}

// OutputReader returns the decrypted output, as InputReader.
func (l *Lease) OutputReader(name string) (io.ReadCloser, File, error) {
	return l.open(kindOut, name)
}

// ReadOutput returns the decrypted output name, read whole, or ErrTooLarge when it is
// over limit bytes (a small index or job description, not a bulk file).
func (l *Lease) ReadOutput(name string, limit int64) ([]byte, error) {
	rc, f, err := l.open(kindOut, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if f.Size > limit {
		return nil, fmt.Errorf("output %s: %d bytes, limit %d: %w", name, f.Size, limit, ErrTooLarge)
	}
	return io.ReadAll(rc)
}

// CopyInputs decrypts every input, sorted by name, and hands it to put (the
// executor's PutInput, just before a workload starts). The reader put gets
// fails at its end, instead of returning io.EOF, unless the plaintext has the
// size and hash stored with the input, so that put never commits an input
// that was truncated or altered on disk.
func (l *Lease) CopyInputs(put func(name string, r io.Reader) error) error {
	files, err := l.Inputs()
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := l.copyInput(f, put); err != nil {
			return fmt.Errorf("copy input %s of lease %d: %w", f.Name, l.id, err)
		}
	}
	return nil
}

func (l *Lease) copyInput(f File, put func(string, io.Reader) error) error {
	rc, _, err := l.InputReader(f.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	return put(f.Name, &checkedReader{r: rc, h: sha256.New(), want: f})
}

// checkedReader reads r, and at its end checks the size and hash read
// against want.
type checkedReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want File
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if c.n > c.want.Size {
		return n, fmt.Errorf("decrypted more than the stored size %d", c.want.Size)
	}
	if err == io.EOF && (c.n != c.want.Size || [32]byte(c.h.Sum(nil)) != c.want.SHA256) {
		return n, fmt.Errorf("decrypted %d bytes that do not match the stored size %d or hash", c.n, c.want.Size)
	}
	return n, err
}

// SealResult is what Seal stored and what it left out.
type SealResult struct {
	// Files are the sealed outputs, sorted by name.
	Files []File
	// Skipped are the entries of the out dir that were not sealed (directories,
	// links, named pipes, devices, names outside NamePattern), with why, sorted by
	// name; at most MaxSkippedListed of them.
	Skipped []Skipped
	// SkippedTotal counts every entry skipped, listed or not.
	SkippedTotal int
}

// Skipped is an entry of a workload's out dir that Seal did not seal.
type Skipped struct {
	// Name is the entry's name as the workload wrote it (any bytes but "/").
	Name string
	// Reason says why, e.g. "symbolic link" or "directory".
	Reason string
}

// MaxSkippedListed bounds SealResult.Skipped: a workload that leaves a million
// files of the wrong kind is told how many, not sent every name.
const MaxSkippedListed = 100

// Seal encrypts every regular file at the top of outs (the executor's
// Outputs) into the vault as an output, hashing it on the way.
// Subdirectories, links and other special files are skipped and reported (a
// workload returns a tree as an archive); an output larger than maxBytes (when
// > 0) fails the seal. The plaintext in outs is the caller's to remove.
func (l *Lease) Seal(outs fs.ReadDirFS, maxBytes int64) (SealResult, error) {
	var res SealResult
	ents, err := outs.ReadDir(".")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("seal outputs of lease %d: list: %w", l.id, err)
	}
	skip := func(name, why string) {
		res.SkippedTotal++
		if len(res.Skipped) < MaxSkippedListed {
			res.Skipped = append(res.Skipped, Skipped{Name: name, Reason: why})
		}
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range ents { // sorted, so Skipped is sorted too
		name := e.Name()
		if !e.Type().IsRegular() {
			skip(name, EntryKind(e.Type())+": only regular files are outputs")
			continue
		}
		if ValidateName(name) != nil {
			skip(name, "name outside "+NamePattern)
			continue
		}
		f, err := l.sealOne(outs, name, maxBytes)
		if err != nil {
			return res, fmt.Errorf("seal output %s of lease %d: %w", name, l.id, err)
		}
		res.Files = append(res.Files, f)
	}
	if res.SkippedTotal > 0 {
		l.log.Warn("outputs skipped", "count", res.SkippedTotal, "listed", res.Skipped)
	}
	return res, nil
}

// EntryKind names the kind of a directory entry of type t ("directory",
// "symbolic link", "named pipe (FIFO)", ...), for messages.
func EntryKind(t fs.FileMode) string {
	switch {
	case t.IsRegular():
		return "regular file"
	case t.IsDir():
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func (l *Lease) sealOne(outs fs.FS, name string, maxBytes int64) (File, error) {
	src, err := outs.Open(name)
	if err != nil {
		return File{}, err
	}
	defer src.Close()
	if st, err := src.Stat(); err != nil || !st.Mode().IsRegular() {
		return File{}, fmt.Errorf("not a regular file")
	}
	return l.put(kindOut, name, src, maxBytes)
}

// meta is what a meta file holds, encrypted.
type meta struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (l *Lease) put(kind, name string, r io.Reader, maxBytes int64) (File, error) {
	if err := ValidateName(name); err != nil {
		return File{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), kind+"-*")
	if err != nil {
		return File{}, fmt.Errorf("store %s %s of lease %d: %w", kind, name, l.id, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	f, err := l.encryptTo(tmp, name, r, maxBytes)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store %s %s of lease %d: %w", kind, name, l.id, cerr)
	}
	if err != nil {
		return File{}, err
	}
	mb, err := l.sealMeta(meta{Size: f.Size, SHA256: f.SHA256Hex()})
	if err != nil {
		return File{}, fmt.Errorf("store %s %s of lease %d: meta: %w", kind, name, l.id, err)
	}
	// Data first, then meta: a file without meta is not listed. Temp names
	// start with "~", outside NamePattern, so they never shadow a real name.
	if err := os.Rename(tmp.Name(), filepath.Join(l.dir, kind, "data", name)); err != nil {
		return File{}, fmt.Errorf("store %s %s of lease %d: %w", kind, name, l.id, err)
	}
	if err := writeFileAtomic(filepath.Join(l.dir, kind, "meta", name), mb, 0o600); err != nil {
		return File{}, fmt.Errorf("store %s %s of lease %d: meta: %w", kind, name, l.id, err)
	}
	return f, nil
}

// copyBuf is the copy buffer size: four age chunks per write.
const copyBuf = 256 << 10

func (l *Lease) encryptTo(dst io.Writer, name string, r io.Reader, maxBytes int64) (File, error) {
	bw := bufio.NewWriterSize(dst, copyBuf)
	w, err := age.Encrypt(bw, l.ident.Recipient())
	if err != nil {
		return File{}, fmt.Errorf("encrypt %s of lease %d: %w", name, l.id, err)
	}
	h := sha256.New()
	src := r
	if maxBytes > 0 {
		src = io.LimitReader(r, maxBytes+1)
	}
	n, err := CopyHashed(w, h, src)
	if err != nil {
		return File{}, fmt.Errorf("store %s of lease %d: %w", name, l.id, err)
	}
	if maxBytes > 0 && n > maxBytes {
		return File{}, fmt.Errorf("store %s of lease %d: %w: over the limit of %d bytes", name, l.id, ErrTooLarge, maxBytes)
	}
	if err := w.Close(); err != nil {
		return File{}, fmt.Errorf("encrypt %s of lease %d: %w", name, l.id, err)
	}
	if err := bw.Flush(); err != nil {
		return File{}, fmt.Errorf("store %s of lease %d: %w", name, l.id, err)
	}
	return File{Name: name, Size: n, SHA256: [32]byte(h.Sum(nil))}, nil
}

// CopyHashed copies src to dst and, when h is not nil, into h. Reading,
// hashing and writing run as three stages over a ring of buffers, so that on
// a machine with spare cores they overlap: on the provider, TLS decryption,
// SHA-256 and age encryption of an upload; on the tenant, TLS decryption and
// SHA-256 of a download. src is read only by the calling goroutine, and no
// stage touches src or dst once CopyHashed has returned. It returns the bytes
// written to dst.
func CopyHashed(dst io.Writer, h hash.Hash, src io.Reader) (int64, error) {
	const nbuf = 4
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, copyBuf)
	}
	toHash := make(chan []byte, nbuf)
	toWrite := make(chan []byte, nbuf)
	stop := make(chan struct{}) // closed by the writer on a write error
	var (
		written int64
		werr    error
		wg      sync.WaitGroup
	)
	wg.Add(2)
	go func() { // hash, then pass on
		defer wg.Done()
		defer close(toWrite)
		for b := range toHash {
			if h != nil {
				h.Write(b)
			}
			toWrite <- b
		}
	}()
	go func() { // write, then recycle
		defer wg.Done()
		for b := range toWrite {
			if werr == nil {
				var k int
				k, werr = dst.Write(b)
				written += int64(k)
				if werr == nil && k < len(b) {
					werr = io.ErrShortWrite
				}
				if werr != nil {
					close(stop)
				}
			}
			free <- b[:cap(b)]
		}
	}()
	var rerr error
read:
	for {
		var b []byte
		select {
		case b = <-free:
		case <-stop:
			break read
		}
		k, err := io.ReadFull(src, b)
		if k > 0 {
			toHash <- b[:k]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(toHash)
	wg.Wait()
	if werr != nil {
		return written, werr
	}
	return written, rerr
}

func (l *Lease) sealMeta(m meta) ([]byte, error) {
	plain, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf strings.Builder
	w, err := age.Encrypt(&buf, l.ident.Recipient())
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return []byte(buf.String()), nil
}

func (l *Lease) readMeta(kind, name string) (File, error) {
	f, err := os.Open(filepath.Join(l.dir, kind, "meta", name))
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, fmt.Errorf("%s %s of lease %d: %w", kind, name, l.id, ErrNotFound)
	}
	if err != nil {
		return File{}, fmt.Errorf("read meta of %s %s of lease %d: %w", kind, name, l.id, err)
	}
	defer f.Close()
	r, err := age.Decrypt(f, l.ident)
	if err != nil {
		return File{}, fmt.Errorf("decrypt meta of %s %s of lease %d: %w", kind, name, l.id, err)
	}
	var m meta
	if err := json.NewDecoder(io.LimitReader(r, 4096)).Decode(&m); err != nil {
		return File{}, fmt.Errorf("decode meta of %s %s of lease %d: %w", kind, name, l.id, err)
	}
	sum, err := hex.DecodeString(m.SHA256)
	if err != nil || len(sum) != 32 {
		return File{}, fmt.Errorf("decode meta of %s %s of lease %d: bad sha256 %q", kind, name, l.id, m.SHA256)
	}
	return File{Name: name, Size: m.Size, SHA256: [32]byte(sum)}, nil
}

func (l *Lease) list(kind string) ([]File, error) {
	ents, err := os.ReadDir(filepath.Join(l.dir, kind, "meta"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s of lease %d: %w", kind, l.id, err)
	}
	files := make([]File, 0, len(ents))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "~tmp-") {
			continue
		}
		f, err := l.readMeta(kind, e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // erased or replaced meanwhile
		}
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil // ReadDir sorts by name
}

func (l *Lease) open(kind, name string) (io.ReadCloser, File, error) {
	if err := ValidateName(name); err != nil {
		return nil, File{}, err
	}
	fi, err := l.readMeta(kind, name)
	if err != nil {
		return nil, File{}, err
	}
	f, err := os.Open(filepath.Join(l.dir, kind, "data", name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, File{}, fmt.Errorf("%s %s of lease %d: %w", kind, name, l.id, ErrNotFound)
	}
	if err != nil {
		return nil, File{}, fmt.Errorf("open %s %s of lease %d: %w", kind, name, l.id, err)
	}
	r, err := age.Decrypt(bufio.NewReaderSize(f, copyBuf), l.ident)
	if err != nil {
		f.Close()
		return nil, File{}, fmt.Errorf("decrypt %s %s of lease %d: %w", kind, name, l.id, err)
	}
	return readCloser{Reader: r, Closer: f}, fi, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// writeFileAtomic writes b to a temp file beside path and renames it over path.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), "~tmp-"+hex.EncodeToString(rnd[:]))
	if err := os.WriteFile(tmp, b, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Items returns files as the named items whose Merkle root (proof.ItemsRoot) a provider
// commits on chain for a lease's outputs.
func Items(files []File) []proof.Item {
	out := make([]proof.Item, len(files))
	for i, f := range files {
		out[i] = proof.Item{Name: f.Name, SHA256: f.SHA256}
	}
	return out
}
