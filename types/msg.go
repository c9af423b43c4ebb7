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

	// Pricing modes (issue 11): 520-569.
	MsgTypeMarketAsk       MsgType = 520
	MsgTypeMarketCancelAsk MsgType = 521
	MsgTypeMarketCommitBid MsgType = 522
	MsgTypeMarketRevealBid MsgType = 523
	MsgTypeMarketRTTProbe  MsgType = 524
	MsgTypeMarketReclaim   MsgType = 525

	// GPU clusters (issue 16): 530-539.
	MsgTypeMarketMemberReady   MsgType = 530
	MsgTypeMarketMemberRunning MsgType = 531

	MsgTypeEscrowDeposit MsgType = 600

	// Verification (x/verify): 700-749.
	MsgTypeVerifyRegisterVerifier MsgType = 700
	MsgTypeVerifyUnbondVerifier   MsgType = 701
	MsgTypeVerifyCommit           MsgType = 702
	MsgTypeVerifyVerdict          MsgType = 703
	MsgTypeVerifyDispute          MsgType = 704
	MsgTypeVerifyVote             MsgType = 705
	MsgTypeVerifyUnavailable      MsgType = 706
	// Liveness and hardware challenges (x/liveness): 750-799.
	MsgTypeLivenessAnswer MsgType = 750
	MsgTypeLivenessReveal MsgType = 751
	// Confidential compute (x/tee) and on-chain inference (x/infer): 900-949.
	MsgTypeTEEAttest          MsgType = 900
	MsgTypeInferRegisterModel MsgType = 910
	MsgTypeInferServeModel    MsgType = 911
	MsgTypeInferRequest       MsgType = 912
	MsgTypeInferResult        MsgType = 913
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
