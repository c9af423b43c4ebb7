package types

import (
	"bytes"
	"fmt"
	"testing"
)

func randCtx(seed byte) *Context {
	c := &Context{}
	c.BlockRand[0] = seed
	c.BlockRand[31] = 1
	return c
}

// The same block, purpose and parts give the same stream; any difference gives an
// unrelated one, and parts are length-prefixed so no two splits collide.
func TestRandDeterministicAndSeparated(t *testing.T) {
	base := randCtx(1).Rand("verify/spot-check", []byte("lease-7")).Bytes(64)
	if again := randCtx(1).Rand("verify/spot-check", []byte("lease-7")).Bytes(64); !bytes.Equal(base, again) {
		t.Fatalf("Rand is not deterministic: %x then %x", base, again)
	}
	tests := []struct {
		name    string
		ctx     *Context
		purpose string
		parts   [][]byte
	}{
		{"another block", randCtx(2), "verify/spot-check", [][]byte{[]byte("lease-7")}},
		{"another purpose", randCtx(1), "market/tie-break", [][]byte{[]byte("lease-7")}},
		{"another part", randCtx(1), "verify/spot-check", [][]byte{[]byte("lease-8")}},
		{"the part split in two", randCtx(1), "verify/spot-check", [][]byte{[]byte("lease-"), []byte("7")}},
		{"the part moved into the purpose", randCtx(1), "verify/spot-checklease-7", nil},
		{"no part", randCtx(1), "verify/spot-check", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ctx.Rand(tt.purpose, tt.parts...).Bytes(64); bytes.Equal(got, base) {
				t.Fatalf("Rand(%q, %q) = %x, the same as the base stream", tt.purpose, tt.parts, got)
			}
		})
	}
}

// Reading a stream in pieces gives the same bytes as reading it at once.
func TestRandStreamReadsContinue(t *testing.T) {
	whole := randCtx(3).Rand("p").Bytes(100)
	s := randCtx(3).Rand("p")
	var pieces []byte
	for _, n := range []int{1, 7, 24, 32, 3, 33} {
		pieces = append(pieces, s.Bytes(n)...)
	}
	if !bytes.Equal(pieces, whole) {
		t.Fatalf("pieces %x\nwhole  %x", pieces, whole)
	}
	u := randCtx(3).Rand("p")
	if got, want := u.Uint64(), uint64(whole[0])<<56|uint64(whole[1])<<48|uint64(whole[2])<<40|uint64(whole[3])<<32|
		uint64(whole[4])<<24|uint64(whole[5])<<16|uint64(whole[6])<<8|uint64(whole[7]); got != want {
		t.Fatalf("Uint64() = %x, want the first 8 bytes %x", got, want)
	}
}

// Uint64N stays in range and is close to uniform: over 60000 draws from [0,6) each
// value comes up within 5% of 10000 (a fair die's standard deviation there is ~91).
func TestRandUint64NUniform(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 1000, 1<<63 + 1, ^uint64(0)} {
		s := randCtx(4).Rand("range", []byte(fmt.Sprint(n)))
		for range 1000 {
			if v := s.Uint64N(n); v >= n {
				t.Fatalf("Uint64N(%d) = %d", n, v)
			}
		}
	}
	s := randCtx(5).Rand("die")
	var counts [6]int
	for range 60000 {
		counts[s.Uint64N(6)]++
	}
	for v, c := range counts {
		if c < 9500 || c > 10500 {
			t.Fatalf("value %d drawn %d times of 60000, want about 10000: %v", v, c, counts)
		}
	}
}

func TestRandPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func()
	}{
		{"no block randomness", func() { (&Context{}).Rand("p") }},
		{"Uint64N(0)", func() { randCtx(1).Rand("p").Uint64N(0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("%s did not panic", tt.name)
				}
			}()
			tt.f()
		})
	}
}
