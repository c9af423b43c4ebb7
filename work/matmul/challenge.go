package matmul

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/kiln-network/kiln/proof"
)

// The challenge form of the matmul: the chain issues (n, seed), the prover computes
// C = A×B for the matrices of seed, commits to C with a Merkle root over chunks of
// ChunkEntries consecutive entries (row-major), and later opens the chunks the chain
// samples. The tree is package proof's (RFC 6962), one leaf per chunk. The chain
// checks a few entries of each opened chunk by computing them itself, in O(n) each: it
// never builds A, B or C.
//
// Entries come from a counter-based generator (Entry), not math/rand's stream, so that
// any one entry of A or B is computed on its own; that is what makes the chain's check
// O(samples·n) instead of O(n²).

// ChunkEntries is how many consecutive float64 entries of C one Merkle leaf holds: 512
// bytes, so an opened chunk and its proof fit a transaction many times over.
const ChunkEntries = 64

// MaxChallengeN bounds a challenge matrix: 8192² float64 is 512 MiB per matrix.
const MaxChallengeN = 8192

// Entry returns entry (i, j) of matrix which (0: A, 1: B) of seed, uniform in [-1, 1)
// with 52 random bits. It is exact arithmetic on every platform: a 53-bit integer
// scaled by a power of two, minus one.
func Entry(seed uint64, which, i, j int) float64 {
	x := seed ^ uint64(which)<<63 ^ uint64(i)<<32 ^ uint64(j)
	x = splitmix64(splitmix64(x) ^ seed)
	return float64(x>>12)*(1.0/(1<<51)) - 1
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// ChallengeMatrices returns the n×n matrices A and B of seed, row-major.
func ChallengeMatrices(n int, seed uint64) (a, b []float64) {
	a, b = make([]float64, n*n), make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			a[i*n+j] = Entry(seed, 0, i, j)
			b[i*n+j] = Entry(seed, 1, i, j)
		}
	}
	return a, b
}

// ValidChallengeN reports whether n is a challenge size: a positive multiple of
// ChunkEntries up to MaxChallengeN (so every chunk lies within one row).
func ValidChallengeN(n int) error {
	if n < ChunkEntries || n > MaxChallengeN || n%ChunkEntries != 0 {
		return fmt.Errorf("challenge size %d: must be a multiple of %d from %d to %d", n, ChunkEntries, ChunkEntries, MaxChallengeN)
	}
	return nil
}

// Chunks returns how many Merkle leaves a challenge of size n has.
func Chunks(n int) int { return n * n / ChunkEntries }

// Solution is a prover's answer to a challenge: the product and its leaf hashes.
type Solution struct {
	N    int
	Seed uint64
	C    []float64
	// leaves are the chunks' RFC 6962 leaf hashes, in order.
	leaves [][]byte
}

// Solve computes the product of challenge (n, seed) with Multiply (every CPU) and
// commits to it. Callers time it themselves.
func Solve(n int, seed uint64) (*Solution, error) {
	if err := ValidChallengeN(n); err != nil {
		return nil, err
	}
	a, b := ChallengeMatrices(n, seed)
	return Commit(n, seed, Multiply(a, b, n)), nil
}

// Commit hashes the chunks of product c (n×n, row-major) of challenge seed. It is
// Solve without the multiplication: a prover that computed c elsewhere (a GPU) commits
// with it, and tests commit to doctored products.
func Commit(n int, seed uint64, c []float64) *Solution {
	s := &Solution{N: n, Seed: seed, C: c, leaves: make([][]byte, Chunks(n))}
	for k := range s.leaves {
		h := sha256.Sum256(append([]byte{0}, ChunkBytes(s.Chunk(k))...))
		s.leaves[k] = h[:]
	}
	return s
}

// Root returns the Merkle root committing to the product: package proof's tree (RFC
// 6962, CometBFT's crypto/merkle) over the chunks' bytes (ChunkBytes).
func (s *Solution) Root() [32]byte { return [32]byte(subtree(s.leaves)) }

// Chunk returns leaf k's entries.
func (s *Solution) Chunk(k int) []float64 { return s.C[k*ChunkEntries : (k+1)*ChunkEntries] }

