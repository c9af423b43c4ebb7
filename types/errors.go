package types

import (
	"errors"
	"fmt"
)

// Codespace is the ABCI codespace of every Kiln result code.
const Codespace = "kiln"

// Result codes. Each refusal has its own code so clients can branch on it; 0 is success.
// Codes are part of the protocol: never renumber.
const (
	CodeOK                 uint32 = 0
	CodeInternal           uint32 = 1
	CodeMalformedTx        uint32 = 2
	CodeTxTooLarge         uint32 = 3
	CodeWrongChainID       uint32 = 4
	CodeUnknownSigner      uint32 = 5
	CodeBadSignature       uint32 = 6
	CodeSequenceReplayed   uint32 = 7
	CodeSequenceOutOfOrder uint32 = 8
	CodeFeeTooLow          uint32 = 9
	CodeInsufficientFunds  uint32 = 10
	CodeUnknownMsgType     uint32 = 11
	CodeInvalidMsg         uint32 = 12
	CodeNotFound           uint32 = 13
	CodeUnauthorized       uint32 = 14
	CodeAlreadyExists      uint32 = 15
	CodeInvalidRequest     uint32 = 16
	CodeWrongSigner        uint32 = 17
	// Market, escrow and cert refusals.
	CodeInsufficientCapacity uint32 = 18
	CodeRequirementsUnmet    uint32 = 19
	CodeOrderClosed          uint32 = 20
	CodeLeaseClosed          uint32 = 21
	CodeNotProvider          uint32 = 22
	CodeInsufficientDeposit  uint32 = 23
	CodeInvalidCert          uint32 = 24
	// Staking refusals.
	CodeBondLocked uint32 = 25
	// Verification refusals (30-37).
	CodeNotVerifier      uint32 = 30
	CodeNotAssigned      uint32 = 31
	CodeLate             uint32 = 32
	CodeAnswered         uint32 = 33
	CodeBadProof         uint32 = 34
	CodeWindowClosed     uint32 = 35
	CodeNotSampled       uint32 = 36
	CodeChallengeNotOpen uint32 = 37
	// Liveness and hardware challenge refusals (x/liveness): 38-41.
	CodeChallengeClosed uint32 = 38
	CodeChallengeLate   uint32 = 39
	CodeBadReveal       uint32 = 40
	// Pricing-mode refusals (issue 11): 42-47.
	CodeModeMismatch   uint32 = 42
	CodeBidReveal      uint32 = 43
	CodeReclaimRefused uint32 = 44
	// Confidential compute and on-chain inference refusals: 50-55.
	CodeAttestationRefused uint32 = 50
	CodeModelMismatch      uint32 = 51
	CodeRequestClosed      uint32 = 52
	// GPU cluster refusals (issue 16): 60-64.
	CodeNotMember      uint32 = 60
	CodeStaleEpoch     uint32 = 61
	CodeClusterWaiting uint32 = 62
)

