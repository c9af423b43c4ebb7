package staking

import (
	"crypto/ed25519"
	"unicode/utf8"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// MsgCreateValidator registers a validator with a self-bond.
type MsgCreateValidator struct {
	Operator   types.Address `json:"operator"`
	ConsPubKey []byte        `json:"cons_pubkey"`
	Moniker    string        `json:"moniker"`
	Amount     types.Coin    `json:"amount"`
}

// MsgDelegate bonds stake to a validator.
type MsgDelegate struct {
	Delegator types.Address `json:"delegator"`
	Validator types.Address `json:"validator"`
	Amount    types.Coin    `json:"amount"`
}

// MsgUndelegate starts unbonding stake from a validator.
type MsgUndelegate struct {
	Delegator types.Address `json:"delegator"`
	Validator types.Address `json:"validator"`
	Amount    types.Coin    `json:"amount"`
}

// MsgUnjail brings a jailed validator back after its jail time.
type MsgUnjail struct {
	Operator types.Address `json:"operator"`
}

func (m *MsgCreateValidator) Type() types.MsgType { return types.MsgTypeStakingCreateValidator }
func (m *MsgDelegate) Type() types.MsgType        { return types.MsgTypeStakingDelegate }
func (m *MsgUndelegate) Type() types.MsgType      { return types.MsgTypeStakingUndelegate }
func (m *MsgUnjail) Type() types.MsgType          { return types.MsgTypeStakingUnjail }

func (m *MsgCreateValidator) Signer() types.Address { return m.Operator }
func (m *MsgDelegate) Signer() types.Address        { return m.Delegator }
func (m *MsgUndelegate) Signer() types.Address      { return m.Delegator }
func (m *MsgUnjail) Signer() types.Address          { return m.Operator }

func validateStake(c types.Coin) error {
	if err := c.Validate(); err != nil {
		return types.InvalidField("amount", c, err.Error())
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgCreateValidator) ValidateBasic() error {
	if len(m.ConsPubKey) != ed25519.PublicKeySize {
		return types.InvalidField("cons_pubkey", len(m.ConsPubKey), "must be a 32-byte ed25519 public key")
	}
	if len(m.Moniker) > 64 || !utf8.ValidString(m.Moniker) {
		return types.InvalidField("moniker", m.Moniker, "must be valid UTF-8 of at most 64 bytes")
	}
	return validateStake(m.Amount)
}

// ValidateBasic implements types.Msg.
func (m *MsgDelegate) ValidateBasic() error {
	if m.Validator.IsZero() {
		return types.InvalidField("validator", "", "must be set")
	}
	return validateStake(m.Amount)
}

// ValidateBasic implements types.Msg.
func (m *MsgUndelegate) ValidateBasic() error {
	if m.Validator.IsZero() {
		return types.InvalidField("validator", "", "must be set")
	}
	return validateStake(m.Amount)
}

// ValidateBasic implements types.Msg.
func (m *MsgUnjail) ValidateBasic() error { return nil }

func writeCoin(w *codec.Writer, c types.Coin) { w.String(c.Denom); w.Uvarint(c.Amount) }
func readCoin(r *codec.Reader) types.Coin {
	return types.Coin{Denom: r.String(128), Amount: r.Uvarint()}
}

func (m *MsgCreateValidator) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Operator[:])
	w.WriteBytes(m.ConsPubKey)
	w.String(m.Moniker)
	writeCoin(w, m.Amount)
}

func (m *MsgDelegate) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Delegator[:])
	w.Fixed(m.Validator[:])
	writeCoin(w, m.Amount)
}

func (m *MsgUndelegate) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Delegator[:])
	w.Fixed(m.Validator[:])
	writeCoin(w, m.Amount)
}

func (m *MsgUnjail) MarshalTo(w *codec.Writer) { w.Fixed(m.Operator[:]) }

// Decoders for the app's message registry.
func DecodeCreateValidator(r *codec.Reader) types.Msg {
	return &MsgCreateValidator{Operator: bank.ReadAddress(r), ConsPubKey: r.Bytes(64), Moniker: r.String(256), Amount: readCoin(r)}
}

func DecodeDelegate(r *codec.Reader) types.Msg {
	return &MsgDelegate{Delegator: bank.ReadAddress(r), Validator: bank.ReadAddress(r), Amount: readCoin(r)}
}

func DecodeUndelegate(r *codec.Reader) types.Msg {
	return &MsgUndelegate{Delegator: bank.ReadAddress(r), Validator: bank.ReadAddress(r), Amount: readCoin(r)}
}

func DecodeUnjail(r *codec.Reader) types.Msg { return &MsgUnjail{Operator: bank.ReadAddress(r)} }

func (p Params) checkDenom(c types.Coin) error {
	if c.Denom != p.BondDenom {
		return types.Wrapf(types.ErrInvalidMsg, "stake must be in %s (got %s)", p.BondDenom, c.Denom)
	}
	return nil
}

// Handle executes a staking message.
func Handle(ctx *types.Context, msg types.Msg) error {
	var p Params
	getParams(ctx, &p)
	switch m := msg.(type) {
	case *MsgCreateValidator:
		if err := p.checkDenom(m.Amount); err != nil {
			return err
		}
		return CreateValidator(ctx, m.Operator, m.ConsPubKey, m.Moniker, m.Amount.Amount)
	case *MsgDelegate:
		if err := p.checkDenom(m.Amount); err != nil {
			return err
		}
		return Delegate(ctx, m.Validator, m.Delegator, m.Amount.Amount)
	case *MsgUndelegate:
		if err := p.checkDenom(m.Amount); err != nil {
			return err
		}
		return Undelegate(ctx, m.Validator, m.Delegator, m.Amount.Amount)
	case *MsgUnjail:
		return Unjail(ctx, m.Operator)
	}
	return types.Wrapf(types.ErrUnknownMsgType, "staking cannot handle %T", msg)
}
