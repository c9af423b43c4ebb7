// Package tee records providers' confidential-computing attestations on chain.
//
// Contracts:
//
//   - Every block stores a nonce (from the block's randomness) for its height; heights
//     older than nonce_window_blocks are pruned. An attestation MUST bind, in its
//     report_data, tee.BindingData(chain id, the provider's account address, the nonce
//     of a height still in the window, its sealing key): a report made for another key
//     or with an older nonce is refused. So evidence is fresh and cannot be replayed by
//     another provider.
//   - MsgAttest is verified with package tee (go-sev-guest, go-tdx-guest) in the
//     handler, so in CheckTx and in FinalizeBlock alike, at the block's time, against
//     the vendors' roots (or the sev_roots parameter), with the collateral the message
//     carries. Vendor signatures make collateral safe to carry: a forged one fails. A
//     debug guest is always refused. CRLs carried are always checked; require_crl
//     refuses an attestation that carries none. Measured cost: see README "Confidential compute".
//   - The chain records type, measurement, TCB, chip, sealing key and an expiry
//     (reattest_blocks after the attestation). At the end of the expiry height the
//     record expires and every active lease that required a TEE on that provider is
//     closed with reason tee_attestation_expired, its unused escrow refunded (market
//     CloseLease). A provider re-attests before then to keep its leases.
//   - Records are per provider: a new attestation replaces the previous one.
package tee

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
)

// ModuleName is the module's name in params, state and queries.
const ModuleName = "tee"

// ReasonExpired closes a TEE lease whose provider's attestation expired.
const ReasonExpired = "tee_attestation_expired"

// Limits of MsgAttest: a TDX quote with its PCK chain is about 5 KiB, an SEV-SNP
// report 1184 bytes; TDX collateral (TCB info, QE identity, CRLs and their chains)
// is about 15 KiB. A transaction is at most 64 KiB.
const (
	MaxEvidenceBytes   = 16 << 10
	MaxCollateralBytes = 40 << 10
	MaxSealKeyBytes    = 128
)

// Params are the module's on-chain parameters.
type Params struct {
	// ReattestBlocks is how long an attestation is good for: it expires this many
	// blocks after it was recorded.
	ReattestBlocks int64 `json:"reattest_blocks,string"`
	// NonceWindowBlocks is how old a nonce may be: an attestation names the height of
	// its nonce, which must be one of the last NonceWindowBlocks heights.
	NonceWindowBlocks int64 `json:"nonce_window_blocks,string"`
	// SEVRoots is AMD's ASK and ARK (PEM, KDS cert_chain form) to trust instead of
	// those go-sev-guest embeds; empty: AMD's. A test network sets its own.
	SEVRoots string `json:"sev_roots,omitempty"`
	// MinSEVTCB is the least SEV-SNP TCB accepted (0: any the VCEK certifies).
	MinSEVTCB uint64 `json:"min_sev_tcb,string"`
	// RequireCRL makes every attestation carry the vendor's current CRLs (SEV-SNP:
	// the ARK's CRL; TDX: the PCK and root CA CRLs with the PCS collateral) and checks
	// the certificate chain against them: an attestation without them is refused
	// (crl_missing), one whose CRL is past its next update is refused (stale), one
	// whose chain is listed is refused (revoked). Off: the CRLs an attestation
	// carries are still checked.
	RequireCRL bool `json:"require_crl"`
}

// DefaultParams: attestations last 3600 blocks (an hour at 1 s blocks), and a nonce
// is good for 20 blocks — long enough to fetch it, ask the firmware and broadcast.
func DefaultParams() Params { return Params{ReattestBlocks: 3600, NonceWindowBlocks: 20} }

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case p.ReattestBlocks < 2 || p.ReattestBlocks > 10_000_000:
		return fmt.Errorf("reattest_blocks: must be 2 to 10000000 (got %d)", p.ReattestBlocks)
	case p.NonceWindowBlocks < 1 || p.NonceWindowBlocks > 10_000:
		return fmt.Errorf("nonce_window_blocks: must be 1 to 10000 (got %d)", p.NonceWindowBlocks)
	case len(p.SEVRoots) > 16<<10:
		return fmt.Errorf("sev_roots: at most 16 KiB of PEM (got %d bytes)", len(p.SEVRoots))
	}
	return nil
}

