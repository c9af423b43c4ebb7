package apiclient

import (
	"context"
	"fmt"

	"github.com/kiln-network/kiln/provider/api"
)

// Unit fetches one unit of a lease's committed work with its Merkle proof. The caller
// checks the proof against the root committed on chain: the provider is not trusted.
func (c *Client) Unit(ctx context.Context, leaseID uint64, unit string) (api.UnitProof, error) {
	var u api.UnitProof
	return u, c.getJSON(ctx, c.leaseURL(leaseID, "units", unit), fmt.Sprintf("unit %s of lease %d", unit, leaseID), &u)
}

// UnitAt fetches the unit at index (in committed order: units sorted by id), as the
// chain samples them, with its Merkle proof.
func (c *Client) UnitAt(ctx context.Context, leaseID uint64, index uint32) (api.UnitProof, error) {
	var u api.UnitProof
	return u, c.getJSON(ctx, c.leaseURL(leaseID, "units", fmt.Sprint(index))+"?index=1", fmt.Sprintf("unit %d of lease %d", index, leaseID), &u)
}
