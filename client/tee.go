package client

import (
	"context"

	"github.com/kiln-network/kiln/types"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// Attestation returns provider's TEE attestation record (active or expired), or an
// error wrapping ErrNotFound when it never attested.
func (c *Client) Attestation(ctx context.Context, provider types.Address) (xtee.Attestation, error) {
	var at xtee.Attestation
	err := c.getOr404(ctx, PathAttestation(provider), &at)
	return at, err
}

// TEEParams returns the tee module's parameters.
func (c *Client) TEEParams(ctx context.Context) (xtee.Params, error) {
	var p xtee.Params
	err := c.QueryJSON(ctx, PathTEEParams, &p)
	return p, err
}