// GetParams returns the module's parameters.
func GetParams(ctx *types.Context) Params {
	var p Params
	params.Get(ctx, ModuleName, &p)
	return p
}

// Attestation states.
const (
	StateActive  = "active"
	StateExpired = "expired"
)

// Attestation is a provider's verified TEE evidence as the chain records it.
type Attestation struct {
	Provider    types.Address `json:"provider"`
	Type        string        `json:"type"` // tee.TypeSEVSNP or tee.TypeTDX
	Measurement string        `json:"measurement"`
	ReportData  string        `json:"report_data"`
	ChipID      string        `json:"chip_id,omitempty"`
	TCB         tee.TCB       `json:"tcb"`
	// SealKey is the age X25519 recipient the attested environment generated: inputs
	// encrypted to it can only be read inside that environment.
	SealKey       string `json:"seal_key"`
	NonceHeight   int64  `json:"nonce_height,string"`
	State         string `json:"state"`
	ExpiresHeight int64  `json:"expires_height,string"`
	CreatedHeight int64  `json:"created_height,string"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

// Active reports whether a is in force at height h.
func (a Attestation) Active(h int64) bool { return a.State == StateActive && h < a.ExpiresHeight }

var (
	attestPrefix = []byte("tee/att/")
	noncePrefix  = []byte("tee/nonce/")
	expiryPrefix = []byte("tee/exp/")
	leasePrefix  = []byte("tee/lease/")
)

func heightKey(prefix []byte, h int64) []byte {
	return append(append([]byte{}, prefix...), []byte(fmt.Sprintf("%020d", h))...)
}

func attestKey(a types.Address) []byte { return append(append([]byte{}, attestPrefix...), a[:]...) }

func expiryKey(h int64, a types.Address) []byte { return append(heightKey(expiryPrefix, h), a[:]...) }

// Get returns provider a's attestation record.
func Get(ctx *types.Context, a types.Address) (Attestation, bool) {
	v, ok := ctx.Store.Get(attestKey(a))
	if !ok {
		return Attestation{}, false
	}
	var at Attestation
	if err := json.Unmarshal(v, &at); err != nil {
		panic(fmt.Sprintf("tee: corrupt attestation of %s: %v", a, err))
	}
	return at, true
}

func set(ctx *types.Context, at Attestation) {
	at.UpdatedHeight = ctx.Height
	b, _ := json.Marshal(at)
	ctx.Store.Set(attestKey(at.Provider), b)
}

// Nonce returns the nonce stored for height h, if h is still in the window.
func Nonce(ctx *types.Context, h int64) ([]byte, bool) {
	return ctx.Store.Get(heightKey(noncePrefix, h))
}

// LatestNonce returns the newest stored nonce and its height (the last block's).
func LatestNonce(ctx *types.Context) (int64, []byte, bool) {
	var h int64
	var n []byte
	ctx.Store.Iterate(noncePrefix, func(k, v []byte) bool {
		h, _ = strconv.ParseInt(string(k[len(noncePrefix):]), 10, 64)
		n = append([]byte{}, v...)
		return true
	})
	return h, n, n != nil
}

// MsgAttest records the signer's TEE evidence.
type MsgAttest struct {
	Provider types.Address `json:"provider"`
	// NonceHeight names the chain nonce bound in the report (Nonce).
	NonceHeight int64 `json:"nonce_height,string"`
	// SealKey is the age X25519 recipient generated inside the attested environment,
	// bound in the report.
	SealKey string `json:"seal_key"`
	// Evidence is the raw SEV-SNP report or TDX quote.
	Evidence []byte `json:"evidence"`
	// Collateral is a tee.Collateral as JSON (the VCEK for SEV-SNP; PCS collateral
	// for TDX). Its sev_roots, if any, are ignored: trust comes from the chain.
	Collateral []byte `json:"collateral"`
}

func (m *MsgAttest) Type() types.MsgType   { return types.MsgTypeTEEAttest }
func (m *MsgAttest) Signer() types.Address { return m.Provider }

// ValidateBasic checks sizes and the sealing key's form.
func (m *MsgAttest) ValidateBasic() error {
	switch {
	case m.NonceHeight < 1:
		return types.InvalidField("nonce_height", m.NonceHeight, "must be a block height >= 1")
	case len(m.Evidence) == 0 || len(m.Evidence) > MaxEvidenceBytes:
		return types.InvalidField("evidence", fmt.Sprintf("%d bytes", len(m.Evidence)), fmt.Sprintf("must be 1 to %d bytes", MaxEvidenceBytes))
	case len(m.Collateral) > MaxCollateralBytes:
		return types.InvalidField("collateral", fmt.Sprintf("%d bytes", len(m.Collateral)), fmt.Sprintf("must be at most %d bytes", MaxCollateralBytes))
	case !strings.HasPrefix(m.SealKey, "age1") || len(m.SealKey) > MaxSealKeyBytes:
		return types.InvalidField("seal_key", m.SealKey, "must be an age X25519 recipient (age1...)")
	}
	return nil
}

func (m *MsgAttest) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(uint64(m.NonceHeight))
	w.String(m.SealKey)
	w.WriteBytes(m.Evidence)
	w.WriteBytes(m.Collateral)
}

// DecodeAttest decodes a MsgAttest body.
func DecodeAttest(r *codec.Reader) types.Msg {
	m := &MsgAttest{Provider: bank.ReadAddress(r)}
	h := r.Uvarint()
	if h > 1<<62 {
		r.Fail("nonce_height %d out of range", h)
	}
	m.NonceHeight = int64(h)
	m.SealKey = r.String(MaxSealKeyBytes)
	m.Evidence = r.Bytes(MaxEvidenceBytes)
	m.Collateral = r.Bytes(MaxCollateralBytes)
	return m
}

// Handle executes a tee message.
func Handle(ctx *types.Context, msg types.Msg) error {
	m, ok := msg.(*MsgAttest)
	if !ok {
		return types.Wrapf(types.ErrUnknownMsgType, "tee: %T", msg)
	}
	if _, ok := registry.Get(ctx, m.Provider); !ok {
		return types.Wrapf(types.ErrNotProvider, "%s is not a registered provider; register before attesting", m.Provider)
	}
	p := GetParams(ctx)
	if err := checkSealKey(m.SealKey); err != nil {
		return err
	}
	nonce, ok := Nonce(ctx, m.NonceHeight)
	if !ok || m.NonceHeight >= ctx.Height {
		return types.Wrapf(types.ErrAttestationRefused, "%s: nonce of height %d is not one of the last %d blocks' (now %d): fetch a fresh one (kiln query tee nonce) and attest again", tee.ReasonStale, m.NonceHeight, p.NonceWindowBlocks, ctx.Height)
	}
	var col tee.Collateral
	if len(m.Collateral) > 0 {
		if err := json.Unmarshal(m.Collateral, &col); err != nil {
			return types.InvalidField("collateral", fmt.Sprintf("%d bytes", len(m.Collateral)), "must be a JSON tee collateral: "+err.Error())
		}
	}
	col.SEVRoots = []byte(p.SEVRoots) // NB: trust comes from the chain, never from the sender
	res := tee.Verify(m.Evidence, tee.Options{
		Now: ctx.Time, Collateral: col, MinSEVTCB: p.MinSEVTCB,
		ReportData:       tee.BindingData(ctx.ChainID, m.Provider[:], nonce, m.SealKey),
		CheckRevocations: p.RequireCRL || len(col.SEVCRL) > 0 || len(col.TDXPckCrl) > 0 || len(col.TDXRootCrl) > 0,
	})
	if !res.Valid {
		return types.Wrapf(types.ErrAttestationRefused, "%s: %s", res.Reason, res.Detail)
	}
	if prev, ok := Get(ctx, m.Provider); ok && prev.State == StateActive {
		ctx.Store.Delete(expiryKey(prev.ExpiresHeight, m.Provider))
	}
	at := Attestation{Provider: m.Provider, Type: res.Type, Measurement: res.Measurement, ReportData: res.ReportData,
		ChipID: res.ChipID, TCB: res.TCB, SealKey: m.SealKey, NonceHeight: m.NonceHeight, State: StateActive,
		ExpiresHeight: ctx.Height + p.ReattestBlocks, CreatedHeight: ctx.Height}
	set(ctx, at)
	ctx.Store.Set(expiryKey(at.ExpiresHeight, m.Provider), []byte{1})
	ctx.Emit("tee_attested", "provider", m.Provider.String(), "type", at.Type, "measurement", at.Measurement,
		"expires_height", strconv.FormatInt(at.ExpiresHeight, 10))
	return nil
}
