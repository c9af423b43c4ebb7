package vault

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-network/kiln/provider/executor/hostdir"
)

func mustOpen(tb testing.TB) (*Vault, string) {
	tb.Helper()
	dir := tb.TempDir()
	v, err := Open(Config{Dir: dir})
	if err != nil {
		tb.Fatalf("Open() = %v", err)
	}
	return v, dir
}

// walkFiles returns every regular file under dir with its content.
func walkFiles(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = b
		}
		return nil
	})
	return out
}

func TestPutInputEncryptedAndHashed(t *testing.T) {
	v, dir := mustOpen(t)
	l, err := v.Lease(7)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte("tenant secret payload "), 5000)
	f, err := l.PutInput("data.bin", bytes.NewReader(secret), 1<<20)
	if err != nil {
		t.Fatalf("PutInput() = %v", err)
	}
	if want := sha256.Sum256(secret); f.SHA256 != want || f.Size != int64(len(secret)) {
		t.Errorf("PutInput() = %+v, want size %d sha %x", f, len(secret), want)
	}
	for p, b := range walkFiles(t, dir) {
		if bytes.Contains(b, []byte("tenant secret")) {
			t.Errorf("%s holds plaintext", p)
		}
		if bytes.Contains(b, []byte(f.SHA256Hex())) {
			t.Errorf("%s holds the plaintext hash", p)
		}
		if strings.HasSuffix(p, ".key") {
			st, _ := os.Stat(p)
			if st.Mode().Perm() != 0o600 {
				t.Errorf("key file %s mode %v, want 0600", p, st.Mode().Perm())
			}
		}
	}
	rc, got, err := l.InputReader("data.bin")
	if err != nil {
		t.Fatalf("InputReader() = %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(b, secret) || got != f {
		t.Errorf("InputReader() = %d bytes, %+v, %v; want the input back", len(b), got, err)
	}
	files, err := l.Inputs()
	if err != nil || len(files) != 1 || files[0] != f {
		t.Errorf("Inputs() = %+v, %v, want [%+v]", files, err, f)
	}
}

func TestPutInputLimits(t *testing.T) {
	v, dir := mustOpen(t)
	l, _ := v.Lease(1)
	_, err := l.PutInput("big", bytes.NewReader(make([]byte, 1001)), 1000)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("PutInput(1001 bytes, max 1000) = %v, want ErrTooLarge", err)
	}
	if _, err := l.PutInput("exact", bytes.NewReader(make([]byte, 1000)), 1000); err != nil {
		t.Fatalf("PutInput(1000 bytes, max 1000) = %v", err)
	}
	files, _ := l.Inputs()
	if len(files) != 1 || files[0].Name != "exact" {
		t.Errorf("Inputs() = %+v, want only exact", files)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "leases", "1", "tmp")); len(tmp) != 0 {
		t.Errorf("tmp dir holds %d files after a refused upload", len(tmp))
	}
	for _, name := range []string{"", ".", "..", "../x", "a/b", "x\x00", strings.Repeat("a", 129), "a b"} {
		if _, err := l.PutInput(name, strings.NewReader("x"), 0); !errors.Is(err, ErrBadName) {
			t.Errorf("PutInput(%q) = %v, want ErrBadName", name, err)
		}
	}
}

