// Package tx is the transaction envelope: messages, fee, chain-id, sequence and an
// ed25519 signature over canonical sign-bytes, in Kiln's deterministic binary encoding.
package tx

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
)

// Limits on a transaction's parts. MaxTxBytes bounds what CheckTx will even decode.
const (
	MaxTxBytes       = 64 << 10
	MaxMsgs          = 32
	MaxMsgBytes      = 32 << 10
	MaxMemo          = 256
	MaxChainID       = 50
	version     byte = 1
)

// signDomain separates Kiln tx signatures from any other use of the same key.
const signDomain = "kiln/tx/v1\x00"

// RawMsg is a message as it travels: its type and encoded body. The body is decoded by
// the app's message registry, so that an unknown type is a clear refusal, not a decode
// error.
type RawMsg struct {
	Type types.MsgType
	Body []byte
}

// Body is the signed part of a transaction.
type Body struct {
	ChainID  string
	Sequence uint64
	Fee      types.Coin
	Memo     string
	Msgs     []RawMsg
}

// Tx is a signed transaction.
type Tx struct {
	Body      Body
	PubKey    ed25519.PublicKey // 32 bytes
	Signature []byte            // 64 bytes
}

func (b *Body) marshal(w *codec.Writer) {
	w.String(b.ChainID)
	w.Uvarint(b.Sequence)
	w.String(b.Fee.Denom)
	w.Uvarint(b.Fee.Amount)
	w.String(b.Memo)
	w.Uvarint(uint64(len(b.Msgs)))
	for _, m := range b.Msgs {
		w.Uvarint(uint64(m.Type))
		w.WriteBytes(m.Body)
	}
}

// SignBytes returns the canonical bytes a signer signs.
func (b *Body) SignBytes() []byte {
	w := codec.NewWriter(256)
	w.Fixed([]byte(signDomain))
	b.marshal(w)
	return w.Bytes()
}

// Encode returns the canonical encoding of tx.
func (t *Tx) Encode() []byte {
	w := codec.NewWriter(256)
	w.Fixed([]byte{version})
	t.Body.marshal(w)
	w.Fixed(t.PubKey)
	w.Fixed(t.Signature)
	return w.Bytes()
}

// Hash returns SHA-256 of the encoded tx, the hash CometBFT indexes it under.
func Hash(raw []byte) [32]byte { return sha256.Sum256(raw) }

// Decode parses a transaction. It refuses anything that is not the canonical encoding
// of some Tx, so Decode(b) succeeding implies Encode() == b. Errors carry
// types.ErrMalformedTx or types.ErrTxTooLarge.
func Decode(raw []byte) (*Tx, error) {
	if len(raw) > MaxTxBytes {
		return nil, types.Wrapf(types.ErrTxTooLarge, "%d bytes, limit %d", len(raw), MaxTxBytes)
	}
	r := codec.NewReader(raw)
	if v := r.Fixed(1); r.Err() == nil && v[0] != version {
		return nil, types.Wrapf(types.ErrMalformedTx, "version %d, want %d", v[0], version)
	}
	var t Tx
	t.Body.ChainID = r.String(MaxChainID)
	t.Body.Sequence = r.Uvarint()
	t.Body.Fee.Denom = r.String(128)
	t.Body.Fee.Amount = r.Uvarint()
	t.Body.Memo = r.String(MaxMemo)
	n := r.Uvarint()
	if r.Err() == nil && (n == 0 || n > MaxMsgs) {
		return nil, types.Wrapf(types.ErrMalformedTx, "%d messages, want 1 to %d", n, MaxMsgs)
	}
	if r.Err() == nil {
		t.Body.Msgs = make([]RawMsg, 0, n)
		for i := uint64(0); i < n && r.Err() == nil; i++ {
			typ := r.Uvarint()
			if typ > 1<<32-1 {
				r.Fail("message type %d out of range", typ)
			}
			body := r.Bytes(MaxMsgBytes)
			t.Body.Msgs = append(t.Body.Msgs, RawMsg{Type: types.MsgType(typ), Body: body})
		}
	}
	t.PubKey = ed25519.PublicKey(r.Fixed(ed25519.PublicKeySize))
	t.Signature = r.Fixed(ed25519.SignatureSize)
	if err := r.Done(); err != nil {
		return nil, types.Wrapf(types.ErrMalformedTx, "%v", err)
	}
	return &t, nil
}

// Signer returns the address of the signing key.
func (t *Tx) Signer() types.Address { return types.AddressFromPubKey(t.PubKey) }

// VerifySignature checks the signature over the body's sign-bytes.
func (t *Tx) VerifySignature() bool {
	return ed25519.Verify(t.PubKey, t.Body.SignBytes(), t.Signature)
}

// EncodeMsg returns the wire form of a message.
func EncodeMsg(m types.Msg) RawMsg {
	w := codec.NewWriter(128)
	m.MarshalTo(w)
	return RawMsg{Type: m.Type(), Body: w.Bytes()}
}

// Sign builds and signs a transaction carrying msgs.
func Sign(key ed25519.PrivateKey, chainID string, seq uint64, fee types.Coin, memo string, msgs ...types.Msg) (*Tx, error) {
	if len(msgs) == 0 || len(msgs) > MaxMsgs {
		return nil, fmt.Errorf("a transaction carries 1 to %d messages, got %d", MaxMsgs, len(msgs))
	}
	b := Body{ChainID: chainID, Sequence: seq, Fee: fee, Memo: memo}
	for _, m := range msgs {
		b.Msgs = append(b.Msgs, EncodeMsg(m))
	}
	t := &Tx{Body: b, PubKey: key.Public().(ed25519.PublicKey)}
	t.Signature = ed25519.Sign(key, b.SignBytes())
	return t, nil
}
