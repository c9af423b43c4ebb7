package market

import (
	"encoding/base64"
	"fmt"
	"net/netip"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// MsgMemberReady reports a cluster member ready for the cluster's current epoch: its
// provider brought up the member's overlay link and holds its manifest. PublicKey is
// the link's WireGuard public key (base64 of 32 bytes) and Endpoint its UDP endpoint
// (IP:port) that the other members' links send to.
type MsgMemberReady struct {
	Provider  types.Address `json:"provider"`
	Cluster   uint64        `json:"cluster,string"`
	Rank      uint32        `json:"rank"`
	Epoch     uint32        `json:"epoch"`
	PublicKey string        `json:"public_key"`
	Endpoint  string        `json:"endpoint"`
}

// MsgMemberRunning reports a cluster member's rank running in the cluster's current
// epoch; the member's lease bills from the next block. It is refused until every
// member is ready (ErrClusterWaiting).
type MsgMemberRunning struct {
	Provider types.Address `json:"provider"`
	Cluster  uint64        `json:"cluster,string"`
	Rank     uint32        `json:"rank"`
	Epoch    uint32        `json:"epoch"`
}

func (m *MsgMemberReady) Type() types.MsgType     { return types.MsgTypeMarketMemberReady }
func (m *MsgMemberRunning) Type() types.MsgType   { return types.MsgTypeMarketMemberRunning }
func (m *MsgMemberReady) Signer() types.Address   { return m.Provider }
func (m *MsgMemberRunning) Signer() types.Address { return m.Provider }

// maxEndpoint bounds an endpoint's text: an IPv6 address with a zone and a port.
const maxEndpoint = 64

// ParseMemberEndpoint parses a member's UDP endpoint: IP:port, port not 0.
func ParseMemberEndpoint(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || len(s) > maxEndpoint {
		return netip.AddrPort{}, types.InvalidField("endpoint", s, "must be IP:port, like 127.0.0.1:51820 or [::1]:51820")
	}
	if ap.Port() == 0 || ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, types.InvalidField("endpoint", s, "must name a port and an address the other members can send to (not 0, not 0.0.0.0)")
	}
	return ap, nil
}

// ParseMemberKey parses a member's overlay public key: base64 of 32 bytes.
func ParseMemberKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, types.InvalidField("public_key", s, "must be a WireGuard public key: base64 of 32 bytes")
	}
	copy(k[:], b)
	return k, nil
}

// ValidateBasic implements types.Msg.
func (m *MsgMemberReady) ValidateBasic() error {
	if err := needID("cluster", m.Cluster); err != nil {
		return err
	}
	if m.Rank >= MaxClusterMembers {
		return types.InvalidField("rank", m.Rank, fmt.Sprintf("must be below %d", MaxClusterMembers))
	}
	if _, err := ParseMemberKey(m.PublicKey); err != nil {
		return err
	}
	_, err := ParseMemberEndpoint(m.Endpoint)
	return err
}

// ValidateBasic implements types.Msg.
func (m *MsgMemberRunning) ValidateBasic() error {
	if err := needID("cluster", m.Cluster); err != nil {
		return err
	}
	if m.Rank >= MaxClusterMembers {
		return types.InvalidField("rank", m.Rank, fmt.Sprintf("must be below %d", MaxClusterMembers))
	}
	return nil
}

func (m *MsgMemberReady) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.Cluster)
	w.Uvarint(uint64(m.Rank))
	w.Uvarint(uint64(m.Epoch))
	w.String(m.PublicKey)
	w.String(m.Endpoint)
}

func (m *MsgMemberRunning) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.Cluster)
	w.Uvarint(uint64(m.Rank))
	w.Uvarint(uint64(m.Epoch))
}

// DecodeMemberReady decodes a MsgMemberReady body.
func DecodeMemberReady(r *codec.Reader) types.Msg {
	return &MsgMemberReady{Provider: bank.ReadAddress(r), Cluster: r.Uvarint(), Rank: readU32(r, "rank"), Epoch: readU32(r, "epoch"),
		PublicKey: r.String(64), Endpoint: r.String(maxEndpoint)}
}

// DecodeMemberRunning decodes a MsgMemberRunning body.
func DecodeMemberRunning(r *codec.Reader) types.Msg {
	return &MsgMemberRunning{Provider: bank.ReadAddress(r), Cluster: r.Uvarint(), Rank: readU32(r, "rank"), Epoch: readU32(r, "epoch")}
}
