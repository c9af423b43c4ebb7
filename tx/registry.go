package tx

import (
	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
)

// Decoder decodes one message body.
type Decoder func(r *codec.Reader) types.Msg

// Registry maps message types to their decoders.
type Registry struct{ decoders map[types.MsgType]Decoder }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{decoders: make(map[types.MsgType]Decoder)} }

// Register adds a decoder; registering a type twice panics (a wiring bug).
func (r *Registry) Register(t types.MsgType, d Decoder) {
	if _, dup := r.decoders[t]; dup {
		panic("tx: message type registered twice")
	}
	r.decoders[t] = d
}

// DecodeMsg decodes a raw message. Unknown types return ErrUnknownMsgType; bodies that do
// not decode canonically return ErrMalformedTx.
func (r *Registry) DecodeMsg(m RawMsg) (types.Msg, error) {
	d, ok := r.decoders[m.Type]
	if !ok {
		return nil, types.Wrapf(types.ErrUnknownMsgType, "type %d", m.Type)
	}
	rd := codec.NewReader(m.Body)
	msg := d(rd)
	if err := rd.Done(); err != nil {
		return nil, types.Wrapf(types.ErrMalformedTx, "message type %d: %v", m.Type, err)
	}
	return msg, nil
}
