package hostdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// Inputs are readable by the task's user, not only the daemon's, even when
// the daemon runs under a strict umask; a link is never written through.
func TestPutFile(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "in")
	if err := PutFile(dir, "a.txt", strings.NewReader("one")); err != nil {
		t.Fatalf("PutFile() = %v", err)
	}
	// A link a task left under the name is replaced, never written through.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if err := PutFile(dir, "b.txt", strings.NewReader("two")); err != nil {
		t.Fatalf("PutFile(over a link) = %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("link target = %q after PutFile, want untouched", b)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("stat %s = %v, %v; want mode 0755", dir, st.Mode(), err)
	}
	for name, want := range map[string]string{"a.txt": "one", "b.txt": "two"} {
		st, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o644 {
			t.Errorf("lstat %s = %v, %v; want a regular file, mode 0644", name, st.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s = %q, want %q", name, b, want)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../x"} {
		if err := PutFile(dir, bad, strings.NewReader("x")); err == nil {
			t.Errorf("PutFile(%q) = nil, want the name refused", bad)
		}
	}
}

func TestFSNeverFollows(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(secret, []byte("host secret"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "out.txt"), []byte("result"), 0o644))
	must(os.Symlink(secret, filepath.Join(dir, "link")))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))

	fsys := FS(dir)
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatalf("ReadDir() = %v", err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name()+":"+e.Type().String())
	}
	want := "fifo:p---------,link:L---------,out.txt:----------,sub:d---------"
	if strings.Join(got, ",") != want {
		t.Errorf("ReadDir() = %s, want %s", strings.Join(got, ","), want)
	}
	if b, err := fs.ReadFile(fsys, "out.txt"); err != nil || string(b) != "result" {
		t.Errorf("ReadFile(out.txt) = %q, %v", b, err)
	}
	// NB: the FIFO has no writer; an open that blocked would hang the test.
	for _, name := range []string{"link", "fifo", "sub", "../" + filepath.Base(dir), "missing"} {
		if b, err := fs.ReadFile(fsys, name); err == nil {
			t.Errorf("ReadFile(%s) = %q, want refused", name, b)
		}
	}
	// A missing dir reads as empty.
	if ents, err := fs.ReadDir(FS(filepath.Join(dir, "none")), "."); err != nil || len(ents) != 0 {
		t.Errorf("ReadDir(missing dir) = %v, %v; want empty", ents, err)
	}
	if err := Clear(dir); err != nil {
		t.Fatalf("Clear() = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("dir after Clear holds %d entries", len(ents))
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret" {
		t.Errorf("link target after Clear = %q, want untouched", b)
	}
	if err := Clear(filepath.Join(dir, "none")); err != nil {
		t.Errorf("Clear(missing dir) = %v, want nil", err)
	}
}

func TestFSConformsToIOFS(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fstest.TestFS(FS(dir), "a", "b.txt"); err != nil {
		t.Errorf("fstest.TestFS: %v", err)
	}
	if _, err := FS(dir).Open("sub/a"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(sub/a) = %v, want ErrInvalid", err)
	}
}
