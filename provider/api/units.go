package api

import (
	"context"

	"github.com/kiln-network/kiln/proof"
)

// VerifierSource tells whether an account is a registered verifier on chain.
type VerifierSource interface {
	IsVerifier(ctx context.Context, account string) (bool, error)
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

// Error codes of the units route.
const (
	CodeNotVerifier = "not_verifier"
	CodeNoUnits     = "no_units"
)
