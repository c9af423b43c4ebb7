package tx_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

func key(i byte) ed25519.PrivateKey {
	s := sha256.Sum256([]byte{i})
	return ed25519.NewKeyFromSeed(s[:])
}

func addr(k ed25519.PrivateKey) types.Address {
	return types.AddressFromPubKey(k.Public().(ed25519.PublicKey))
}

func sampleTx(t testing.TB) *tx.Tx {
	k := key(1)
	tr, err := tx.Sign(k, "kiln-1", 7, types.NewCoin("ukiln", 900), "hello",
		&bank.MsgSend{From: addr(k), To: addr(key(2)), Amount: types.Coins{types.NewCoin("ukiln", 5)}},
		&staking.MsgDelegate{Delegator: addr(k), Validator: addr(key(3)), Amount: types.NewCoin("ukiln", 9)})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tr := sampleTx(t)
	raw := tr.Encode()
	got, err := tx.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), raw) || !got.VerifySignature() || got.Signer() != tr.Signer() {
		t.Fatal("decoded tx differs from the encoded one")
	}
}

func TestSignatureCoversEveryField(t *testing.T) {
	raw := sampleTx(t).Encode()
	// Flip each byte of the body in turn: the tx must either fail to decode or fail to verify.
	for i := 1; i < len(raw)-64-32; i++ {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		if got, err := tx.Decode(b); err == nil && got.VerifySignature() {
			t.Fatalf("flipping byte %d left a valid signature", i)
		}
	}
}

func TestDecodeRefusals(t *testing.T) {
	raw := sampleTx(t).Encode()
	tests := []struct {
		name string
		in   []byte
		want *types.Error
	}{
		{"empty", nil, types.ErrMalformedTx},
		{"wrong version", append([]byte{9}, raw[1:]...), types.ErrMalformedTx},
		{"truncated", raw[:len(raw)-1], types.ErrMalformedTx},
		{"trailing byte", append(bytes.Clone(raw), 0), types.ErrMalformedTx},
		{"oversized", make([]byte, tx.MaxTxBytes+1), types.ErrTxTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tx.Decode(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to the same
// bytes (the encoding is canonical, so a tx has exactly one hash).
func FuzzDecode(f *testing.F) {
	f.Add(sampleTx(f).Encode())
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 1, 100, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		tr, err := tx.Decode(raw)
		if err != nil {
			if types.CodeOf(err) != types.CodeMalformedTx && types.CodeOf(err) != types.CodeTxTooLarge {
				t.Fatalf("Decode error %v has code %d", err, types.CodeOf(err))
			}
			return
		}
		if !bytes.Equal(tr.Encode(), raw) {
			t.Fatalf("Decode accepted a non-canonical encoding")
		}
	})
}

// FuzzMsgValidation: every message decoder and ValidateBasic never panic on any body,
// and an accepted body re-encodes to the same bytes.
func FuzzMsgValidation(f *testing.F) {
	reg := app.NewRegistry()
	k := key(1)
	inv := registry.Inventory{Source: "declared", Region: "eu-west", CPUCores: 8, MemoryBytes: 32 << 30, StorageBytes: 1 << 40,
		GPUs: []registry.GPU{{Model: "h100", MemoryBytes: 80 << 30, Interface: "sxm", Count: 8}}, Runtime: registry.DefaultRuntime()}
	for _, m := range []types.Msg{
		&bank.MsgSend{From: addr(k), To: addr(key(2)), Amount: types.Coins{types.NewCoin("ukiln", 5)}},
		&staking.MsgCreateValidator{Operator: addr(k), ConsPubKey: k.Public().(ed25519.PublicKey), Moniker: "v", Amount: types.NewCoin("ukiln", 1)},
		&staking.MsgUnjail{Operator: addr(k)},
		&registry.MsgRegisterProvider{Owner: addr(k), Endpoint: "https://p:8443", CertPEM: []byte("x"), Inventory: inv, Stake: types.NewCoin("ukiln", 1)},
		&registry.MsgUpdateProvider{Owner: addr(k), Inventory: &inv},
	} {
		rm := tx.EncodeMsg(m)
		f.Add(uint32(rm.Type), rm.Body)
	}
	f.Fuzz(func(t *testing.T, typ uint32, body []byte) {
		m, err := reg.DecodeMsg(tx.RawMsg{Type: types.MsgType(typ), Body: body})
		if err != nil {
			return
		}
		_ = m.ValidateBasic()
		w := codec.NewWriter(len(body))
		m.MarshalTo(w)
		if !bytes.Equal(w.Bytes(), body) {
			t.Fatalf("message type %d: accepted a non-canonical body", typ)
		}
	})
}
