package overlay

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// Space is where every lease's subnet lies: 2^15 /24s, far from the
// 10.0.0.0/16 and 172.16.0.0/12 ranges Docker and clouds hand out by default.
var Space = netip.MustParsePrefix("10.128.0.0/9")

// MaxRank is the highest member rank a /24 holds (.1 through .254).
const MaxRank = 253

// SubnetFor returns the lease's /24 inside Space, the same on every provider.
// NB: two leases may hash to the same /24 (1 in 32768 per pair); they never
// meet: each lease's members live in namespaces of their own and speak only to
// the keys of their lease.
func SubnetFor(leaseID string) netip.Prefix {
	h := sha256.Sum256([]byte("kiln overlay subnet\x00" + leaseID))
	n := binary.BigEndian.Uint16(h[:2]) & 0x7fff // 15 bits: the /24 within the /9
	a := Space.Addr().As4()
	a[1] |= byte(n >> 8)
	a[2] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom4(a), 24)
}

// MemberAddr returns the address of rank in subnet: the subnet's .rank+1.
// It returns the zero Addr for a rank outside 0..MaxRank or a subnet that is
// not an IPv4 /24.
func MemberAddr(subnet netip.Prefix, rank int) netip.Addr {
	if rank < 0 || rank > MaxRank || !subnet.Addr().Is4() || subnet.Bits() != 24 {
		return netip.Addr{}
	}
	a := subnet.Masked().Addr().As4()
	a[3] = byte(rank + 1)
	return netip.AddrFrom4(a)
}
