package matmul

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/kiln-network/kiln/work/units"
)

// Kind is the job kind of matmul jobs written as units.
const Kind = "matmul"

// As units, a matmul job's output is the product C = A×B (A, B generated from seed and
// seed+1) cut into blocks of rows: unit "rows-NNNNN" is rows [i·r, (i+1)·r) of C as
// little-endian float64, row-major, in rows-NNNNN.f64 (top level: a provider seals only
// its out/ directory's files). A verifier recomputes one block
// in O(r·n²), a fraction r/n of the job.
//
// Tolerance policy (Compare): every value within UnitTolerance·n of the recomputed one.
// Each entry is a sum of n products of values in [-1, 1), summed in the same order on
// every machine; only FMA fusion on some architectures changes a rounding (~1e-16·n), and
// any faked value (a wrong or skipped block, zeros, another seed's product) is off by
// about 1/sqrt(n) or more.
const UnitTolerance = 1e-9

// UnitParams are a matmul job's parameters (job.json "params").
type UnitParams struct {
	N         int   `json:"n"`
	Seed      int64 `json:"seed"`
	BlockRows int   `json:"block_rows"`
}

// DefaultBlockRows cuts C into about 64 blocks (each 1/64 of the job).
func DefaultBlockRows(n int) int { return max(1, (n+63)/64) }

// Validate says what is wrong with p.
func (p UnitParams) Validate() error {
	if p.N < 1 || p.N > 8192 {
		return fmt.Errorf("matmul n: %d, must be 1 to 8192", p.N)
	}
	if p.BlockRows < 1 || p.BlockRows > p.N {
		return fmt.Errorf("matmul block_rows: %d, must be 1 to n (%d)", p.BlockRows, p.N)
	}
	return nil
}

func (p UnitParams) blocks() int { return (p.N + p.BlockRows - 1) / p.BlockRows }

// BlockID is the unit id of row block i.
func BlockID(i int) string { return fmt.Sprintf("rows-%05d", i) }

var blockRE = regexp.MustCompile(`^rows-(\d{5})$`)

func (p UnitParams) blockOf(id string) (int, error) {
	m := blockRE.FindStringSubmatch(id)
	if m == nil {
		return 0, fmt.Errorf("matmul unit %q: not a row block id (rows-NNNNN)", id)
	}
	i, _ := strconv.Atoi(m[1])
	if i >= p.blocks() {
		return 0, fmt.Errorf("matmul unit %q: the job has %d blocks", id, p.blocks())
	}
	return i, nil
}

// Workload is matmul as a units.Workload.
type Workload struct{}

var _ units.Workload = Workload{}

// Kind implements units.Workload.
func (Workload) Kind() string { return Kind }

// NewJob returns the job of p.
func NewJob(p UnitParams) (units.Job, error) {
	if err := p.Validate(); err != nil {
		return units.Job{}, err
	}
	return units.NewJob(Kind, p)
}

func unitParams(job units.Job) (UnitParams, error) {
	if job.Kind != Kind {
		return UnitParams{}, fmt.Errorf("matmul: job kind %q", job.Kind)
	}
	var p UnitParams
	if err := job.DecodeParams(&p); err != nil {
		return UnitParams{}, err
	}
	return p, p.Validate()
}

// Run multiplies and writes C's row blocks, units.json and job.json under out.
func (Workload) Run(ctx context.Context, job units.Job, out string, progress units.Progress) error {
	p, err := unitParams(job)
	if err != nil {
		return err
	}
	a, b := Generate(p.N, p.Seed), Generate(p.N, p.Seed+1)
	c := Multiply(a, b, p.N)
	set := units.Set{}
	for i := 0; i < p.blocks(); i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("matmul: %w", err)
		}
		lo, hi := i*p.BlockRows, min(p.N, (i+1)*p.BlockRows)
		if err := set.Put(out, BlockID(i), BlockID(i)+".f64", encodeRows(c[lo*p.N:hi*p.N])); err != nil {
			return err
		}
		if progress != nil {
			progress(i+1, p.blocks(), "row blocks")
		}
	}
	if err := job.Write(out); err != nil {
		return err
	}
	return set.Write(out)
}

// Inputs implements units.Workload: a block needs only the seed.
func (Workload) Inputs(units.Job, string) ([]string, error) { return nil, nil }

// RunUnit recomputes one row block.
func (Workload) RunUnit(ctx context.Context, job units.Job, id string, _ map[string][]byte) ([]byte, error) {
	p, err := unitParams(job)
	if err != nil {
		return nil, err
	}
	i, err := p.blockOf(id)
	if err != nil {
		return nil, err
	}
	lo, hi := i*p.BlockRows, min(p.N, (i+1)*p.BlockRows)
	return encodeRows(Rows(p.N, p.Seed, lo, hi)), nil
}

// Rows returns rows [lo, hi) of the product of seed's and seed+1's n×n matrices, summed
// in the order Multiply sums them (so the values are Multiply's).
func Rows(n int, seed int64, lo, hi int) []float64 {
	a, b := Generate(n, seed), Generate(n, seed+1)
	return multiplyRows(a[lo*n:hi*n], b, n, hi-lo)
}

// Compare implements units.Workload with UnitTolerance.
func (Workload) Compare(job units.Job, id string, claimed, recomputed []byte) error {
	p, err := unitParams(job)
	if err != nil {
		return err
	}
	if len(claimed) != len(recomputed) {
		return units.Mismatch(id, "claimed block is %d bytes, want %d", len(claimed), len(recomputed))
	}
	tol := UnitTolerance * float64(p.N)
	for k := 0; k < len(claimed); k += 8 {
		g := math.Float64frombits(binary.LittleEndian.Uint64(claimed[k:]))
		w := math.Float64frombits(binary.LittleEndian.Uint64(recomputed[k:]))
		if !(math.Abs(g-w) <= tol) {
			return units.Mismatch(id, "value %d is %g, the product's is %g", k/8, g, w)
		}
	}
	return nil
}

func encodeRows(v []float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

// Cheat is a way a dishonest provider fakes a row block.
type Cheat string

// The cheats Compare must reject (tests and `kiln bench verify` forge each).
const (
	CheatOneValue  Cheat = "one-value"  // the honest block with one entry off by 1e-3
	CheatZeros     Cheat = "zeros"      // zeros: nothing computed
	CheatOtherSeed Cheat = "other-seed" // the same rows of another seed's product
)

// Cheats lists every Cheat.
var Cheats = []Cheat{CheatOneValue, CheatZeros, CheatOtherSeed}

// Forge returns what a provider cheating with c would claim for block id.
func (w Workload) Forge(ctx context.Context, job units.Job, id string, c Cheat) ([]byte, error) {
	p, err := unitParams(job)
	if err != nil {
		return nil, err
	}
	i, err := p.blockOf(id)
	if err != nil {
		return nil, err
	}
	lo, hi := i*p.BlockRows, min(p.N, (i+1)*p.BlockRows)
	switch c {
	case CheatOneValue:
		v := Rows(p.N, p.Seed, lo, hi)
		v[len(v)/2] += 1e-3
		return encodeRows(v), nil
	case CheatZeros:
		return make([]byte, 8*(hi-lo)*p.N), nil
	case CheatOtherSeed:
		return encodeRows(Rows(p.N, p.Seed+7, lo, hi)), nil
	}
	return nil, fmt.Errorf("matmul: unknown cheat %q", c)
}
