package liveness

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/bank"
)

// Limits on the messages, checked by the decoders and ValidateBasic.
const (
	maxRevealChunks = 32
	maxProofHashes  = 32 // a tree of 2^20 leaves (n = 8192) needs 20
	maxMillis       = 3_600_000
)

// MsgAnswer commits a provider's answer to challenge Challenge: the Merkle root of the
// product (work/matmul's chunk tree) and how long the provider says computing it took.
// The chunks to reveal are drawn in the block that includes it.
type MsgAnswer struct {
	Provider  types.Address `json:"provider"`
	Challenge uint64        `json:"challenge,string"`
	Root      [32]byte      `json:"root"`
	// Millis is the provider's own measure of the computation (its clock, signed with
	// its key): trusted only as the provider's claim; see doc.go.
	Millis uint64 `json:"millis,string"`
}

// MsgReveal opens the chunks of the product the chain sampled from an answer: each
// with its 64 entries and Merkle proof, in the order the challenge lists them.
type MsgReveal struct {
	Provider  types.Address   `json:"provider"`
	Challenge uint64          `json:"challenge,string"`
	Chunks    []RevealedChunk `json:"chunks"`
}

// RevealedChunk is one opened leaf of the product's tree.
type RevealedChunk struct {
	Index   uint32     `json:"index"`
	Entries []float64  `json:"entries"`
	Proof   [][32]byte `json:"proof"`
}

func (m *MsgAnswer) Type() types.MsgType { return types.MsgTypeLivenessAnswer }
func (m *MsgReveal) Type() types.MsgType { return types.MsgTypeLivenessReveal }

func (m *MsgAnswer) Signer() types.Address { return m.Provider }
func (m *MsgReveal) Signer() types.Address { return m.Provider }

// ValidateBasic implements types.Msg.
func (m *MsgAnswer) ValidateBasic() error {
	switch {
	case m.Challenge == 0:
		return types.InvalidField("challenge", 0, "must be a challenge ID (>= 1)")
	case m.Root == [32]byte{}:
		return types.InvalidField("root", "00…", "must be the product's Merkle root, not zero")
	case m.Millis < 1 || m.Millis > maxMillis:
		return types.InvalidField("millis", m.Millis, "must be 1 to 3600000")
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgReveal) ValidateBasic() error {
	if m.Challenge == 0 {
		return types.InvalidField("challenge", 0, "must be a challenge ID (>= 1)")
	}
	if len(m.Chunks) < 1 || len(m.Chunks) > maxRevealChunks {
		return types.InvalidField("chunks", len(m.Chunks), "must hold 1 to 32 chunks")
	}
	for i, c := range m.Chunks {
		if len(c.Entries) != matmul.ChunkEntries {
			return types.InvalidField("chunks["+itoa(i)+"].entries", len(c.Entries), "must hold 64 entries")
		}
		if len(c.Proof) > maxProofHashes {
			return types.InvalidField("chunks["+itoa(i)+"].proof", len(c.Proof), "must hold at most 32 hashes")
		}
	}
	return nil
}

func (m *MsgAnswer) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.Challenge)
	w.Fixed(m.Root[:])
	w.Uvarint(m.Millis)
}

func (m *MsgReveal) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.Challenge)
	w.Uvarint(uint64(len(m.Chunks)))
	for _, c := range m.Chunks {
		w.Uvarint(uint64(c.Index))
		w.Uvarint(uint64(len(c.Entries)))
		for _, v := range c.Entries {
			w.Fixed(binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)))
		}
		w.Uvarint(uint64(len(c.Proof)))
		for _, h := range c.Proof {
			w.Fixed(h[:])
		}
	}
}

// DecodeAnswer decodes a MsgAnswer body.
func DecodeAnswer(r *codec.Reader) types.Msg {
	m := &MsgAnswer{Provider: bank.ReadAddress(r), Challenge: r.Uvarint()}
	copy(m.Root[:], r.Fixed(32))
	m.Millis = r.Uvarint()
	return m
}

// DecodeReveal decodes a MsgReveal body. Counts are bounded before anything is
// allocated: a hostile length cannot make it allocate more than the limits.
func DecodeReveal(r *codec.Reader) types.Msg {
	m := &MsgReveal{Provider: bank.ReadAddress(r), Challenge: r.Uvarint()}
	n := r.Uvarint()
	if n > maxRevealChunks {
		r.Fail("reveal: %d chunks, limit %d", n, maxRevealChunks)
		return m
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		var c RevealedChunk
		idx := r.Uvarint()
		if idx > math.MaxUint32 {
			r.Fail("reveal: chunk index %d out of range", idx)
			return m
		}
		c.Index = uint32(idx)
		ne := r.Uvarint()
		if ne > matmul.ChunkEntries {
			r.Fail("reveal: %d entries in a chunk, limit %d", ne, matmul.ChunkEntries)
			return m
		}
		for j := uint64(0); j < ne && r.Err() == nil; j++ {
			c.Entries = append(c.Entries, math.Float64frombits(binary.LittleEndian.Uint64(fixed(r, 8))))
		}
		np := r.Uvarint()
		if np > maxProofHashes {
			r.Fail("reveal: %d proof hashes, limit %d", np, maxProofHashes)
			return m
		}
		for j := uint64(0); j < np && r.Err() == nil; j++ {
			var h [32]byte
			copy(h[:], r.Fixed(32))
			c.Proof = append(c.Proof, h)
		}
		m.Chunks = append(m.Chunks, c)
	}
	return m
}

// fixed reads n bytes, or n zero bytes once the reader has failed.
func fixed(r *codec.Reader, n int) []byte {
	b := r.Fixed(n)
	if len(b) < n {
		return make([]byte, n)
	}
	return b
}

func itoa(i int) string { return strconv.Itoa(i) }