// CopyInputs hands over every input, checked against its stored size and
// hash: an input whose ciphertext was swapped for another's (valid, under the
// same key) fails at its end.
func TestCopyInputs(t *testing.T) {
	v, dir := mustOpen(t)
	l, _ := v.Lease(4)
	want := map[string]string{"a.txt": "hello", "b.txt": "a longer input"}
	for n, c := range want {
		if _, err := l.PutInput(n, strings.NewReader(c), 0); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	put := func(name string, r io.Reader) error {
		b, err := io.ReadAll(r)
		got[name] = string(b)
		return err
	}
	if err := l.CopyInputs(put); err != nil || !maps.Equal(got, want) {
		t.Fatalf("CopyInputs() = %v, gave %q; want %q", err, got, want)
	}
	data := filepath.Join(dir, "leases", "4", "in", "data")
	b, err := os.ReadFile(filepath.Join(data, "b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "a.txt"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.CopyInputs(put); err == nil || !strings.Contains(err.Error(), "a.txt") {
		t.Errorf("CopyInputs() with a.txt's ciphertext swapped = %v, want a.txt refused", err)
	}
}

func TestSealErase(t *testing.T) {
	v, dir := mustOpen(t)
	l, _ := v.Lease(3)
	l.PutInput("a.txt", strings.NewReader("hello"), 0)
	out := t.TempDir()
	os.MkdirAll(filepath.Join(out, "sub"), 0o755)
	os.WriteFile(filepath.Join(out, "y.txt"), []byte("HELLO"), 0o644)
	os.WriteFile(filepath.Join(out, "sub", "z"), []byte("nested"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(out, "link"))
	if err := syscall.Mkfifo(filepath.Join(out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "bad name.txt"), []byte("x"), 0o644)
	res, err := l.Seal(hostdir.FS(out), 0)
	if err != nil {
		t.Fatalf("Seal() = %v", err)
	}
	if len(res.Files) != 1 || res.Files[0].Name != "y.txt" || res.Files[0].SHA256 != sha256.Sum256([]byte("HELLO")) {
		t.Errorf("Seal() files = %+v, want y.txt hashed", res.Files)
	}
	want := []Skipped{
		{"bad name.txt", "name outside " + NamePattern},
		{"fifo", "named pipe (FIFO): only regular files are outputs"},
		{"link", "symbolic link: only regular files are outputs"},
		{"sub", "directory: only regular files are outputs"},
	}
	if !slices.Equal(res.Skipped, want) || res.SkippedTotal != len(want) {
		t.Errorf("Seal() skipped = %q (%d), want %q", res.Skipped, res.SkippedTotal, want)
	}
	rc, _, err := l.OutputReader("y.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "HELLO" {
		t.Errorf("OutputReader(y.txt) = %q", b)
	}

	// A restarted vault reads the lease back from its key file.
	v2, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := v2.Leases(); len(ids) != 1 || ids[0] != 3 {
		t.Errorf("Leases() = %v, want [3]", ids)
	}
	l2, err := v2.Find(3)
	if err != nil {
		t.Fatalf("Find(3) after restart = %v", err)
	}
	if files, err := l2.Outputs(); err != nil || len(files) != 1 {
		t.Errorf("Outputs() after restart = %+v, %v", files, err)
	}

	if err := v2.Erase(3); err != nil {
		t.Fatalf("Erase() = %v", err)
	}
	if left := walkFiles(t, dir); len(left) != 0 {
		t.Errorf("Erase left %d files: %v", len(left), left)
	}
	if _, err := v2.Find(3); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find(3) after Erase = %v, want ErrNotFound", err)
	}
	if err := v2.Erase(3); err != nil {
		t.Errorf("second Erase() = %v, want nil", err)
	}
}

// A workload that leaves more than MaxSkippedListed entries Seal cannot seal is told
// how many there were, with the first MaxSkippedListed named.
func TestSealSkippedBounded(t *testing.T) {
	v, _ := mustOpen(t)
	l, _ := v.Lease(4)
	out := t.TempDir()
	n := MaxSkippedListed + 5
	for i := range n {
		if err := os.Mkdir(filepath.Join(out, "d"+strconv.Itoa(1000+i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	res, err := l.Seal(hostdir.FS(out), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != MaxSkippedListed || res.SkippedTotal != n || res.Skipped[0].Name != "d1000" {
		t.Fatalf("Seal() listed %d skipped (first %v), total %d; want %d listed from d1000, total %d", len(res.Skipped), res.Skipped[:1], res.SkippedTotal, MaxSkippedListed, n)
	}
}
