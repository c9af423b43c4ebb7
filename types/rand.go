package types

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// BlockRand is a block's randomness: 32 bytes every node derives alike from the block,
// that no transaction sender can choose or predict (the app derives it in
// FinalizeBlock; see app/rand.go).
//
// What it is derived from: the previous block's BlockRand, the height, the block's hash
// (which commits to its header: the proposer, the time, the previous block's commit
// signatures through LastCommitHash, and the transactions) and the block's
// DecidedLastCommit (which validators' votes it includes, with their power and the
// round).
//
// What can bias it: the block's proposer. It chooses the transactions, their order,
// the time within CometBFT's bounds and which of the previous block's votes beyond
// two-thirds it includes, so it can try many candidate blocks and propose one whose
// value suits it; and it can withhold its block (losing its proposal and fees), which
// hands the value to the next round's proposer. It cannot pick an arbitrary value, and
// a transaction sender, who does not know the rest of the block, can neither choose nor
// predict it.
//
// What it is fit for: choices whose outcome is worth less to a proposer than what
// grinding or withholding a block costs it — spot-check sampling of work committed in
// an earlier block, tie-breaks between sealed bids. It is NOT fit for lotteries or
// anything whose outcome a proposer could profit from more than its block is worth,
// nor for secrets: every node, and anyone reading the chain, knows it once the block is
// decided.
type BlockRand [32]byte

// IsZero reports whether r is unset (a context outside any block).
func (r BlockRand) IsZero() bool { return r == BlockRand{} }

// Rand returns the deterministic stream of randomness for purpose (a constant naming
// its use, e.g. "verify/spot-check") and parts (what it is about: a lease ID, a unit
// index), derived from the block's BlockRand. The same block, purpose and parts give
// the same stream on every node; a different purpose or part gives an independent one,
// so one module's draws never shift another's. Parts are length-prefixed: ("ab","c")
// and ("a","bc") differ.
//
// It panics on a context without block randomness (c.BlockRand is zero): drawing from a
// constant would be a silent bug.
func (c *Context) Rand(purpose string, parts ...[]byte) *RandStream {
	if c.BlockRand.IsZero() {
		panic("types: Rand(" + purpose + ") on a context without block randomness")
	}
	h := sha256.New()
	h.Write([]byte("kiln/rand/v1"))
	h.Write(c.BlockRand[:])
	writePart := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		h.Write(b)
	}
	writePart([]byte(purpose))
	for _, p := range parts {
		writePart(p)
	}
	s := &RandStream{off: len(RandStream{}.buf)}
	h.Sum(s.key[:0])
	return s
}

// RandStream is a deterministic stream of bytes: SHA-256 of its key and a counter, in
// 32-byte blocks. It is not safe for concurrent use.
type RandStream struct {
	key [32]byte
	ctr uint64
	buf [32]byte
	off int // bytes of buf already used; len(buf) means refill
}

func (s *RandStream) refill() {
	var in [40]byte
	copy(in[:32], s.key[:])
	binary.BigEndian.PutUint64(in[32:], s.ctr)
	s.ctr++
	s.buf = sha256.Sum256(in[:])
	s.off = 0
}

// Read fills p with the stream's next bytes. It never fails.
func (s *RandStream) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if s.off == len(s.buf) {
			s.refill()
		}
		c := copy(p[n:], s.buf[s.off:])
		s.off += c
		n += c
	}
	return len(p), nil
}

// Bytes returns the stream's next n bytes.
func (s *RandStream) Bytes(n int) []byte {
	b := make([]byte, n)
	s.Read(b)
	return b
}

// Uint64 returns the stream's next 8 bytes as a big-endian integer.
func (s *RandStream) Uint64() uint64 {
	var b [8]byte
	s.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}

// Uint64N returns a uniform integer in [0, n), without modulo bias (Lemire's method,
// drawing again on the rare rejection). It panics if n is 0.
func (s *RandStream) Uint64N(n uint64) uint64 {
	if n == 0 {
		panic("types: Uint64N(0)")
	}
	hi, lo := bits.Mul64(s.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(s.Uint64(), n)
		}
	}
	return hi
}
