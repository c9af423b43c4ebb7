// Package matmul is Kiln's reference compute workload and hardware challenge: the
// product of two matrices generated from a seed, checked with Freivalds' algorithm.
package matmul

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"time"
)

// Generate returns the n×n matrix of seed, entries uniform in [-1, 1). The same seed
// gives the same matrix on every machine (math/rand's source is fixed).
func Generate(n int, seed int64) []float64 {
	r := rand.New(rand.NewSource(seed))
	m := make([]float64, n*n)
	for i := range m {
		m[i] = r.Float64()*2 - 1
	}
	return m
}

// Multiply returns a×b for n×n matrices, using all CPUs.
func Multiply(a, b []float64, n int) []float64 { return multiplyRows(a, b, n, n) }

// multiplyRows returns a×b for an m×n a and an n×n b. Each entry is summed over k in
// order, whichever worker computes it, so any subset of rows gives Multiply's values.
func multiplyRows(a, b []float64, n, m int) []float64 {
	c := make([]float64, m*n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	rows := make(chan int, m)
	for i := 0; i < m; i++ {
		rows <- i
	}
	close(rows)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rows {
				ci := c[i*n : (i+1)*n]
				for k := 0; k < n; k++ {
					aik := a[i*n+k]
					bk := b[k*n : (k+1)*n]
					for j := range ci {
						ci[j] += aik * bk[j]
					}
				}
			}
		}()
	}
	wg.Wait()
	return c
}

// Freivalds checks c == a×b with rounds random vectors in O(rounds·n²): a wrong c
// passes each round with probability at most 1/2.
func Freivalds(a, b, c []float64, n, rounds int, seed int64) bool {
	r := rand.New(rand.NewSource(seed))
	x := make([]float64, n)
	bx := make([]float64, n)
	abx := make([]float64, n)
	cx := make([]float64, n)
	for round := 0; round < rounds; round++ {
		for i := range x {
			x[i] = float64(r.Intn(2))
		}
		mulVec(b, x, bx, n)
		mulVec(a, bx, abx, n)
		mulVec(c, x, cx, n)
		for i := range cx {
			d := cx[i] - abx[i]
			if d > 1e-6*float64(n) || d < -1e-6*float64(n) {
				return false
			}
		}
	}
	return true
}

func mulVec(m, x, out []float64, n int) {
	for i := 0; i < n; i++ {
		s := 0.0
		row := m[i*n : (i+1)*n]
		for j, v := range row {
			s += v * x[j]
		}
		out[i] = s
	}
}

// Result is what a matmul run reports.
type Result struct {
	N        int     `json:"n"`
	Seed     int64   `json:"seed"`
	Digest   string  `json:"digest"` // SHA-256 of the product rounded to 1e-9, row-major
	Verified bool    `json:"freivalds_verified"`
	Seconds  float64 `json:"seconds"`
	GFLOPS   float64 `json:"gflops"`
}

// Run multiplies the matrices of seed and seed+1, verifies the product, and reports it.
func Run(n int, seed int64) (Result, error) {
	if n < 1 || n > 8192 {
		return Result{}, fmt.Errorf("matrix size %d: must be 1 to 8192", n)
	}
	a, b := Generate(n, seed), Generate(n, seed+1)
	t := time.Now()
	c := Multiply(a, b, n)
	secs := time.Since(t).Seconds()
	h := sha256.New()
	var buf [8]byte
	for _, v := range c {
		binary.LittleEndian.PutUint64(buf[:], uint64(int64(v*1e9)))
		h.Write(buf[:])
	}
	res := Result{N: n, Seed: seed, Digest: hex.EncodeToString(h.Sum(nil)), Verified: Freivalds(a, b, c, n, 20, seed^0x5eed), Seconds: secs}
	if secs > 0 {
		res.GFLOPS = 2 * float64(n) * float64(n) * float64(n) / secs / 1e9
	}
	return res, nil
}
