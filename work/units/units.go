// Package units is the format every Kiln workload writes its verifiable output in: the
// files of a job under DIR, DIR/units.json naming each unit's file and SHA-256, and
// DIR/job.json describing the job well enough to re-execute any one unit.
//
// Contracts:
//   - A unit id is 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit.
//   - A unit's file is a clean relative slash path under DIR: no "..", no absolute path,
//     never units.json or job.json themselves. Files are opened through os.Root, so a
//     symlink can NEVER lead a reader outside DIR.
//   - units.json is one JSON object, unit id -> {"file": path, "sha256": 64 lowercase hex};
//     duplicate ids, unknown fields and trailing data are refused, never silently merged.
//   - What a provider commits on chain is Set.Root: proof.ItemsRoot over (unit id,
//     SHA-256), so a unit can be proven with a Merkle path whatever its file is called.
package units

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

// File names inside a job's output directory.
const (
	FileName = "units.json" // the unit index
	JobFile  = "job.json"   // the job description (see Job)
)

// Limits on what a reader accepts: far above any real job (a 4K animation of 10,000 frames
// in 8×8 tiles is 640,000 units), low enough that a hostile index cannot exhaust memory.
const (
	MaxUnits     = 1 << 20
	MaxIndexSize = 256 << 20
	maxIDLen     = 128
	maxPathLen   = 1024
)

// Unit is one entry of units.json.
type Unit struct {
	File   string `json:"file"`   // path under DIR, slash-separated
	SHA256 string `json:"sha256"` // hex SHA-256 of the file's bytes
}

// Set is a job's unit index: unit id -> Unit.
type Set map[string]Unit

// ValidID reports whether id is a well-formed unit id, and why not.
func ValidID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("unit id %.40q: must be 1 to %d characters", id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("unit id %q: must start with a letter or digit", id)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("unit id %q: character %q not allowed (letters, digits, '.', '_', '-')", id, c)
		}
	}
	return nil
}

