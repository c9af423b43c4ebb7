package verify

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/kiln-network/kiln/work/matmul"
)

func matmulJob(tb testing.TB, n int) ([]byte, string, []byte) {
	tb.Helper()
	p := matmul.UnitParams{N: n, Seed: 9, BlockRows: matmul.DefaultBlockRows(n)}
	job, err := matmul.NewJob(p)
	if err != nil {
		tb.Fatal(err)
	}
	jb := fmt.Sprintf(`{"kind":%q,"params":%s}`, job.Kind, job.Params)
	rows := matmul.Rows(n, p.Seed, 0, p.BlockRows)
	data := make([]byte, 8*len(rows))
	for i, v := range rows {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
	}
	return []byte(jb), matmul.BlockID(0), data
}

// The chain's matmul check passes an honest block, convicts a zeroed one and a block
// of another job, and hands jobs over max_direct_n to a committee.
func TestMatmulDirectCheck(t *testing.T) {
	p := DefaultParams()
	job, unit, data := matmulJob(t, 128)
	if ok, why, err := matmulCheck(p, job, unit, data, 3); !ok || err != nil {
		t.Fatalf("honest block: %v %q %v", ok, why, err)
	}
	if ok, _, err := matmulCheck(p, job, unit, make([]byte, len(data)), 3); ok || err != nil {
		t.Fatalf("zeroed block passed (%v)", err)
	}
	if ok, _, _ := matmulCheck(p, []byte(`{"kind":"matmul","params":{"n":128,"seed":10,"block_rows":2}}`), unit, data, 3); ok {
		t.Fatal("a block of seed 9 passed as seed 10's")
	}
	if ok, _, _ := matmulCheck(p, []byte(`not json`), unit, data, 3); ok {
		t.Fatal("a malformed job passed")
	}
	p.MaxDirectN = 64
	if _, _, err := matmulCheck(p, job, unit, data, 3); err == nil {
		t.Fatal("a job over max_direct_n was checked on chain")
	}
}

// What a challenged matmul block costs FinalizeBlock, at the demo's size and at the
// default max_direct_n.
func BenchmarkMatmulDirectCheck(b *testing.B) {
	for _, n := range []int{384, 1024} {
		job, unit, data := matmulJob(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if ok, _, err := matmulCheck(DefaultParams(), job, unit, data, int64(i)); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
