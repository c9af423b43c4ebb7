package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	w := NewWriter(0)
	w.Uvarint(0)
	w.Uvarint(300)
	w.Uvarint(^uint64(0))
	w.Bool(true)
	w.String("kiln")
	w.WriteBytes([]byte{1, 2, 3})
	w.Fixed([]byte{9, 9})
	r := NewReader(w.Bytes())
	if got := r.Uvarint(); got != 0 {
		t.Fatalf("Uvarint = %d, want 0", got)
	}
	if got := r.Uvarint(); got != 300 {
		t.Fatalf("Uvarint = %d, want 300", got)
	}
	if got := r.Uvarint(); got != ^uint64(0) {
		t.Fatalf("Uvarint = %d, want max", got)
	}
	if !r.Bool() {
		t.Fatal("Bool = false")
	}
	if got := r.String(10); got != "kiln" {
		t.Fatalf("String = %q", got)
	}
	if got := r.Bytes(10); !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("Bytes = %v", got)
	}
	if got := r.Fixed(2); !bytes.Equal(got, []byte{9, 9}) {
		t.Fatalf("Fixed = %v", got)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesNonCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(r *Reader)
	}{
		{"padded varint", []byte{0x80, 0x00}, func(r *Reader) { r.Uvarint() }},
		{"truncated varint", []byte{0x80}, func(r *Reader) { r.Uvarint() }},
		{"bool 2", []byte{2}, func(r *Reader) { r.Bool() }},
		{"length past end", []byte{5, 'a'}, func(r *Reader) { r.Bytes(10) }},
		{"length over limit", []byte{3, 'a', 'b', 'c'}, func(r *Reader) { r.Bytes(2) }},
		{"trailing bytes", []byte{1, 0}, func(r *Reader) { r.Uvarint() }},
		{"short fixed", []byte{1}, func(r *Reader) { r.Fixed(2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.in)
			tt.read(r)
			if err := r.Done(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Done() = %v, want ErrMalformed", err)
			}
		})
	}
}