// Proof returns the sibling hashes of leaf k, from the leaf up to the root (package
// proof's Aunts). It costs O(leaves) hashes of 65 bytes, not a re-hash of the chunks.
func (s *Solution) Proof(k int) [][32]byte {
	var out [][32]byte
	var walk func(lh [][]byte, i int)
	walk = func(lh [][]byte, i int) {
		if len(lh) == 1 {
			return
		}
		m := split(len(lh))
		if i < m {
			walk(lh[:m], i)
			out = append(out, [32]byte(subtree(lh[m:])))
		} else {
			walk(lh[m:], i-m)
			out = append(out, [32]byte(subtree(lh[:m])))
		}
	}
	walk(s.leaves, k)
	return out
}

// subtree is RFC 6962's hash of the tree over leaf hashes lh.
func subtree(lh [][]byte) []byte {
	if len(lh) == 1 {
		return lh[0]
	}
	m := split(len(lh))
	l, r := subtree(lh[:m]), subtree(lh[m:])
	h := sha256.Sum256(append(append([]byte{1}, l...), r...))
	return h[:]
}

// split is RFC 6962's split point: the largest power of two below n (n >= 2).
func split(n int) int {
	m := 1
	for m*2 < n {
		m *= 2
	}
	return m
}

// ChunkBytes is a chunk as its Merkle leaf: its entries' IEEE-754 bits, little-endian.
func ChunkBytes(entries []float64) []byte {
	buf := make([]byte, 0, 8*len(entries))
	for _, v := range entries {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	return buf
}

// ErrBadProof is returned (wrapped) by VerifyChunk when a chunk does not lead to the
// root: package proof's ErrMismatch.
var ErrBadProof = proof.ErrMismatch

// VerifyChunk checks that entries are leaf k of the tree of a size-n challenge with
// the given root, following aunts. It needs no state: the tree's shape follows from n.
func VerifyChunk(root [32]byte, n, k int, entries []float64, aunts [][32]byte) error {
	leaves := Chunks(n)
	if k < 0 || k >= leaves {
		return fmt.Errorf("chunk %d: out of range 0..%d", k, leaves-1)
	}
	if len(entries) != ChunkEntries {
		return fmt.Errorf("chunk %d: %d entries, want %d", k, len(entries), ChunkEntries)
	}
	p := proof.Proof{Index: int64(k), Total: int64(leaves), Aunts: make([]proof.HexBytes, len(aunts))}
	for i := range aunts {
		p.Aunts[i] = aunts[i][:]
	}
	if err := p.Verify(root, ChunkBytes(entries)); err != nil {
		return fmt.Errorf("chunk %d: %w", k, err)
	}
	return nil
}

// ExpectedEntry computes entry (i, j) of the product of challenge (n, seed) in O(n),
// each product rounded on its own (float64(x*y) forbids a fused multiply-add), so
// every platform gets the same bits.
func ExpectedEntry(n int, seed uint64, i, j int) float64 {
	s := 0.0
	for k := 0; k < n; k++ {
		s += float64(Entry(seed, 0, i, k) * Entry(seed, 1, k, j))
	}
	return s
}

// Tolerance is how far an entry of a challenge product may be from ExpectedEntry:
// 1e-6·n, the bound the Freivalds check uses. It admits float32 arithmetic with float32
// accumulation (what a GPU's FP32 GEMM does: error about 1e-7·√n·|entry|) and summation
// in any order, and refuses half precision, bfloat16 or TF32 inputs (errors of 1e-3
// and more at these sizes) and anything not computed at all.
func Tolerance(n int) float64 { return 1e-6 * float64(n) }

// EntryOK reports whether got is entry (i, j) of challenge (n, seed) within Tolerance.
// NaN and infinities are never OK.
func EntryOK(n int, seed uint64, i, j int, got float64) bool {
	d := math.Abs(got - ExpectedEntry(n, seed, i, j))
	return d <= Tolerance(n) // NB: false for NaN
}

// Flops is the work of a challenge of size n: 2n³ floating-point operations.
func Flops(n int) float64 { return 2 * float64(n) * float64(n) * float64(n) }