// Error is a refusal carrying its result code.
type Error struct {
	Code uint32
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Is matches any *Error with the same code, so errors.Is(err, ErrFeeTooLow) works on
// wrapped, reworded errors.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors, one per code, for errors.Is.
var (
	ErrInternal           = &Error{CodeInternal, "internal error"}
	ErrMalformedTx        = &Error{CodeMalformedTx, "malformed transaction"}
	ErrTxTooLarge         = &Error{CodeTxTooLarge, "transaction too large"}
	ErrWrongChainID       = &Error{CodeWrongChainID, "wrong chain-id"}
	ErrUnknownSigner      = &Error{CodeUnknownSigner, "unknown signer"}
	ErrBadSignature       = &Error{CodeBadSignature, "bad signature"}
	ErrSequenceReplayed   = &Error{CodeSequenceReplayed, "sequence already used (replayed transaction)"}
	ErrSequenceOutOfOrder = &Error{CodeSequenceOutOfOrder, "sequence out of order"}
	ErrFeeTooLow          = &Error{CodeFeeTooLow, "fee too low"}
	ErrInsufficientFunds  = &Error{CodeInsufficientFunds, "insufficient funds"}
	ErrUnknownMsgType     = &Error{CodeUnknownMsgType, "unknown message type"}
	ErrInvalidMsg         = &Error{CodeInvalidMsg, "invalid message"}
	ErrNotFound           = &Error{CodeNotFound, "not found"}
	ErrUnauthorized       = &Error{CodeUnauthorized, "unauthorized"}
	ErrAlreadyExists      = &Error{CodeAlreadyExists, "already exists"}
	ErrInvalidRequest     = &Error{CodeInvalidRequest, "invalid request"}
	ErrWrongSigner        = &Error{CodeWrongSigner, "message signer is not the transaction signer"}

	ErrInsufficientCapacity = &Error{CodeInsufficientCapacity, "provider lacks free capacity"}
	ErrRequirementsUnmet    = &Error{CodeRequirementsUnmet, "provider does not meet the order's requirements"}
	ErrOrderClosed          = &Error{CodeOrderClosed, "order is not open"}
	ErrLeaseClosed          = &Error{CodeLeaseClosed, "lease is not active"}
	ErrNotProvider          = &Error{CodeNotProvider, "signer is not a registered provider"}
	ErrInsufficientDeposit  = &Error{CodeInsufficientDeposit, "insufficient deposit"}
	ErrInvalidCert          = &Error{CodeInvalidCert, "invalid certificate"}

	ErrBondLocked = &Error{CodeBondLocked, "bond is locked"}

	ErrNotVerifier        = &Error{CodeNotVerifier, "not a registered verifier"}
	ErrNotAssigned        = &Error{CodeNotAssigned, "not assigned to this check"}
	ErrLate               = &Error{CodeLate, "answer past its deadline"}
	ErrAnswered           = &Error{CodeAnswered, "already answered"}
	ErrBadProof           = &Error{CodeBadProof, "Merkle proof does not match the commitment"}
	ErrWindowClosed       = &Error{CodeWindowClosed, "dispute window closed"}
	ErrNotSampled         = &Error{CodeNotSampled, "unit was not sampled"}
	ErrChallengeNotOpen   = &Error{CodeChallengeNotOpen, "challenge is not open"}
	ErrChallengeClosed    = &Error{CodeChallengeClosed, "challenge is not awaiting this message"}
	ErrChallengeLate      = &Error{CodeChallengeLate, "challenge deadline passed"}
	ErrBadReveal          = &Error{CodeBadReveal, "revealed chunks do not match the committed answer"}
	ErrModeMismatch       = &Error{CodeModeMismatch, "not how this order is priced"}
	ErrBidReveal          = &Error{CodeBidReveal, "revealed bid does not match its commitment"}
	ErrReclaimRefused     = &Error{CodeReclaimRefused, "lease may not be reclaimed so"}
	ErrAttestationRefused = &Error{CodeAttestationRefused, "attestation refused"}
	ErrModelMismatch      = &Error{CodeModelMismatch, "model mismatch"}
	ErrRequestClosed      = &Error{CodeRequestClosed, "inference request is not open"}
	ErrNotMember          = &Error{CodeNotMember, "not a member of this cluster"}
	ErrStaleEpoch         = &Error{CodeStaleEpoch, "report for another epoch of the cluster"}
	ErrClusterWaiting     = &Error{CodeClusterWaiting, "cluster members are not all ready"}
)

// Wrapf returns an error with base's code and the message "base: detail".
func Wrapf(base *Error, format string, args ...any) error {
	return &Error{Code: base.Code, Msg: base.Msg + ": " + fmt.Sprintf(format, args...)}
}

// CodeOf returns the result code of err: its *Error code, or CodeInternal for any
// other error.
func CodeOf(err error) uint32 {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
