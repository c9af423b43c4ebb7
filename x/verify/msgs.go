package verify

import (
	"crypto/sha256"
	"fmt"
	"regexp"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

var kindRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// MsgRegisterVerifier registers the signer as a verifier, bonding Stake (purpose
// "verifier"); a registered verifier adds stake with it.
type MsgRegisterVerifier struct {
	Verifier types.Address `json:"verifier"`
	Stake    types.Coin    `json:"stake"`
}

// MsgUnbondVerifier starts unbonding Amount of the signer's verifier stake; it is
// refused while the verifier is assigned a check or sits on an open committee.
type MsgUnbondVerifier struct {
	Verifier types.Address `json:"verifier"`
	Amount   uint64        `json:"amount,string"`
}

// MsgCommit is a provider's commitment to the outputs of lease LeaseID (checkpoint
// Checkpoint of a train lease; 0 otherwise): the Merkle root of its Units units
// (proof.ItemsRoot), the workload Kind and the Job description that re-runs any unit.
type MsgCommit struct {
	Provider   types.Address `json:"provider"`
	LeaseID    uint64        `json:"lease_id,string"`
	Checkpoint uint32        `json:"checkpoint"`
	Kind       string        `json:"kind"`
	Root       []byte        `json:"root"`
	Units      uint32        `json:"units"`
	Job        []byte        `json:"job"`
}

// Evidence is one unit of a commitment as the provider served it: its name, its data
// or its SHA-256, and the Merkle path from it to the committed root. Only a unit the
// chain checks itself (matmul) is carried whole, and only while it fits a transaction;
// a report on any other kind carries the unit's hash, and the committee fetches the
// unit from the provider itself: a production tile or model checkpoint is larger than
// a transaction.
type Evidence struct {
	Name string `json:"name"`
	Data []byte `json:"data,omitempty"`
	// SHA256 is the unit's hash, carried instead of Data (which is then empty).
	SHA256 proof.HexBytes `json:"sha256,omitempty"`
	Proof  proof.Proof    `json:"proof"`
}

// Hash is the unit's SHA-256: SHA256 when the evidence carries it, of Data otherwise.
func (e *Evidence) Hash() [32]byte {
	if len(e.SHA256) == 32 {
		return [32]byte(e.SHA256)
	}
	return sha256.Sum256(e.Data)
}

// HashOnly reports whether e carries the unit's hash instead of its data.
func (e *Evidence) HashOnly() bool { return len(e.SHA256) != 0 }

// MsgVerdict is the assigned verifier's answer on commitment CommitID: OK, or the
// sampled unit Unit it found wrong (with Evidence where the chain checks directly).
type MsgVerdict struct {
	Verifier types.Address `json:"verifier"`
	CommitID uint64        `json:"commit_id,string"`
	OK       bool          `json:"ok"`
	Unit     uint32        `json:"unit"`
	Evidence *Evidence     `json:"evidence,omitempty"`
}

// MsgDispute is a tenant's claim that unit Unit of commitment CommitID is wrong,
// within the lease's dispute window; it locks the dispute deposit.
type MsgDispute struct {
	Tenant   types.Address `json:"tenant"`
	CommitID uint64        `json:"commit_id,string"`
	Unit     uint32        `json:"unit"`
	Evidence *Evidence     `json:"evidence,omitempty"`
}

// MsgVote is a committee member's finding on challenge ChallengeID's unit: Fraud, or
// not; or Unavailable: the provider did not serve what the member needed to
// re-execute it (on an availability challenge: the item reported withheld) by the
// end of the vote.
type MsgVote struct {
	Verifier    types.Address `json:"verifier"`
	ChallengeID uint64        `json:"challenge_id,string"`
	Fraud       bool          `json:"fraud"`
	Unavailable bool          `json:"unavailable,omitempty"`
}

// MsgUnavailable is the assigned verifier's report that the provider of commitment
// CommitID did not serve it, with a valid proof, what re-executing sampled unit Unit
// needs: the unit itself, its committed input Input, or the job's pinned asset Asset
// (at most one of Input and Asset). A committee then gives the provider serve_blocks
// to serve it.
type MsgUnavailable struct {
	Verifier types.Address `json:"verifier"`
	CommitID uint64        `json:"commit_id,string"`
	Unit     uint32        `json:"unit"`
	Input    string        `json:"input,omitempty"`
	Asset    string        `json:"asset,omitempty"`
}

func (m *MsgRegisterVerifier) Type() types.MsgType { return types.MsgTypeVerifyRegisterVerifier }
func (m *MsgUnbondVerifier) Type() types.MsgType   { return types.MsgTypeVerifyUnbondVerifier }
func (m *MsgCommit) Type() types.MsgType           { return types.MsgTypeVerifyCommit }
func (m *MsgVerdict) Type() types.MsgType          { return types.MsgTypeVerifyVerdict }
func (m *MsgDispute) Type() types.MsgType          { return types.MsgTypeVerifyDispute }
func (m *MsgVote) Type() types.MsgType             { return types.MsgTypeVerifyVote }
func (m *MsgUnavailable) Type() types.MsgType      { return types.MsgTypeVerifyUnavailable }

func (m *MsgRegisterVerifier) Signer() types.Address { return m.Verifier }
func (m *MsgUnbondVerifier) Signer() types.Address   { return m.Verifier }
func (m *MsgCommit) Signer() types.Address           { return m.Provider }
func (m *MsgVerdict) Signer() types.Address          { return m.Verifier }
func (m *MsgDispute) Signer() types.Address          { return m.Tenant }
func (m *MsgVote) Signer() types.Address             { return m.Verifier }
func (m *MsgUnavailable) Signer() types.Address      { return m.Verifier }

// ValidateBasic implements types.Msg.
func (m *MsgRegisterVerifier) ValidateBasic() error {
	if m.Stake.Amount == 0 {
		return types.InvalidField("stake", m.Stake, "must be > 0")
	}
	if err := types.ValidateDenom(m.Stake.Denom); err != nil {
		return types.InvalidField("stake.denom", m.Stake.Denom, err.Error())
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgUnbondVerifier) ValidateBasic() error {
	if m.Amount == 0 {
		return types.InvalidField("amount", 0, "must be > 0")
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgCommit) ValidateBasic() error {
	switch {
	case m.LeaseID == 0:
		return types.InvalidField("lease_id", 0, "must be > 0")
	case !kindRe.MatchString(m.Kind):
		return types.InvalidField("kind", m.Kind, "must be 1-32 of [a-z0-9_-] starting with a letter (render, train, matmul...)")
	case len(m.Root) != 32:
		return types.InvalidField("root", fmt.Sprintf("%d bytes", len(m.Root)), "must be a 32-byte Merkle root")
	case m.Units < 1 || m.Units > MaxUnits:
		return types.InvalidField("units", m.Units, fmt.Sprintf("must be 1 to %d", MaxUnits))
	case len(m.Job) > MaxJobBytes:
		return types.InvalidField("job", fmt.Sprintf("%d bytes", len(m.Job)), fmt.Sprintf("must be at most %d bytes", MaxJobBytes))
	}
	return nil
}

func (e *Evidence) validate(field string) error {
	switch {
	case e == nil:
		return nil
	case e.Name == "" || len(e.Name) > MaxUnitName:
		return types.InvalidField(field+".name", e.Name, fmt.Sprintf("must be 1 to %d bytes", MaxUnitName))
	case len(e.Data) > MaxUnitBytes:
		return types.InvalidField(field+".data", fmt.Sprintf("%d bytes", len(e.Data)), fmt.Sprintf("must be at most %d bytes (what fits a transaction); carry the unit's sha256 instead", MaxUnitBytes))
	case len(e.SHA256) != 0 && len(e.SHA256) != 32:
		return types.InvalidField(field+".sha256", fmt.Sprintf("%d bytes", len(e.SHA256)), "must be a 32-byte SHA-256")
	case len(e.SHA256) != 0 && len(e.Data) != 0:
		return types.InvalidField(field+".data", fmt.Sprintf("%d bytes", len(e.Data)), "carry the unit's data or its sha256, not both")
	case len(e.Proof.Aunts) > MaxAunts:
		return types.InvalidField(field+".proof.aunts", len(e.Proof.Aunts), fmt.Sprintf("at most %d", MaxAunts))
	case e.Proof.Total < 1 || e.Proof.Index < 0 || e.Proof.Index >= e.Proof.Total:
		return types.InvalidField(field+".proof", fmt.Sprintf("index %d of %d", e.Proof.Index, e.Proof.Total), "index must be in 0..total-1")
	}
	for i, a := range e.Proof.Aunts {
		if len(a) != 32 {
			return types.InvalidField(fmt.Sprintf("%s.proof.aunts[%d]", field, i), fmt.Sprintf("%d bytes", len(a)), "must be 32 bytes")
		}
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgVerdict) ValidateBasic() error {
	if m.CommitID == 0 {
		return types.InvalidField("commit_id", 0, "must be > 0")
	}
	if m.OK && m.Evidence != nil {
		return types.InvalidField("evidence", "set", "must be empty when ok")
	}
	return m.Evidence.validate("evidence")
}

// ValidateBasic implements types.Msg.
func (m *MsgDispute) ValidateBasic() error {
	if m.CommitID == 0 {
		return types.InvalidField("commit_id", 0, "must be > 0")
	}
	return m.Evidence.validate("evidence")
}

// ValidateBasic implements types.Msg.
func (m *MsgVote) ValidateBasic() error {
	if m.ChallengeID == 0 {
		return types.InvalidField("challenge_id", 0, "must be > 0")
	}
	if m.Fraud && m.Unavailable {
		return types.InvalidField("unavailable", true, "a member that could not fetch the unit cannot also find it fraudulent")
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgUnavailable) ValidateBasic() error {
	switch {
	case m.CommitID == 0:
		return types.InvalidField("commit_id", 0, "must be > 0")
	case m.Input != "" && m.Asset != "":
		return types.InvalidField("asset", m.Asset, "name the withheld input or the withheld asset, not both")
	case len(m.Input) > MaxUnitName:
		return types.InvalidField("input", fmt.Sprintf("%d bytes", len(m.Input)), fmt.Sprintf("must be at most %d bytes", MaxUnitName))
	case len(m.Asset) > MaxUnitName:
		return types.InvalidField("asset", fmt.Sprintf("%d bytes", len(m.Asset)), fmt.Sprintf("must be at most %d bytes", MaxUnitName))
	}
	return nil
}

// --- canonical encoding ---

func (m *MsgRegisterVerifier) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Verifier[:])
	w.String(m.Stake.Denom)
	w.Uvarint(m.Stake.Amount)
}

func (m *MsgUnbondVerifier) MarshalTo(w *codec.Writer) { w.Fixed(m.Verifier[:]); w.Uvarint(m.Amount) }

func (m *MsgCommit) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.LeaseID)
	w.Uvarint(uint64(m.Checkpoint))
	w.String(m.Kind)
	w.WriteBytes(m.Root)
	w.Uvarint(uint64(m.Units))
	w.WriteBytes(m.Job)
}

func writeEvidence(w *codec.Writer, e *Evidence) {
	w.Bool(e != nil)
	if e == nil {
		return
	}
	w.String(e.Name)
	w.WriteBytes(e.Data)
	w.WriteBytes(e.SHA256)
	w.Uvarint(uint64(e.Proof.Index))
	w.Uvarint(uint64(e.Proof.Total))
	w.Uvarint(uint64(len(e.Proof.Aunts)))
	for _, a := range e.Proof.Aunts {
		w.WriteBytes(a)
	}
}

func readEvidence(r *codec.Reader) *Evidence {
	if !r.Bool() {
		return nil
	}
	e := &Evidence{Name: r.String(MaxUnitName), Data: r.Bytes(MaxUnitBytes)}
	if h := r.Bytes(32); len(h) > 0 {
		e.SHA256 = h
	}
	idx, total := r.Uvarint(), r.Uvarint()
	if idx > MaxUnits || total > MaxUnits {
		r.Fail("proof index %d of %d out of range", idx, total)
		return e
	}
	e.Proof.Index, e.Proof.Total = int64(idx), int64(total)
	n := r.Uvarint()
	if n > MaxAunts {
		r.Fail("%d aunts, limit %d", n, MaxAunts)
		return e
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		e.Proof.Aunts = append(e.Proof.Aunts, proof.HexBytes(r.Bytes(32)))
	}
	return e
}

func (m *MsgVerdict) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Verifier[:])
	w.Uvarint(m.CommitID)
	w.Bool(m.OK)
	w.Uvarint(uint64(m.Unit))
	writeEvidence(w, m.Evidence)
}

