package netns

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestAddDoDelete(t *testing.T) {
	if why := Available(); why != "" {
		t.Skip(why)
	}
	name := fmt.Sprintf("knt%d", os.Getpid())
	p, err := Add(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete(name) })
	if p2, err := Add(name); err != nil || p2 != p {
		t.Fatalf("Add(%q) again = %q, %v, want %q (idempotent)", name, p2, err, p)
	}
	if !Exists(p) || Exists("/etc/hostname") || Exists("/nonexistent") {
		t.Fatal("Exists does not tell a namespace from a file")
	}
	if names, err := List("knt"); err != nil || !slices.Contains(names, name) {
		t.Fatalf("List(knt) = %v, %v, want %s among them", names, err, name)
	}
	// Inside: only lo (up); outside: the host's interfaces.
	var inside []net.Interface
	if err := Do(p, func() (err error) { inside, err = net.Interfaces(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" || inside[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces in %s = %+v, want lo up only", name, inside)
	}
	// The caller's thread never moved: a socket made after Do is the host's.
	host, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if self, _ := os.Readlink("/proc/self/ns/net"); host != self {
		t.Fatalf("after Do this thread is in %s, the process in %s", host, self)
	}
	ferr := fmt.Errorf("boom")
	if err := Do(p, func() error { return ferr }); err != ferr {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
	if err := Do("/nonexistent", func() error { return nil }); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Fatalf("Do(/nonexistent) = %v, want an error naming the path", err)
	}
	if err := Delete(name); err != nil || Exists(p) {
		t.Fatalf("Delete = %v, exists %v", err, Exists(p))
	}
	if err := Delete(name); err != nil {
		t.Fatalf("Delete of a gone namespace = %v, want nil", err)
	}
	if _, err := Add("a/b"); err == nil {
		t.Fatal("Add(a/b) accepted a name with '/'")
	}
}
