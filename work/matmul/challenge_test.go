package matmul

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/kiln-network/kiln/proof"
)

func TestChallengeSolveVerify(t *testing.T) {
	for _, n := range []int{64, 128, 192} { // 192: 576 leaves, odd levels promote a node
		s, err := Solve(n, 42)
		if err != nil {
			t.Fatal(err)
		}
		root := s.Root()
		for _, k := range []int{0, 1, Chunks(n) / 2, Chunks(n) - 1} {
			if err := VerifyChunk(root, n, k, s.Chunk(k), s.Proof(k)); err != nil {
				t.Fatalf("n=%d: VerifyChunk(%d) of an honest solution = %v", n, k, err)
			}
			row, col := k*ChunkEntries/n, k*ChunkEntries%n
			for e := 0; e < ChunkEntries; e += 21 {
				if got := s.Chunk(k)[e]; !EntryOK(n, 42, row, col+e, got) {
					t.Fatalf("n=%d: entry (%d,%d) = %v, expected %v", n, row, col+e, got, ExpectedEntry(n, 42, row, col+e))
				}
			}
		}
		// A doctored chunk, a proof for another leaf, a truncated proof: all refused.
		bad := append([]float64{}, s.Chunk(3)...)
		bad[7] += 1e-3
		if err := VerifyChunk(root, n, 3, bad, s.Proof(3)); !errors.Is(err, ErrBadProof) {
			t.Fatalf("n=%d: doctored chunk: err = %v, want ErrBadProof", n, err)
		}
		if err := VerifyChunk(root, n, 3, s.Chunk(3), s.Proof(4)); !errors.Is(err, ErrBadProof) {
			t.Fatalf("n=%d: wrong leaf's proof: err = %v, want ErrBadProof", n, err)
		}
		p := s.Proof(5)
		if err := VerifyChunk(root, n, 5, s.Chunk(5), p[:len(p)-1]); !errors.Is(err, ErrBadProof) {
			t.Fatalf("n=%d: truncated proof: err = %v, want ErrBadProof", n, err)
		}
		if err := VerifyChunk(root, n, Chunks(n), s.Chunk(0), p); err == nil {
			t.Fatalf("n=%d: out-of-range leaf accepted", n)
		}
	}
}

func TestEntryDeterministicAndSpread(t *testing.T) {
	if Entry(1, 0, 2, 3) != Entry(1, 0, 2, 3) || Entry(1, 0, 2, 3) == Entry(1, 1, 2, 3) || Entry(1, 0, 2, 3) == Entry(2, 0, 2, 3) {
		t.Fatal("Entry is not a function of (seed, which, i, j) alone")
	}
	// Golden value: a change of generator changes every challenge on chain.
	if got, want := Entry(7, 1, 5, 9), -0.9158788403420024; got != want {
		t.Fatalf("Entry(7, 1, 5, 9) = %v, want %v", got, want)
	}
	if got, want := ExpectedEntry(64, 7, 3, 4), 0.6952555747294081; got != want {
		t.Fatalf("ExpectedEntry(64, 7, 3, 4) = %v, want %v", got, want)
	}
	sum := 0.0
	for i := 0; i < 10000; i++ {
		v := Entry(99, 0, i/100, i%100)
		if v < -1 || v >= 1 || math.IsNaN(v) {
			t.Fatalf("Entry out of [-1,1): %v", v)
		}
		sum += v
	}
	if math.Abs(sum/10000) > 0.05 {
		t.Fatalf("mean of 10000 entries = %v, want about 0", sum/10000)
	}
}

func TestEntryToleranceSeparatesPrecisions(t *testing.T) {
	n := 256
	s, _ := Solve(n, 5)
	i, j := 17, 33
	exact := s.C[i*n+j]
	// float32 everywhere: inputs, products and the running sum.
	var f32 float32
	var bf float32 // inputs rounded to 8 significant bits (bfloat16), float32 accumulate
	round8 := func(x float64) float32 { return float32(math.Float64frombits(math.Float64bits(x) &^ (1<<45 - 1))) }
	for k := 0; k < n; k++ {
		a, b := Entry(5, 0, i, k), Entry(5, 1, k, j)
		f32 += float32(a) * float32(b)
		bf += round8(a) * round8(b)
	}
	if !EntryOK(n, 5, i, j, exact) || !EntryOK(n, 5, i, j, float64(f32)) {
		t.Fatalf("float64 %v or float32 %v refused (expected %v, tolerance %v)", exact, f32, ExpectedEntry(n, 5, i, j), Tolerance(n))
	}
	if EntryOK(n, 5, i, j, float64(bf)) || EntryOK(n, 5, i, j, 0) || EntryOK(n, 5, i, j, math.NaN()) {
		t.Fatalf("bfloat16 inputs %v, zero or NaN accepted (expected %v)", bf, exact)
	}
}

