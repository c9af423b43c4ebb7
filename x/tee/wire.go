package tee

import (
	"encoding/binary"
	"fmt"
	"slices"

	"filippo.io/age"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// checkSealKey refuses a sealing key that is not an age X25519 recipient.
func checkSealKey(k string) error {
	if _, err := age.ParseX25519Recipient(k); err != nil {
		return types.InvalidField("seal_key", k, "must be an age X25519 recipient: "+err.Error())
	}
	return nil
}

// Wire registers the module with the market: the close reason for expired
// attestations, the bid guard of TEE orders, and the hooks that track which active
// leases required a TEE.
func Wire(h *types.Hooks) {
	market.RegisterReason(h, market.Reason{Name: ReasonExpired})
	market.RegisterProviderCheck(h, ModuleName, CheckProvider)
	market.RegisterHooks(h, ModuleName, leaseHooks{})
}

// CheckProvider is the market's provider check for orders that require a TEE: the
// provider must hold an active attestation, with one of the order's allowed
// measurements when it names any. The failure (constraint "tee") is what a refused
// bid says, and what why-no-bids lists.
func CheckProvider(ctx *types.Context, o market.Order, prov registry.Provider) []market.Failure {
	if err := teeRefusal(ctx, o, prov.Owner); err != nil {
		return []market.Failure{{Constraint: ModuleName, Detail: err.Error()}}
	}
	return nil
}

// teeRefusal says why provider p may not take order o, which requires a TEE: no
// active attestation, or a measurement the order does not accept; nil when it may.
//
// NB: cpu-gpu is placed on attested CPU TEEs with the GPUs the order asks for; the
// GPU's own confidential-computing evidence is not verified (no offline Go
// appraisal of it exists; README "Confidential compute").
func teeRefusal(ctx *types.Context, o market.Order, p types.Address) error {
	if o.TEE == "" {
		return nil
	}
	at, ok := Get(ctx, p)
	switch {
	case !ok:
		return types.Wrapf(types.ErrRequirementsUnmet, "order %d requires a TEE (%s): provider %s has no attestation on chain (attest with kiln tx tee attest from inside a confidential VM)", o.ID, o.TEE, p)
	case !at.Active(ctx.Height):
		return types.Wrapf(types.ErrRequirementsUnmet, "order %d requires a TEE (%s): provider %s's attestation expired at height %d; re-attest", o.ID, o.TEE, p, at.ExpiresHeight)
	case len(o.AllowedMeasurements) > 0 && !slices.Contains(o.AllowedMeasurements, at.Measurement):
		return types.Wrapf(types.ErrRequirementsUnmet, "order %d requires a TEE with one of %d allowed measurements: provider %s's measurement %s is not one of them", o.ID, len(o.AllowedMeasurements), p, at.Measurement)
	}
	return nil
}

func leaseKey(p types.Address, id uint64, attempt uint32) []byte {
	k := append(append([]byte{}, leasePrefix...), p[:]...)
	k = binary.BigEndian.AppendUint64(k, id)
	return binary.BigEndian.AppendUint32(k, attempt)
}

// leaseHooks keep tee/lease/<provider><id><attempt> for every active lease of a TEE
// order, so that an expiry closes exactly those.
type leaseHooks struct{ market.BaseHooks }

func (leaseHooks) LeaseCreated(ctx *types.Context, l market.Lease) {
	o, ok := market.GetOrder(ctx, l.ID)
	if !ok {
		panic(fmt.Sprintf("tee: lease %d has no order", l.ID))
	}
	if o.TEE != "" {
		ctx.Store.Set(leaseKey(l.Provider, l.ID, l.Attempt), []byte(o.TEE))
	}
}

func (leaseHooks) LeaseClosed(ctx *types.Context, l market.Lease, _ market.Reason) {
	ctx.Store.Delete(leaseKey(l.Provider, l.ID, l.Attempt))
}

// EndBlock stores this height's nonce, prunes the one that left the window, and
// expires the attestations due at this height, closing their providers' TEE leases.
func EndBlock(ctx *types.Context) {
	p := GetParams(ctx)
	nonce := ctx.Rand("tee/nonce").Bytes(32)
	ctx.Store.Set(heightKey(noncePrefix, ctx.Height), nonce)
	ctx.Store.Delete(heightKey(noncePrefix, ctx.Height-p.NonceWindowBlocks))

	var due []types.Address
	prefix := heightKey(expiryPrefix, ctx.Height)
	ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
		var a types.Address
		copy(a[:], k[len(prefix):])
		due = append(due, a)
		return true
	})
	for _, a := range due {
		ctx.Store.Delete(expiryKey(ctx.Height, a))
		at, ok := Get(ctx, a)
		if !ok || at.State != StateActive || at.ExpiresHeight != ctx.Height {
			continue
		}
		at.State = StateExpired
		set(ctx, at)
		ctx.Emit("tee_attestation_expired", "provider", a.String(), "height", fmt.Sprint(ctx.Height))
		type lease struct {
			id      uint64
			attempt uint32
		}
		var leases []lease
		lp := append(append([]byte{}, leasePrefix...), a[:]...)
		ctx.Store.Iterate(lp, func(k, _ []byte) bool {
			rest := k[len(lp):]
			leases = append(leases, lease{binary.BigEndian.Uint64(rest), binary.BigEndian.Uint32(rest[8:])})
			return true
		})
		for _, l := range leases {
			if err := market.CloseLease(ctx, l.id, l.attempt, ReasonExpired); err != nil {
				// The hooks delete a lease's key when it closes: an active key whose lease
				// is not active is a broken invariant.
				panic(fmt.Sprintf("tee: close lease %d attempt %d of expired provider %s: %v", l.id, l.attempt, a, err))
			}
		}
	}
}

// Query answers /tee/attestation/<address>, /tee/nonce (the newest nonce and its
// height) and /tee/params.
func Query(ctx *types.Context, parts []string) (any, error) {
	switch {
	case len(parts) == 1 && parts[0] == "nonce":
		h, n, ok := LatestNonce(ctx)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "no nonce yet (no block finished)")
		}
		return struct {
			Height int64  `json:"height,string"`
			Nonce  []byte `json:"nonce"`
		}{h, n}, nil
	case len(parts) == 1 && parts[0] == "params":
		return GetParams(ctx), nil
	}
	return nil, types.Wrapf(types.ErrInvalidRequest, "unknown tee query %v; known: attestation/<address>, nonce, params", parts)
}