func (m *MsgDispute) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Tenant[:])
	w.Uvarint(m.CommitID)
	w.Uvarint(uint64(m.Unit))
	writeEvidence(w, m.Evidence)
}

func (m *MsgVote) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Verifier[:])
	w.Uvarint(m.ChallengeID)
	w.Bool(m.Fraud)
	w.Bool(m.Unavailable)
}

func (m *MsgUnavailable) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Verifier[:])
	w.Uvarint(m.CommitID)
	w.Uvarint(uint64(m.Unit))
	w.String(m.Input)
	w.String(m.Asset)
}

func readU32(r *codec.Reader, what string) uint32 {
	v := r.Uvarint()
	if v > 1<<32-1 {
		r.Fail("%s %d out of range", what, v)
		return 0
	}
	return uint32(v)
}

// DecodeRegisterVerifier decodes a MsgRegisterVerifier body.
func DecodeRegisterVerifier(r *codec.Reader) types.Msg {
	return &MsgRegisterVerifier{Verifier: bank.ReadAddress(r), Stake: types.Coin{Denom: r.String(128), Amount: r.Uvarint()}}
}

// DecodeUnbondVerifier decodes a MsgUnbondVerifier body.
func DecodeUnbondVerifier(r *codec.Reader) types.Msg {
	return &MsgUnbondVerifier{Verifier: bank.ReadAddress(r), Amount: r.Uvarint()}
}

