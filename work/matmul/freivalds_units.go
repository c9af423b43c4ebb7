package matmul

import (
	"encoding/binary"
	"math"
	"math/rand"

	"github.com/kiln-network/kiln/work/units"
)

// CheckBlocks checks claimed row blocks (unit id → bytes) of a matmul job with
// Freivalds' algorithm instead of recomputing them: one random vector x, y = B·x once
// (n²), then per block C_blk·x against A_blk·y (2·r·n). A verifier checks s blocks in
// O(n² + s·r·n) where recomputing costs O(s·r·n²); generating A and B (n² each) is
// the rest. It returns, per block, nil when it holds and a *units.MismatchError when it
// does not; an error for a job or id that is not a matmul one. The provider cannot
// know x (seed comes from the verifier), and a faked block passes only if its error is
// orthogonal to x: probability 0 for x drawn from a continuous distribution, up to
// float rounding, which the tolerance (UnitTolerance·n, as Compare) absorbs.
func CheckBlocks(job units.Job, claimed map[string][]byte, seed int64) (map[string]error, error) {
	c, err := NewBlockChecker(job)
	if err != nil {
		return nil, err
	}
	return c.Check(claimed, seed)
}

// BlockChecker checks row blocks of one matmul job: it generates A and B once
// (NewBlockChecker), then each Check draws its own random vector.
type BlockChecker struct {
	p    UnitParams
	a, b []float64
}

// NewBlockChecker generates job's matrices.
func NewBlockChecker(job units.Job) (*BlockChecker, error) {
	p, err := unitParams(job)
	if err != nil {
		return nil, err
	}
	return &BlockChecker{p: p, a: Generate(p.N, p.Seed), b: Generate(p.N, p.Seed+1)}, nil
}

// Check checks claimed blocks with the random vector of seed (see CheckBlocks).
func (c *BlockChecker) Check(claimed map[string][]byte, seed int64) (map[string]error, error) {
	p, n := c.p, c.p.N
	idx := map[string]int{}
	for id := range claimed {
		i, err := p.blockOf(id)
		if err != nil {
			return nil, err
		}
		idx[id] = i
	}
	r := rand.New(rand.NewSource(seed))
	x := make([]float64, n)
	for i := range x {
		x[i] = r.Float64()*2 - 1
	}
	y := make([]float64, n)
	mulVec(c.b, x, y, n)
	tol := UnitTolerance * float64(n) * float64(n)
	out := map[string]error{}
	for id, data := range claimed {
		lo, hi := idx[id]*p.BlockRows, min(n, (idx[id]+1)*p.BlockRows)
		if len(data) != 8*(hi-lo)*n {
			out[id] = units.Mismatch(id, "claimed block is %d bytes, want %d", len(data), 8*(hi-lo)*n)
			continue
		}
		out[id] = nil
		for i := lo; i < hi; i++ {
			var cx, ay float64
			row := data[8*(i-lo)*n:]
			for j := 0; j < n; j++ {
				cx += math.Float64frombits(binary.LittleEndian.Uint64(row[8*j:])) * x[j]
				ay += c.a[i*n+j] * y[j]
			}
			if !(math.Abs(cx-ay) <= tol) {
				out[id] = units.Mismatch(id, "row %d fails Freivalds' check: C·x = %g, A·(B·x) = %g", i, cx, ay)
				break
			}
		}
	}
	return out, nil
}
