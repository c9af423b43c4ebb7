package matmul

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/kiln-network/kiln/work/units"
)

func TestMultiplyAndFreivalds(t *testing.T) {
	n := 64
	a, b := Generate(n, 1), Generate(n, 2)
	c := Multiply(a, b, n)
	if !Freivalds(a, b, c, n, 20, 7) {
		t.Fatal("Freivalds rejected a correct product")
	}
	c[5*n+9] += 0.5 // one wrong entry
	if Freivalds(a, b, c, n, 20, 7) {
		t.Fatal("Freivalds accepted a wrong product")
	}
}

func TestRunDeterministic(t *testing.T) {
	r1, err := Run(48, 3)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Run(48, 3)
	if r1.Digest != r2.Digest || !r1.Verified {
		t.Fatalf("Run(48, 3) twice: %s vs %s, verified %v", r1.Digest, r2.Digest, r1.Verified)
	}
	if _, err := Run(0, 1); err == nil {
		t.Fatal("Run accepted size 0")
	}
}

func BenchmarkMultiply256(b *testing.B) {
	a, m := Generate(256, 1), Generate(256, 2)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Multiply(a, m, 256)
	}
}

func TestUnits(t *testing.T) {
	dir := t.TempDir()
	job, err := NewJob(UnitParams{N: 70, Seed: 3, BlockRows: DefaultBlockRows(70)})
	if err != nil {
		t.Fatal(err)
	}
	if err := (Workload{}).Run(context.Background(), job, dir, nil); err != nil {
		t.Fatal(err)
	}
	set, err := units.Read(dir)
	if err != nil || len(set) != 35 {
		t.Fatalf("n=70 in blocks of 2 rows: %d units (%v), want 35", len(set), err)
	}
	reg := units.NewRegistry(Workload{})
	rep, err := reg.Verify(context.Background(), dir, 35, []byte("x"), nil)
	if err != nil || rep.Verdict != units.VerdictOK {
		t.Fatalf("honest: %+v %v", rep, err)
	}
	// The block recomputed alone is the product's rows, bit for bit.
	c := Multiply(Generate(70, 3), Generate(70, 4), 70)
	b, _ := set.Load(dir, BlockID(34))
	if want := encodeRows(c[68*70:]); !bytes.Equal(b, want) {
		t.Fatal("last block is not rows 68-69 of the product")
	}
	// Cheats: one value off by 1e-3, a block of zeros, another seed's block, a short block.
	jobOther, _ := NewJob(UnitParams{N: 70, Seed: 4, BlockRows: 2})
	other, _ := Workload{}.RunUnit(context.Background(), jobOther, BlockID(5), nil)
	honest, _ := set.Load(dir, BlockID(5))
	off := append([]byte(nil), honest...)
	binary.LittleEndian.PutUint64(off[80:], math.Float64bits(math.Float64frombits(binary.LittleEndian.Uint64(off[80:]))+1e-3))
	for name, claimed := range map[string][]byte{"one value off": off, "zeros": make([]byte, len(honest)), "other seed": other, "short": honest[:8]} {
		if err := (Workload{}).Compare(job, BlockID(5), claimed, honest); !units.IsMismatch(err) {
			t.Errorf("Compare(%s) = %v, want a mismatch", name, err)
		}
	}
	for _, c := range Cheats {
		forged, err := Workload{}.Forge(context.Background(), job, BlockID(7), c)
		if err != nil {
			t.Fatal(err)
		}
		recomputed, _ := Workload{}.RunUnit(context.Background(), job, BlockID(7), nil)
		if err := (Workload{}).Compare(job, BlockID(7), forged, recomputed); !units.IsMismatch(err) {
			t.Errorf("Compare(forged %s) = %v, want a mismatch", c, err)
		}
	}
	if _, err := NewJob(UnitParams{N: 10, BlockRows: 11}); err == nil {
		t.Error("NewJob accepted block_rows > n")
	}
}
