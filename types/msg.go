package types

import "github.com/kiln-network/kiln/codec"

// MsgType identifies a message kind on the wire. Values are part of the protocol: never
// reuse or renumber. The app has one dispatch switch over them; an unknown value is
// refused deterministically with CodeUnknownMsgType.
type MsgType uint32

// Message types, grouped by module in blocks of 100.
const (
	MsgTypeBankSend MsgType = 100

	MsgTypeStakingCreateValidator MsgType = 200
	MsgTypeStakingDelegate        MsgType = 201
	MsgTypeStakingUndelegate      MsgType = 202
	MsgTypeStakingUnjail          MsgType = 203

	MsgTypeRegistryRegister   MsgType = 300
	MsgTypeRegistryUpdate     MsgType = 301
	MsgTypeRegistryDeregister MsgType = 302

	MsgTypeCertPublish MsgType = 400
	MsgTypeCertRevoke  MsgType = 401

	MsgTypeMarketCreateOrder   MsgType = 500
	MsgTypeMarketCloseOrder    MsgType = 501
	MsgTypeMarketCreateBid     MsgType = 502
	MsgTypeMarketCloseBid      MsgType = 503
	MsgTypeMarketCreateLease   MsgType = 504
	MsgTypeMarketCloseLease    MsgType = 505
	MsgTypeMarketHeartbeat     MsgType = 506
	MsgTypeMarketCompleteLease MsgType = 507
	MsgTypeMarketStartLease    MsgType = 508

	MsgTypeEscrowDeposit MsgType = 600

	// Liveness and hardware challenges (x/liveness): 750-799.
	MsgTypeLivenessAnswer MsgType = 750
	MsgTypeLivenessReveal MsgType = 751
)

// Msg is one action in a transaction.
type Msg interface {
	// Type returns the wire type.
	Type() MsgType
	// Signer returns the account that must sign the transaction carrying this message.
	Signer() Address
	// ValidateBasic checks the message without state; it returns an ErrInvalidMsg-coded
	// error naming the field and value on failure.
	ValidateBasic() error
	// MarshalTo appends the canonical encoding of the message body.
	MarshalTo(w *codec.Writer)
}

// InvalidField returns an ErrInvalidMsg error naming the field, value and rule.
func InvalidField(field string, value any, rule string) error {
	return Wrapf(ErrInvalidMsg, "%s: %s (got %v)", field, rule, value)
}
