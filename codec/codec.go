// Package codec is Kiln's canonical binary encoding: length-prefixed fields and minimal
// unsigned varints, so that every value has exactly one encoding.
//
// A Reader MUST refuse any input that a Writer would not produce (non-minimal varints,
// lengths past the end, trailing bytes), so that decode(b) succeeding implies
// encode(decode(b)) == b. Transactions are hashed and signed over these bytes.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed encoding")

// Writer appends canonical encodings to a byte slice.
type Writer struct{ buf []byte }

// NewWriter returns a Writer with capacity hint n.
func NewWriter(n int) *Writer { return &Writer{buf: make([]byte, 0, n)} }

// Bytes returns the encoded bytes; the Writer must not be used afterwards.
func (w *Writer) Bytes() []byte { return w.buf }

// Uvarint appends v as a minimal unsigned varint.
func (w *Writer) Uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }

// Bool appends 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// Bytes appends a length-prefixed byte string.
func (w *Writer) WriteBytes(b []byte) {
	w.Uvarint(uint64(len(b)))
	w.buf = append(w.buf, b...)
}

// String appends a length-prefixed string.
func (w *Writer) String(s string) {
	w.Uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

// Fixed appends b without a length prefix; the reader must know its size.
func (w *Writer) Fixed(b []byte) { w.buf = append(w.buf, b...) }

// Reader decodes what a Writer wrote. The first error sticks: later reads return zero
// values, and Err reports it.
type Reader struct {
	buf []byte
	off int
	err error
}

// NewReader reads b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err returns the first error met, if any.
func (r *Reader) Err() error { return r.err }

// Fail records err (wrapped as malformed) unless an error is already recorded.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

// Remaining returns how many bytes are left.
func (r *Reader) Remaining() int { return len(r.buf) - r.off }

// Done returns an error unless every byte was consumed without error.
func (r *Reader) Done() error {
	if r.err == nil && r.off != len(r.buf) {
		r.Fail("%d trailing bytes", len(r.buf)-r.off)
	}
	return r.err
}

// Uvarint reads a minimal unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf[r.off:])
	if n <= 0 {
		r.Fail("bad varint at offset %d", r.off)
		return 0
	}
	// NB: binary.Uvarint accepts padded encodings like 0x80 0x00; canonical form forbids them.
	if n != len(binary.AppendUvarint(nil, v)) {
		r.Fail("non-minimal varint at offset %d", r.off)
		return 0
	}
	r.off += n
	return v
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	if r.err != nil {
		return false
	}
	if r.off >= len(r.buf) {
		r.Fail("unexpected end reading bool")
		return false
	}
	b := r.buf[r.off]
	if b > 1 {
		r.Fail("bool byte %d at offset %d", b, r.off)
		return false
	}
	r.off++
	return b == 1
}

// Bytes reads a length-prefixed byte string of at most max bytes. The result aliases
// the input.
func (r *Reader) Bytes(max int) []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.Fail("length %d over limit %d", n, max)
		return nil
	}
	if n > uint64(r.Remaining()) {
		r.Fail("length %d past end of input", n)
		return nil
	}
	b := r.buf[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string { return string(r.Bytes(max)) }

// Fixed reads exactly n bytes.
func (r *Reader) Fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.Remaining() {
		r.Fail("unexpected end reading %d bytes", n)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}
