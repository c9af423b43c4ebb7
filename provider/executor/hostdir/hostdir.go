// Package hostdir keeps a lease's inputs and outputs in directories of this host, for executors whose tasks see host directories (process, docker's bind-mounted volumes).
package hostdir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// checkName refuses what is not one path element.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("file name %q: must be one path element", name)
	}
	return nil
}

// PutFile writes r to dir/name (dir created if needed). dir and the file are
// readable by every user whatever the umask (0755, 0644): tasks run as users
// of their own, not the daemon's; dir's parents keep other host users out. A
// link or special file already at dir/name is removed, never written through;
// on error no partial file is left.
func PutFile(dir, name string, r io.Reader) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, name)
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	// NB: O_EXCL|O_NOFOLLOW: never write through a link a task left there.
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(dst)
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}

// Clear removes everything under dir, keeping dir; a missing dir is no error.
func Clear(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// FS returns the files at the top of dir as a file system that never follows
// a link: ReadDir reports links and special files as such (lstat), and Open
// opens regular files only, with O_NOFOLLOW. A missing dir reads as empty.
// Subdirectories are listed but not opened: outputs are the regular files at
// the top.
func FS(dir string) fs.ReadDirFS { return dirFS(dir) }

type dirFS string

func (d dirFS) Open(name string) (fs.File, error) {
	if name == "." {
		return &rootDir{d: d}, nil
	}
	if err := checkName(name); err != nil || !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := os.OpenFile(filepath.Join(string(d), name), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())}
	}
	return f, nil
}

func (d dirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	ents, err := os.ReadDir(string(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ents, err // NB: os.ReadDir sorts by name and reports types from lstat
}

// rootDir is the root of a dirFS opened as a file.
type rootDir struct {
	d    dirFS
	read bool
	left []fs.DirEntry
}

func (r *rootDir) Stat() (fs.FileInfo, error) { return rootInfo{}, nil }
func (r *rootDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: errors.New("is a directory")}
}
func (r *rootDir) Close() error { return nil }
func (r *rootDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !r.read {
		ents, err := r.d.ReadDir(".")
		if err != nil {
			return nil, err
		}
		r.read, r.left = true, ents
	}
	if n <= 0 {
		out := r.left
		r.left = nil
		return out, nil
	}
	if len(r.left) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(r.left))
	out := r.left[:n]
	r.left = r.left[n:]
	return out, nil
}

type rootInfo struct{}

func (rootInfo) Name() string       { return "." }
func (rootInfo) Size() int64        { return 0 }
func (rootInfo) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (rootInfo) ModTime() time.Time { return time.Time{} }
func (rootInfo) IsDir() bool        { return true }
func (rootInfo) Sys() any           { return nil }