// DecodeCommit decodes a MsgCommit body.
func DecodeCommit(r *codec.Reader) types.Msg {
	return &MsgCommit{Provider: bank.ReadAddress(r), LeaseID: r.Uvarint(), Checkpoint: readU32(r, "checkpoint"),
		Kind: r.String(maxKind), Root: r.Bytes(32), Units: readU32(r, "units"), Job: r.Bytes(MaxJobBytes)}
}

// DecodeVerdict decodes a MsgVerdict body.
func DecodeVerdict(r *codec.Reader) types.Msg {
	return &MsgVerdict{Verifier: bank.ReadAddress(r), CommitID: r.Uvarint(), OK: r.Bool(), Unit: readU32(r, "unit"), Evidence: readEvidence(r)}
}

// DecodeDispute decodes a MsgDispute body.
func DecodeDispute(r *codec.Reader) types.Msg {
	return &MsgDispute{Tenant: bank.ReadAddress(r), CommitID: r.Uvarint(), Unit: readU32(r, "unit"), Evidence: readEvidence(r)}
}

// DecodeVote decodes a MsgVote body.
func DecodeVote(r *codec.Reader) types.Msg {
	return &MsgVote{Verifier: bank.ReadAddress(r), ChallengeID: r.Uvarint(), Fraud: r.Bool(), Unavailable: r.Bool()}
}

// DecodeUnavailable decodes a MsgUnavailable body.
func DecodeUnavailable(r *codec.Reader) types.Msg {
	return &MsgUnavailable{Verifier: bank.ReadAddress(r), CommitID: r.Uvarint(), Unit: readU32(r, "unit"),
		Input: r.String(MaxUnitName), Asset: r.String(MaxUnitName)}
}
