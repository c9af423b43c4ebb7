package overlay

import (
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k == k2 || k.IsZero() {
		t.Fatalf("GenerateKey gave %x and %x, want two distinct non-zero keys", k[:4], k2[:4])
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("GenerateKey = %x..%x, not clamped", k[0], k[31])
	}
	if k.Public() != k.Public() || k.Public() == k2.Public() || k.Public().IsZero() {
		t.Fatal("Public is not a deterministic, distinct, non-zero function of the key")
	}
	p, err := ParsePublicKey(k.Public().String())
	if err != nil || p != k.Public() {
		t.Fatalf("ParsePublicKey(String()) = %v, %v, want %v", p, err, k.Public())
	}
	// RFC 7748 6.1: Alice's private key and public key.
	var alice Key
	copy(alice[:], mustHex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if got, want := alice.Public().hex(), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"; got != want {
		t.Fatalf("Public(RFC 7748 alice) = %s, want %s", got, want)
	}
	var back PublicKey
	if err := back.UnmarshalText([]byte(alice.Public().String())); err != nil || back != alice.Public() {
		t.Fatalf("UnmarshalText(MarshalText) = %v, %v", back, err)
	}
}

// KeyFrom clamps any 32 bytes into a key and is a function of them: the same
// secret bytes (a derived key) give the same key.
func TestKeyFrom(t *testing.T) {
	var ones [32]byte
	for i := range ones {
		ones[i] = 0xff
	}
	k := KeyFrom(ones)
	if k[0] != 0xf8 || k[31] != 0x7f || k[1] != 0xff {
		t.Fatalf("KeyFrom(ff..ff) = %x..%x, want f8..7f (clamped, the rest kept)", k[0], k[31])
	}
	if KeyFrom(ones) != k || KeyFrom([32]byte{1}) == k {
		t.Fatal("KeyFrom is not a deterministic, distinct function of its bytes")
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "must be 32 bytes"},
		{"not base64!", "not base64"},
		{"AAAA", "must be 32 bytes (got 3)"},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "must not be zero"},
	} {
		if _, err := ParsePublicKey(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePublicKey(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestSubnetFor(t *testing.T) {
	seen := map[netip.Prefix]string{}
	for _, id := range []string{"lease-1", "lease-2", "lease-3", "a", "b", "c", "7f3e9a"} {
		s := SubnetFor(id)
		if s != SubnetFor(id) {
			t.Fatalf("SubnetFor(%q) not deterministic", id)
		}
		if s.Bits() != 24 || !Space.Contains(s.Addr()) || s.Masked() != s {
			t.Fatalf("SubnetFor(%q) = %s, want a /24 inside %s", id, s, Space)
		}
		if other, ok := seen[s]; ok {
			t.Fatalf("SubnetFor(%q) = SubnetFor(%q) = %s", id, other, s)
		}
		seen[s] = id
	}
}

func TestMemberAddr(t *testing.T) {
	s := netip.MustParsePrefix("10.200.7.0/24")
	for _, tc := range []struct {
		subnet netip.Prefix
		rank   int
		want   string
	}{
		{s, 0, "10.200.7.1"},
		{s, 2, "10.200.7.3"},
		{s, MaxRank, "10.200.7.254"},
		{s, -1, "invalid IP"},
		{s, MaxRank + 1, "invalid IP"},
		{netip.MustParsePrefix("10.200.0.0/16"), 0, "invalid IP"},
		{netip.MustParsePrefix("fd00::/120"), 0, "invalid IP"},
	} {
		if got := MemberAddr(tc.subnet, tc.rank).String(); got != tc.want {
			t.Errorf("MemberAddr(%s, %d) = %s, want %s", tc.subnet, tc.rank, got, tc.want)
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPathMTU(t *testing.T) {
	lo := 0
	if ifc, err := net.InterfaceByName("lo"); err == nil {
		lo = ifc.MTU
	}
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"127.0.0.1", min(lo-80, 65455)},
		{"127.0.0.9", min(lo-80, 65455)},
		{"198.51.100.77", DefaultMTU}, // TEST-NET-2: no interface here holds it
	} {
		if lo == 0 {
			t.Skip("no loopback interface")
		}
		if got := PathMTU(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("PathMTU(%s) = %d, want %d", tc.addr, got, tc.want)
		}
	}
}