// TestMeasureCPUThroughput logs this machine's matmul rate per core, the figure the
// gpu catalogue's CPU entry comes from. Run with -v; it asserts nothing about speed.
func TestMeasureCPUThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement only")
	}
	n := 512
	a, b := ChallengeMatrices(n, 1)
	best := time.Duration(math.MaxInt64)
	for r := 0; r < 3; r++ {
		t0 := time.Now()
		Multiply(a, b, n)
		best = min(best, time.Since(t0))
	}
	procs := runtime.GOMAXPROCS(0)
	t.Logf("n=%d: best of 3 %v on %d procs = %.2f GFLOPS, %.2f per proc", n, best, procs, Flops(n)/best.Seconds()/1e9, Flops(n)/best.Seconds()/1e9/float64(procs))
}

func BenchmarkExpectedEntry512(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ExpectedEntry(512, 9, i%512, 7)
	}
}

func FuzzVerifyChunk(f *testing.F) {
	s, _ := Solve(64, 3)
	f.Add(5, []byte{1, 2, 3}, uint8(0))
	f.Add(63, []byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, k int, noise []byte, drop uint8) {
		k = (k%64 + 64) % 64
		ch := append([]float64{}, s.Chunk(k)...)
		for i, b := range noise {
			ch[i%len(ch)] += float64(b)
		}
		p := s.Proof(k)
		if drop > 0 && int(drop) <= len(p) {
			p = append(p[:drop-1:drop-1], p[drop:]...)
		}
		err := VerifyChunk(s.Root(), 64, k, ch, p)
		changed := false
		for _, b := range noise {
			changed = changed || b != 0
		}
		if (err == nil) == (changed || drop > 0 && int(drop) <= len(s.Proof(k))) {
			t.Fatalf("k=%d noise=%v drop=%d: err=%v", k, noise, drop, err)
		}
	})
}

// The challenge tree is package proof's: the same root and proofs as proof.Root and
// proof.Prove over the chunks' bytes.
func TestChallengeTreeIsProofTree(t *testing.T) {
	for _, n := range []int{64, 192} {
		s, _ := Solve(n, 8)
		var leaves [][]byte
		for k := 0; k < Chunks(n); k++ {
			leaves = append(leaves, ChunkBytes(s.Chunk(k)))
		}
		if s.Root() != proof.Root(leaves) {
			t.Fatalf("n=%d: root differs from proof.Root", n)
		}
		for _, k := range []int{0, 7, Chunks(n) - 1} {
			want, _ := proof.Prove(leaves, k)
			got := s.Proof(k)
			if len(got) != len(want.Aunts) {
				t.Fatalf("n=%d leaf %d: %d aunts, proof.Prove has %d", n, k, len(got), len(want.Aunts))
			}
			for i := range got {
				if !bytes.Equal(got[i][:], want.Aunts[i]) {
					t.Fatalf("n=%d leaf %d: aunt %d differs from proof.Prove's", n, k, i)
				}
			}
		}
	}
}

// BenchmarkChallenge is what answering a challenge costs a provider on this machine:
// solving and committing (Solve) and the proofs of 16 chunks, at n = 448 (the default
// size for one CPU core: 500 ms at the catalogue's 0.5 GFLOPS) and 512.
func BenchmarkChallenge(b *testing.B) {
	for _, n := range []int{448, 512} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				s, _ := Solve(n, uint64(i))
				for k := 0; k < 16; k++ {
					s.Proof(k * 97 % Chunks(n))
				}
			}
			b.ReportMetric(Flops(n)/1e6, "MFLOP/op")
		})
	}
}
