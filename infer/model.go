// Package infer is the provider side of on-chain inference (x/infer): a small
// deterministic model that ships in the binary, and the loop that answers the chain's
// requests for the models a provider serves.
package infer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Model computes an output from an input, the same bytes on every machine.
type Model interface {
	// ID is the model's id on chain.
	ID() string
	// Hash is the SHA-256 of the model's weights, hex: what the chain registers.
	Hash() string
	// Infer returns the output for input.
	Infer(input []byte) ([]byte, error)
}

// TinyID is the id of the built-in model.
const TinyID = "kiln-tiny-mlp-v1"

// Tiny is a two-layer integer perceptron over a 64-bucket byte histogram: 64 inputs,
// 32 hidden units (ReLU), 8 classes. Its weights come from SHA-256 in counter mode
// over a fixed seed, and all arithmetic is integer, so every provider computes the same
// output bit for bit (floating point would not guarantee that across CPUs). It stands
// in for a real model in the demo and the benchmark; a provider serving a real one
// registers that model's hash instead.
type Tiny struct {
	w1   [32][64]int32
	b1   [32]int32
	w2   [8][32]int32
	hash string
}

// NewTiny builds the built-in model.
func NewTiny() *Tiny {
	t := &Tiny{}
	var buf []byte
	ctr := uint64(0)
	next := func() int32 {
		if len(buf) < 2 {
			s := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("kiln-tiny-mlp-v1/weights"), ctr))
			ctr++
			buf = s[:]
		}
		v := int32(int8(buf[0]))<<8 | int32(buf[1])
		buf = buf[2:]
		return v % 1024
	}
	for i := range t.w1 {
		for j := range t.w1[i] {
			t.w1[i][j] = next()
		}
		t.b1[i] = next()
	}
	for i := range t.w2 {
		for j := range t.w2[i] {
			t.w2[i][j] = next()
		}
	}
	h := sha256.New()
	for i := range t.w1 {
		for j := range t.w1[i] {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(t.w1[i][j])))
		}
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(t.b1[i])))
	}
	for i := range t.w2 {
		for j := range t.w2[i] {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(t.w2[i][j])))
		}
	}
	t.hash = hex.EncodeToString(h.Sum(nil))
	return t
}

func (t *Tiny) ID() string   { return TinyID }
func (t *Tiny) Hash() string { return t.hash }

// TinyOutput is what Tiny returns, as JSON.
type TinyOutput struct {
	Class  int     `json:"class"`
	Scores []int64 `json:"scores"`
}

// Infer classifies input into one of 8 classes.
func (t *Tiny) Infer(input []byte) ([]byte, error) {
	if len(input) == 0 {
		return nil, fmt.Errorf("infer %s: empty input", TinyID)
	}
	var x [64]int64
	for _, b := range input {
		x[b&63]++
	}
	var hid [32]int64
	for i := range hid {
		s := int64(t.b1[i])
		for j, v := range x {
			s += int64(t.w1[i][j]) * v
		}
		if s < 0 {
			s = 0
		}
		hid[i] = s >> 8
	}
	out := TinyOutput{Scores: make([]int64, 8)}
	for i := range out.Scores {
		var s int64
		for j, v := range hid {
			s += int64(t.w2[i][j]) * v
		}
		out.Scores[i] = s
		if s > out.Scores[out.Class] {
			out.Class = i
		}
	}
	return json.Marshal(out)
}
