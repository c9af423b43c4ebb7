package api

import (
	"context"

	"github.com/kiln-network/kiln/proof"
)

// VerifierSource tells whether an account has verification work on a lease now.
type VerifierSource interface {
	// HasDuty reports whether account is the verifier x/verify assigned to check a
	// commitment of lease id, or a member of the committee voting on a challenge of
	// one, and has not answered yet (x/verify.DutyOf). An error means the chain could
	// not be asked, never a refusal.
	HasDuty(ctx context.Context, lease uint64, account string) (bool, error)
}

// UnitProof is one unit of a lease's committed work as the provider serves it to a
// verifier: the unit's bytes and the Merkle path from (unit id, SHA-256 of the bytes)
// to the root the provider committed (units.Set.Root).
type UnitProof struct {
	Unit  string      `json:"unit"`
	File  string      `json:"file"`
	Data  []byte      `json:"data"`
	Proof proof.Proof `json:"proof"`
	Root  string      `json:"root"`
}

// Error codes of the units and assets routes.
const (
	// CodeNotAssigned: the client is neither the lease's tenant nor a verifier the
	// chain assigned work on the lease now.
	CodeNotAssigned = "not_assigned"
	CodeNoUnits     = "no_units"
	// CodeNotPinned: the name is not an asset the job's job.json pins by hash.
	CodeNotPinned = "not_pinned"
)
