package tenant

import (
	"context"
	"fmt"
	"io"
	"slices"

	"filippo.io/age"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// Seal encrypts what r holds to the sealing key that provider's attested environment
// generated and bound in its report, as the chain records it, and writes the age
// ciphertext to w: only that environment can read it. It refuses a provider without an
// active attestation, or whose measurement is not in allowed (when allowed is not
// empty), and returns the attestation it sealed to.
func Seal(ctx context.Context, c *client.Client, provider types.Address, allowed []string, r io.Reader, w io.Writer) (xtee.Attestation, error) {
	at, err := c.Attestation(ctx, provider)
	if err != nil {
		return at, fmt.Errorf("attestation of %s: %w", provider, err)
	}
	h, err := c.AppHeight(ctx)
	if err != nil {
		return at, err
	}
	return at, SealTo(at, h, allowed, r, w)
}

// SealTo is Seal with the attestation and the chain height at hand.
func SealTo(at xtee.Attestation, height int64, allowed []string, r io.Reader, w io.Writer) error {
	if !at.Active(height) {
		return fmt.Errorf("provider %s's attestation is %s (expires at height %d, now %d): nothing is sealed to a lapsed environment", at.Provider, at.State, at.ExpiresHeight, height)
	}
	if len(allowed) > 0 && !slices.Contains(allowed, at.Measurement) {
		return fmt.Errorf("provider %s runs measurement %s, not one of the %d allowed", at.Provider, at.Measurement, len(allowed))
	}
	rcp, err := age.ParseX25519Recipient(at.SealKey)
	if err != nil {
		return fmt.Errorf("seal key of %s on chain: %w", at.Provider, err)
	}
	enc, err := age.Encrypt(w, rcp)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if _, err := io.Copy(enc, r); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return enc.Close()
}
