package tee

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
)

func encode(m types.Msg) []byte {
	w := codec.NewWriter(128)
	m.MarshalTo(w)
	return w.Bytes()
}

// FuzzDecodeAttest: a body that decodes re-encodes to the same bytes, and
// ValidateBasic never panics on it.
func FuzzDecodeAttest(f *testing.F) {
	f.Add(encode(&MsgAttest{Provider: types.Address{1}, NonceHeight: 7, SealKey: "age1abc", Evidence: []byte{1, 2}, Collateral: []byte(`{"vcek":"AA=="}`)}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := codec.NewReader(b)
		m := DecodeAttest(r)
		if r.Done() != nil {
			return
		}
		if got := encode(m); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding %x gave %x", b, got)
		}
		_ = m.ValidateBasic()
	})
}

func TestAttestValidateBasic(t *testing.T) {
	ok := MsgAttest{Provider: types.Address{1}, NonceHeight: 1, SealKey: "age1x", Evidence: []byte{1}}
	cases := []struct {
		edit func(*MsgAttest)
		want string
	}{
		{func(m *MsgAttest) { m.NonceHeight = 0 }, "nonce_height"},
		{func(m *MsgAttest) { m.Evidence = nil }, "evidence"},
		{func(m *MsgAttest) { m.Evidence = make([]byte, MaxEvidenceBytes+1) }, "evidence"},
		{func(m *MsgAttest) { m.Collateral = make([]byte, MaxCollateralBytes+1) }, "collateral"},
		{func(m *MsgAttest) { m.SealKey = "ssh-ed25519 AAAA" }, "seal_key"},
	}
	if err := ok.ValidateBasic(); err != nil {
		t.Fatalf("valid message refused: %v", err)
	}
	for _, c := range cases {
		m := ok
		c.edit(&m)
		if err := m.ValidateBasic(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateBasic = %v, want an error naming %s", err, c.want)
		}
	}
	if err := (Params{ReattestBlocks: 1, NonceWindowBlocks: 1}).Validate(); err == nil {
		t.Error("reattest_blocks 1 accepted")
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Errorf("default params: %v", err)
	}
}
