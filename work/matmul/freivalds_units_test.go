package matmul

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/kiln-network/kiln/work/units"
)

// CheckBlocks passes every honest block and fails blocks that are zeroed, copied from
// another block, or off in a single value by 1e-3, without recomputing any block.
func TestCheckBlocks(t *testing.T) {
	p := UnitParams{N: 96, Seed: 5, BlockRows: 4}
	job, err := NewJob(p)
	if err != nil {
		t.Fatal(err)
	}
	honest := map[string][]byte{}
	for i := 0; i < p.blocks(); i++ {
		lo, hi := i*p.BlockRows, min(p.N, (i+1)*p.BlockRows)
		honest[BlockID(i)] = encodeRows(Rows(p.N, p.Seed, lo, hi))
	}
	res, err := CheckBlocks(job, honest, 1)
	if err != nil {
		t.Fatal(err)
	}
	for id, e := range res {
		if e != nil {
			t.Fatalf("honest block %s: %v", id, e)
		}
	}
	nudged := append([]byte(nil), honest[BlockID(3)]...)
	v := math.Float64frombits(binary.LittleEndian.Uint64(nudged[8*17:]))
	binary.LittleEndian.PutUint64(nudged[8*17:], math.Float64bits(v+1e-3))
	for name, data := range map[string][]byte{
		"zeros":  make([]byte, len(honest[BlockID(3)])),
		"copied": honest[BlockID(4)],
		"nudged": nudged,
		"short":  honest[BlockID(3)][:8],
	} {
		for seed := int64(1); seed <= 20; seed++ {
			res, err := CheckBlocks(job, map[string][]byte{BlockID(3): data}, seed)
			if err != nil {
				t.Fatal(err)
			}
			if !units.IsMismatch(res[BlockID(3)]) {
				t.Fatalf("%s block passed Freivalds' check with seed %d", name, seed)
			}
		}
	}
	if _, err := CheckBlocks(job, map[string][]byte{"rows-99999": nil}, 1); err == nil {
		t.Fatal("a block id outside the job was accepted")
	}
}
