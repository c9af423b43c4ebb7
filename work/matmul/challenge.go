package matmul

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The challenge form of the matmul: the chain issues (n, seed), the prover computes
// C = A×B for the matrices of seed, commits to C with a Merkle root over chunks of
// ChunkEntries consecutive entries (row-major), and later opens the chunks the chain
// samples. The chain checks a few entries of each opened chunk by computing them
// itself, in O(n) each: it never builds A, B or C.
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

// Solution is a prover's answer to a challenge: the product and its Merkle tree.
type Solution struct {
	N    int
	Seed uint64
	C    []float64
	// levels[0] are the leaf hashes; the last level is the root alone.
	levels [][][32]byte
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

// Commit builds the Merkle tree of product c (n×n, row-major) of challenge seed. It
// is Solve without the multiplication: a prover that computed c elsewhere (a GPU)
// commits with it, and tests commit to doctored products.
func Commit(n int, seed uint64, c []float64) *Solution {
	s := &Solution{N: n, Seed: seed, C: c}
	leaves := make([][32]byte, Chunks(n))
	for k := range leaves {
		leaves[k] = LeafHash(c[k*ChunkEntries : (k+1)*ChunkEntries])
	}
	s.levels = [][][32]byte{leaves}
	for lvl := leaves; len(lvl) > 1; {
		next := make([][32]byte, (len(lvl)+1)/2)
		for i := range next {
			if 2*i+1 < len(lvl) {
				next[i] = nodeHash(lvl[2*i], lvl[2*i+1])
			} else {
				next[i] = lvl[2*i] // NB: an odd node is promoted, not paired with itself
			}
		}
		s.levels = append(s.levels, next)
		lvl = next
	}
	return s
}

// Root returns the Merkle root committing to the product.
func (s *Solution) Root() [32]byte { return s.levels[len(s.levels)-1][0] }

// Chunk returns leaf k's entries.
func (s *Solution) Chunk(k int) []float64 { return s.C[k*ChunkEntries : (k+1)*ChunkEntries] }

// Proof returns the sibling hashes from leaf k up to the root (a promoted odd node
// has no sibling at its level and contributes none).
func (s *Solution) Proof(k int) [][32]byte {
	var p [][32]byte
	for _, lvl := range s.levels[:len(s.levels)-1] {
		if sib := k ^ 1; sib < len(lvl) {
			p = append(p, lvl[sib])
		}
		k /= 2
	}
	return p
}

// LeafHash hashes one chunk: a 0x00 domain byte, then its entries little-endian.
func LeafHash(entries []float64) [32]byte {
	buf := make([]byte, 1, 1+8*len(entries))
	for _, v := range entries {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	return sha256.Sum256(buf)
}

func nodeHash(l, r [32]byte) [32]byte {
	var buf [65]byte
	buf[0] = 1
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// ErrBadProof is returned by VerifyChunk when a chunk does not hash up to the root.
var ErrBadProof = errors.New("merkle proof does not lead to the committed root")

// VerifyChunk checks that entries are leaf k of the tree of a size-n challenge with
// the given root, following proof. It needs no state: the tree's shape follows from n.
func VerifyChunk(root [32]byte, n, k int, entries []float64, proof [][32]byte) error {
	leaves := Chunks(n)
	if k < 0 || k >= leaves {
		return fmt.Errorf("chunk %d: out of range 0..%d", k, leaves-1)
	}
	if len(entries) != ChunkEntries {
		return fmt.Errorf("chunk %d: %d entries, want %d", k, len(entries), ChunkEntries)
	}
	h := LeafHash(entries)
	used := 0
	for width := leaves; width > 1; width = (width + 1) / 2 {
		if sib := k ^ 1; sib < width {
			if used == len(proof) {
				return fmt.Errorf("chunk %d: proof too short: %w", k, ErrBadProof)
			}
			if k&1 == 0 {
				h = nodeHash(h, proof[used])
			} else {
				h = nodeHash(proof[used], h)
			}
			used++
		}
		k /= 2
	}
	if used != len(proof) {
		return fmt.Errorf("proof has %d hashes, the tree needs %d: %w", len(proof), used, ErrBadProof)
	}
	if h != root {
		return ErrBadProof
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
