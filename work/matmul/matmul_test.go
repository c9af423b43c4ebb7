package matmul

import "testing"

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