// ValidPath reports whether p is a file path a unit or asset may have under DIR.
func ValidPath(p string) error {
	if p == "" || len(p) > maxPathLen {
		return fmt.Errorf("file %.40q: must be 1 to %d characters", p, maxPathLen)
	}
	if path.IsAbs(p) || strings.Contains(p, `\`) || filepath.IsAbs(p) {
		return fmt.Errorf("file %q: must be a relative slash path under the job directory", p)
	}
	if path.Clean(p) != p {
		return fmt.Errorf("file %q: not clean (want %q)", p, path.Clean(p))
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "." {
			return fmt.Errorf("file %q: leaves the job directory", p)
		}
		for i := 0; i < len(el); i++ {
			c := el[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("file %q: character %q not allowed", p, c)
			}
		}
	}
	if p == FileName || p == JobFile {
		return fmt.Errorf("file %q: reserved for the job's own index", p)
	}
	return nil
}

// ParseSum decodes a hex SHA-256.
func ParseSum(s string) ([32]byte, error) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, fmt.Errorf("sha256 %.70q: must be 64 hex digits (got %d characters)", s, len(s))
	}
	if strings.ToLower(s) != s {
		return sum, fmt.Errorf("sha256 %q: must be lowercase hex", s)
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, fmt.Errorf("sha256 %q: %v", s, err)
	}
	return sum, nil
}

// Sum is the hex SHA-256 of b, as units.json writes it.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Validate checks every id, path and hash, and that no two units share a file.
func (s Set) Validate() error {
	if len(s) == 0 {
		return errors.New("units: no units")
	}
	if len(s) > MaxUnits {
		return fmt.Errorf("units: %d units, at most %d", len(s), MaxUnits)
	}
	files := make(map[string]string, len(s))
	for _, id := range s.IDs() {
		u := s[id]
		if err := ValidID(id); err != nil {
			return err
		}
		if err := ValidPath(u.File); err != nil {
			return fmt.Errorf("unit %s: %w", id, err)
		}
		if _, err := ParseSum(u.SHA256); err != nil {
			return fmt.Errorf("unit %s: %w", id, err)
		}
		if other, dup := files[u.File]; dup {
			return fmt.Errorf("unit %s: file %q is also unit %s's", id, u.File, other)
		}
		files[u.File] = id
	}
	return nil
}

// IDs returns the unit ids sorted (the order of the committed Merkle tree).
func (s Set) IDs() []string {
	ids := make([]string, 0, len(s))
	for id := range s {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Parse decodes and validates a units.json document.
func Parse(data []byte) (Set, error) {
	if len(data) > MaxIndexSize {
		return nil, fmt.Errorf("units.json: %d bytes, at most %d", len(data), MaxIndexSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("units.json: must be one JSON object of unit id -> {\"file\", \"sha256\"}")
	}
	s := Set{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("units.json: %w", err)
		}
		id := tok.(string) // object keys are always strings
		if _, dup := s[id]; dup {
			return nil, fmt.Errorf("units.json: unit %q appears twice", id)
		}
		if len(s) >= MaxUnits {
			return nil, fmt.Errorf("units.json: more than %d units", MaxUnits)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("units.json: unit %q: %w", id, err)
		}
		var u Unit
		ud := json.NewDecoder(bytes.NewReader(raw))
		ud.DisallowUnknownFields()
		if err := ud.Decode(&u); err != nil {
			return nil, fmt.Errorf("units.json: unit %q: %w", id, err)
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return nil, fmt.Errorf("units.json: unit %q: null", id)
		}
		s[id] = u
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("units.json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("units.json: data after the object")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("units.json: %w", err)
	}
	return s, nil
}

// Marshal encodes s as units.json (ids sorted, one unit per line).
func (s Set) Marshal() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, id := range s.IDs() {
		k, _ := json.Marshal(id)
		v, _ := json.Marshal(s[id])
		b.WriteString("  ")
		b.Write(k)
		b.WriteString(": ")
		b.Write(v)
		if i < len(s)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// Read reads and validates DIR/units.json.
func Read(dir string) (Set, error) {
	data, err := readFile(dir, FileName, MaxIndexSize)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Write validates s and writes it to DIR/units.json atomically.
func (s Set) Write(dir string) error {
	b, err := s.Marshal()
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, FileName), err)
	}
	return writeFileAtomic(dir, FileName, b)
}

// Put writes data to DIR/file and records it as unit id. An id already in s is refused.
func (s Set) Put(dir, id, file string, data []byte) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if err := ValidPath(file); err != nil {
		return fmt.Errorf("unit %s: %w", id, err)
	}
	if _, dup := s[id]; dup {
		return fmt.Errorf("unit %s: already written", id)
	}
	if err := writeFileAtomic(dir, file, data); err != nil {
		return fmt.Errorf("unit %s: %w", id, err)
	}
	s[id] = Unit{File: file, SHA256: Sum(data)}
	return nil
}

// Load returns unit id's bytes from dir, refusing a file whose hash is not the one in s
// (ErrHashMismatch) or that would lie outside dir.
func (s Set) Load(dir, id string) ([]byte, error) {
	u, ok := s[id]
	if !ok {
		return nil, fmt.Errorf("unit %q: %w", id, ErrUnknownUnit)
	}
	data, err := readFile(dir, u.File, 1<<40)
	if err != nil {
		return nil, fmt.Errorf("unit %s: %w", id, err)
	}
	if got := Sum(data); got != u.SHA256 {
		return nil, fmt.Errorf("unit %s: %s has sha256 %s, units.json says %s: %w", id, u.File, got, u.SHA256, ErrHashMismatch)
	}
	return data, nil
}

// Errors callers branch on.
var (
	ErrUnknownUnit  = errors.New("no such unit")
	ErrHashMismatch = errors.New("file does not match its recorded sha256")
)

// readFile reads dir/name through os.Root, so neither ".." nor a symlink leaves dir.
func readFile(dir, name string, limit int64) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open job directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	return data, nil
}

// tmpSeq numbers writeFileAtomic's temporary files within this process.
var tmpSeq atomic.Uint64

// writeFileAtomic writes dir/name (creating parent directories inside dir) through a
// temporary file and a rename, so a crash never leaves a half-written unit. Writers of
// the same file at once (the ranks of a data-parallel run sharing one directory) each
// use a temporary file of their own.
func writeFileAtomic(dir, name string, data []byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open job directory: %w", err)
	}
	defer root.Close()
	rel := filepath.FromSlash(name)
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	tmp := rel + ".tmp-" + strconv.FormatUint(tmpSeq.Add(1), 10) + "-" + strconv.Itoa(os.Getpid())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
