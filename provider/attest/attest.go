// Package attest makes a provider's attestation: a sealing identity kept in a file,
// the chain's newest nonce, and evidence from a tee.Producer whose report_data binds
// both to the provider's key (tee.BindingData). The CLI (kiln tx tee attest
// --produce) and the provider daemon make their MsgAttest here.
package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/types"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// LoadOrCreateIdentity reads the age X25519 sealing identity in path, or, when the
// file does not exist, creates one there (mode 0600, its directory 0700). An existing
// identity is kept: inputs sealed to its recipient stay readable across
// re-attestations and restarts. A file that does not hold an identity is an error
// naming it, never overwritten.
func LoadOrCreateIdentity(path string) (*age.X25519Identity, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id, err := age.ParseX25519Identity(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("sealing identity %s: %w", path, err)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("sealing identity %s: %w", path, err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate sealing identity: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sealing identity %s: %w", path, err)
	}
	// NB: O_EXCL: two makers racing on one file keep the first identity.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("write sealing identity %s: %w", path, err)
	}
	if _, err := f.WriteString(id.String() + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write sealing identity %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write sealing identity %s: %w", path, err)
	}
	return id, nil
}

// Nonce is the chain's newest attestation nonce (client.PathTEENonce).
type Nonce struct {
	Height int64  `json:"height,string"`
	Nonce  []byte `json:"nonce"`
}

// Make builds provider's MsgAttest: it reads the chain id and the newest nonce, asks
// p for evidence binding them, provider and id's recipient, and attaches the
// collateral p returned with extra's non-empty fields over it (an operator's CRLs and
// TDX PCS collateral). It fails, naming the step, when p cannot produce (tee.ErrNoTEE
// on a machine that is not a confidential VM) or the message would be refused for
// its form.
func Make(ctx context.Context, c *client.Client, p tee.Producer, provider types.Address, id *age.X25519Identity, extra tee.Collateral) (*xtee.MsgAttest, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("chain id: %w", err)
	}
	var n Nonce
	if err := c.QueryJSON(ctx, client.PathTEENonce, &n); err != nil {
		return nil, fmt.Errorf("chain nonce: %w", err)
	}
	seal := id.Recipient().String()
	raw, got, err := p.Produce(ctx, tee.BindingData(st.ChainID, provider[:], n.Nonce, seal))
	if err != nil {
		return nil, fmt.Errorf("produce evidence: %w", err)
	}
	col := got.Merge(extra)
	col.SEVRoots = nil // NB: the chain trusts its own roots, never the sender's
	m := &xtee.MsgAttest{Provider: provider, NonceHeight: n.Height, SealKey: seal, Evidence: raw}
	if !col.Empty() {
		if m.Collateral, err = json.Marshal(col); err != nil {
			return nil, fmt.Errorf("collateral: %w", err)
		}
	}
	if err := m.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("attestation message: %w", err)
	}
	return m, nil
}
