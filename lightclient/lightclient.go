// Package lightclient verifies a Kiln chain's headers from one trusted header with
// CometBFT's light client, against nodes' RPC: what a wallet or an exchange runs
// instead of a node.
//
// What it proves: the header at the verified height was signed by more than 2/3 of
// the voting power of a validator set that the trusted header's validators handed
// power to (skipping: at least 1/3 of the trusted set signed it; sequential: every
// header in between, each checked against the previous one's next validators). The
// header commits to the app hash after the block before it, so the light client
// knows the chain's whole state hash at each verified height. What it does not prove
// with today's commitment: any one account's balance or any one record. The app hash
// is an LtHash (a sum of per-key hashes, store/lthash.go): it changes with every key,
// but a single key cannot be shown to be in it without every other key; per-key
// proofs need a Merkle tree over the keys (an IAVL or a sparse Merkle tree), at
// O(log n) hashes per write instead of the LtHash's one addition, and a proof of
// about log2(n) hashes (some 23 x 32 bytes at ten million keys) per query answer.
package lightclient

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/light/provider"
	lighthttp "github.com/cometbft/cometbft/light/provider/http"
	lightdb "github.com/cometbft/cometbft/light/store/db"
	"github.com/cometbft/cometbft/types"
)

// DefaultTrustPeriod is how old the trusted header may be: two thirds of the default
// unbonding period (a day of 1-second blocks), CometBFT's advice, so that validators
// who signed it can still be slashed for signing a fork.
const DefaultTrustPeriod = 16 * time.Hour

// Options configure Verify.
type Options struct {
	ChainID string
	// Primary is the node (RPC URL) headers are fetched from; Witnesses are nodes
	// whose headers must agree with the primary's (empty: the primary alone, which
	// then cannot be cross-checked).
	Primary   string
	Witnesses []string
	// TrustHeight and TrustHash are the header trusted without verification (from a
	// block explorer, a friend, the operator's own node).
	TrustHeight int64
	TrustHash   []byte
	// TrustPeriod bounds the trusted header's age; 0 is DefaultTrustPeriod.
	TrustPeriod time.Duration
	// Sequential verifies every header from the trusted one on; otherwise the light
	// client skips (bisection, trusting a new set when 1/3 of the trusted one signed).
	Sequential bool
	// Height is the height to verify; 0 the latest.
	Height int64
}

// Result is a verified header.
type Result struct {
	ChainID        string    `json:"chain_id"`
	Height         int64     `json:"height"`
	Hash           string    `json:"hash"`
	AppHash        string    `json:"app_hash"` // the state after the block before Height
	Time           time.Time `json:"time"`
	ValidatorsHash string    `json:"validators_hash"`
	Validators     int       `json:"validators"`
	Mode           string    `json:"mode"` // "skipping" or "sequential"
	TrustedHeight  int64     `json:"trusted_height"`
	Witnesses      int       `json:"witnesses"`
	Verified       bool      `json:"verified"`
}

func (o *Options) validate() error {
	switch {
	case o.ChainID == "":
		return fmt.Errorf("chain-id is empty")
	case o.Primary == "":
		return fmt.Errorf("no node to verify against")
	case o.TrustHeight < 1:
		return fmt.Errorf("--trust-height %d: must be a height >= 1", o.TrustHeight)
	case len(o.TrustHash) != 32:
		return fmt.Errorf("--trust-hash: must be a 32-byte block hash in hex (got %d bytes)", len(o.TrustHash))
	case o.TrustPeriod < 0:
		return fmt.Errorf("--trust-period %v: must be positive", o.TrustPeriod)
	case o.Height < 0:
		return fmt.Errorf("--height %d: must be >= 0 (0: the latest)", o.Height)
	case o.Height != 0 && o.Height < o.TrustHeight:
		return fmt.Errorf("--height %d: below the trusted height %d (the light client verifies forward)", o.Height, o.TrustHeight)
	}
	return nil
}

// ParseHash reads a block hash in hex.
func ParseHash(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("block hash %q: want 64 hex digits", s)
	}
	return b, nil
}

// Verify verifies the header at o.Height (the latest if 0) from the trusted one,
// fetching from o.Primary's RPC and cross-checking with o.Witnesses'.
func Verify(ctx context.Context, o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	primary, err := httpProvider(o.ChainID, o.Primary)
	if err != nil {
		return Result{}, err
	}
	var witnesses []provider.Provider
	for _, w := range o.Witnesses {
		p, err := httpProvider(o.ChainID, w)
		if err != nil {
			return Result{}, err
		}
		witnesses = append(witnesses, p)
	}
	return VerifyWith(ctx, o, primary, witnesses)
}

func heightName(h int64) string {
	if h == 0 {
		return "latest"
	}
	return fmt.Sprint(h)
}

func httpProvider(chainID, url string) (provider.Provider, error) {
	p, err := lighthttp.New(chainID, strings.Replace(url, "tcp://", "http://", 1))
	if err != nil {
		return nil, fmt.Errorf("light client provider %s: %w", url, err)
	}
	return p, nil
}

// VerifyWith is Verify with the providers given (o.Primary and o.Witnesses are not
// used); no witnesses: the primary is its own.
func VerifyWith(ctx context.Context, o Options, primary provider.Provider, witnesses []provider.Provider) (Result, error) {
	if o.Primary == "" {
		o.Primary = "(given)"
	}
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	if o.TrustPeriod == 0 {
		o.TrustPeriod = DefaultTrustPeriod
	}
	res := Result{ChainID: o.ChainID, Mode: "skipping", TrustedHeight: o.TrustHeight, Witnesses: len(witnesses)}
	if len(witnesses) == 0 {
		witnesses = []provider.Provider{primary}
	}
	mode := light.SkippingVerification(light.DefaultTrustLevel)
	if o.Sequential {
		mode, res.Mode = light.SequentialVerification(), "sequential"
	}
	c, err := light.NewClient(ctx, o.ChainID,
		light.TrustOptions{Period: o.TrustPeriod, Height: o.TrustHeight, Hash: o.TrustHash},
		primary, witnesses, lightdb.New(dbm.NewMemDB(), o.ChainID),
		mode, light.Logger(cmtlog.NewNopLogger()), light.MaxRetryAttempts(3))
	if err != nil {
		return res, fmt.Errorf("trust header %d %X: %w", o.TrustHeight, o.TrustHash, err)
	}
	now := time.Now()
	var b *types.LightBlock
	if o.Height == 0 {
		if b, err = c.Update(ctx, now); err == nil && b == nil { // nothing newer than what it trusts
			var last int64
			if last, err = c.LastTrustedHeight(); err == nil {
				b, err = c.TrustedLightBlock(last)
			}
		}
	} else {
		b, err = c.VerifyLightBlockAtHeight(ctx, o.Height, now)
	}
	if err != nil {
		return res, fmt.Errorf("verify header %s from %d: %w", heightName(o.Height), o.TrustHeight, err)
	}
	res.Height, res.Hash, res.AppHash = b.Height, b.Hash().String(), b.AppHash.String()
	res.Time, res.ValidatorsHash, res.Validators = b.Time, b.ValidatorsHash.String(), b.ValidatorSet.Size()
	res.Verified = true
	return res, nil
}
