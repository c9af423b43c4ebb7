package attest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sealing identity is created once (0600) and read back unchanged after, so
// inputs sealed to it stay readable; a file that holds no identity is refused, named,
// and left as it is.
func TestLoadOrCreateIdentity(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tee", "seal.key")
	a, err := LoadOrCreateIdentity(p)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file %v, %v: want mode 0600", st, err)
	}
	b, err := LoadOrCreateIdentity(p)
	if err != nil || b.String() != a.String() {
		t.Fatalf("second load = %v, %v; want the identity created first", b, err)
	}
	bad := filepath.Join(t.TempDir(), "seal.key")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("LoadOrCreateIdentity(garbage) = %v, want an error naming %s", err, bad)
	}
	if got, _ := os.ReadFile(bad); string(got) != "not a key\n" {
		t.Fatalf("garbage file rewritten to %q", got)
	}
}
