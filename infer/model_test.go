package infer

import (
	"bytes"
	"testing"
)

// The built-in model is deterministic (same weights hash, same outputs) and its
// output depends on its input.
func TestTinyDeterministic(t *testing.T) {
	a, b := NewTiny(), NewTiny()
	if a.Hash() != b.Hash() || len(a.Hash()) != 64 {
		t.Fatalf("hashes %q %q", a.Hash(), b.Hash())
	}
	outs := map[string]bool{}
	for _, in := range []string{"hello", "world", "the quick brown fox", "0123456789", "zzzz"} {
		x, err := a.Infer([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		y, _ := b.Infer([]byte(in))
		if !bytes.Equal(x, y) {
			t.Fatalf("Infer(%q) differs between two instances: %s vs %s", in, x, y)
		}
		outs[string(x)] = true
	}
	if len(outs) < 3 {
		t.Errorf("5 inputs gave only %d distinct outputs", len(outs))
	}
	if _, err := a.Infer(nil); err == nil {
		t.Error("Infer(empty) = nil error")
	}
}
