package verify

import "github.com/kiln-network/kiln/types"

// Refusals of verify's messages (codes 30-37, types/errors.go).
var (
	ErrNotVerifier      = types.ErrNotVerifier
	ErrNotAssigned      = types.ErrNotAssigned
	ErrLate             = types.ErrLate
	ErrAnswered         = types.ErrAnswered
	ErrBadProof         = types.ErrBadProof
	ErrWindowClosed     = types.ErrWindowClosed
	ErrNotSampled       = types.ErrNotSampled
	ErrChallengeNotOpen = types.ErrChallengeNotOpen
)
