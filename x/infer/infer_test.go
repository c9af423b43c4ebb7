package infer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
)

func encode(m types.Msg) []byte {
	w := codec.NewWriter(128)
	m.MarshalTo(w)
	return w.Bytes()
}

func roundTrip(t *testing.T, d tx.Decoder, b []byte) {
	r := codec.NewReader(b)
	m := d(r)
	if r.Done() != nil {
		return
	}
	if got := encode(m); !bytes.Equal(got, b) {
		t.Fatalf("re-encoding %x gave %x", b, got)
	}
	_ = m.ValidateBasic()
}

var h64 = strings.Repeat("ab", 32)

func FuzzDecodeRegisterModel(f *testing.F) {
	f.Add(encode(&MsgRegisterModel{Owner: types.Address{1}, ID: "m", Hash: h64}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeRegisterModel, b) })
}

func FuzzDecodeServeModel(f *testing.F) {
	f.Add(encode(&MsgServeModel{Provider: types.Address{1}, Model: "m", Hash: h64}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeServeModel, b) })
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(encode(&MsgInferRequest{Requester: types.Address{1}, Model: "m", Input: []byte("hi"), MaxFee: 5}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeRequest, b) })
}

func FuzzDecodeResult(f *testing.F) {
	f.Add(encode(&MsgInferResult{Provider: types.Address{1}, RequestID: 1, Output: []byte("4"), OutputHash: HashOutput([]byte("4"))}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeResult, b) })
}

func TestValidateBasic(t *testing.T) {
	cases := []struct {
		m    types.Msg
		want string
	}{
		{&MsgRegisterModel{ID: "Bad ID", Hash: h64}, "model"},
		{&MsgRegisterModel{ID: "m", Hash: "xyz"}, "hash"},
		{&MsgInferRequest{Model: "m", Input: nil, MaxFee: 1}, "input"},
		{&MsgInferRequest{Model: "m", Input: make([]byte, MaxInputBytes+1), MaxFee: 1}, "input"},
		{&MsgInferRequest{Model: "m", Input: []byte("x")}, "max_fee"},
		{&MsgInferResult{RequestID: 1, Output: []byte("a"), OutputHash: HashOutput([]byte("b"))}, "must be the SHA-256 of output"},
		{&MsgInferResult{RequestID: 0, Output: []byte("a"), OutputHash: HashOutput([]byte("a"))}, "request_id"},
	}
	for _, c := range cases {
		if err := c.m.ValidateBasic(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%T.ValidateBasic = %v, want an error naming %q", c.m, err, c.want)
		}
	}
	if err := (Params{Denom: "ukiln", AgreeK: 0, DeadlineBlocks: 1}).Validate(); err == nil {
		t.Error("agree_k 0 accepted")
	}
}
