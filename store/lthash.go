package store

import (
	"crypto/sha256"
	"crypto/sha3"
	"encoding/binary"
)

// LtHashSize is the accumulator size in bytes: 1024 lanes of 16 bits.
const LtHashSize = 2048

// LtHash is a homomorphic multiset hash over key/value pairs (see the package doc).
type LtHash [LtHashSize / 2]uint16

// element expands a key/value pair into lanes. The key length prefix keeps (k, v)
// pairs unambiguous: ("ab","c") and ("a","bc") expand differently.
func element(key, value []byte) *LtHash {
	h := sha3.NewSHAKE128()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	h.Write(key)
	h.Write(value)
	var buf [LtHashSize]byte
	h.Read(buf[:])
	var e LtHash
	for i := range e {
		e[i] = binary.LittleEndian.Uint16(buf[2*i:])
	}
	return &e
}

// Add mixes the pair into the hash.
func (l *LtHash) Add(key, value []byte) {
	e := element(key, value)
	for i := range l {
		l[i] += e[i]
	}
}

// Remove takes the pair out of the hash; it must have been added.
func (l *LtHash) Remove(key, value []byte) {
	e := element(key, value)
	for i := range l {
		l[i] -= e[i]
	}
}

// Bytes returns the accumulator's canonical encoding.
func (l *LtHash) Bytes() []byte {
	b := make([]byte, LtHashSize)
	for i, v := range l {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// SetBytes loads an accumulator from its encoding.
func (l *LtHash) SetBytes(b []byte) bool {
	if len(b) != LtHashSize {
		return false
	}
	for i := range l {
		l[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return true
}

// Sum returns SHA-256 of the accumulator: the app hash.
func (l *LtHash) Sum() []byte {
	s := sha256.Sum256(l.Bytes())
	return s[:]
}
