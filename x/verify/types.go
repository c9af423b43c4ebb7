package verify

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/params"
)

// ModuleName is verify's name in params, state and queries.
const ModuleName = "verify"

// BondPurpose is the staking purpose of verifier stake.
const BondPurpose = "verifier"

// ReasonFraud is the close reason of a lease whose provider was proven to cheat.
const ReasonFraud = "fraud"

// Account is the module account holding tenants' dispute deposits.
var Account = types.ModuleAddress("verify")

// Params are verify's on-chain parameters. Periods are in blocks.
type Params struct {
	// SampleCount is s, the units a verifier re-executes per commitment: a provider
	// that faked a fraction f of its units escapes with probability (1-f)^s; 44 puts
	// that under 1% for f >= 10%.
	SampleCount uint32 `json:"sample_count"`
	// SampleDelayBlocks: the units to check are drawn from the randomness of block
	// commit height + this, which the provider cannot know when it commits (>= 1).
	SampleDelayBlocks int64 `json:"sample_delay_blocks,string"`
	// VerdictBlocks is how long the assigned verifier has to submit its verdict; a
	// silent one is slashed silent_slash_bps and another drawn.
	VerdictBlocks int64 `json:"verdict_blocks,string"`
	// CommitteeSize is 2N+1, the verifiers drawn to re-execute a disputed unit that the
	// chain cannot check itself; the majority decides.
	CommitteeSize uint32 `json:"committee_size"`
	// VoteBlocks is how long a committee has to vote.
	VoteBlocks int64 `json:"vote_blocks,string"`
	// ServeBlocks is how long a provider has to serve a unit or asset that its
	// assigned verifier reported withheld: a committee votes on whether it served it
	// (members vote "served" as soon as they fetched it, "unavailable" only when it has
	// not by the end), and silence counts against the provider, not the verifier.
	ServeBlocks int64 `json:"serve_blocks,string"`
	// MinVerifierStake is the least stake a verifier bonds to be drawn.
	MinVerifierStake uint64 `json:"min_verifier_stake,string"`
	// FraudSlashBps is taken from a provider's bond when it is proven to have cheated.
	FraudSlashBps uint32 `json:"fraud_slash_bps"`
	// WhistleblowerBps of what a fraud slash took goes to the reporter.
	WhistleblowerBps uint32 `json:"whistleblower_bps"`
	// FalseReportSlashBps is taken from a verifier whose fraud report was refuted.
	FalseReportSlashBps uint32 `json:"false_report_slash_bps"`
	// SilentSlashBps is taken from a verifier that did not answer by its deadline, and
	// from a committee member that voted with the losing minority.
	SilentSlashBps uint32 `json:"silent_slash_bps"`
	// VerifierPay is paid from the community pool (where protocol fees go) for each
	// verdict and each vote that the outcome bore out, while the pool holds it.
	VerifierPay uint64 `json:"verifier_pay,string"`
	// DisputeDeposit is what a tenant locks to dispute a lease: returned when the
	// provider is proven to have cheated, sent to the community pool when the dispute
	// is refuted.
	DisputeDeposit uint64 `json:"dispute_deposit,string"`
	// MaxDirectN bounds the matrices the chain multiplies itself when it checks a
	// disputed matmul unit (its cost in FinalizeBlock grows as n²).
	MaxDirectN uint32 `json:"max_direct_n"`
	// Denom of stakes, pay and deposits.
	Denom string `json:"denom"`
}

// DefaultParams: 44 samples (99% detection at f = 10%), drawn 1 block after the
// commitment; 20 blocks to answer; a committee of 3; 60 blocks for a provider to serve
// what a verifier reported withheld (a daemon restart is seconds, a few blocks); 10 KILN of verifier stake; a
// proven cheat loses 30% of its bond (Aethir-style), half of it to the reporter; a
// false report costs 10%, silence 1%; 0.001 KILN per check; a 1 KILN tenant deposit;
// matrices up to 512 checked on chain (a challenged block then costs FinalizeBlock
// O(n²): 2n² random draws and n² multiply-adds, tens of milliseconds).
func DefaultParams() Params {
	return Params{SampleCount: 44, SampleDelayBlocks: 1, VerdictBlocks: 20, CommitteeSize: 3, VoteBlocks: 20, ServeBlocks: 60,
		MinVerifierStake: 10_000_000, FraudSlashBps: 3000, WhistleblowerBps: 5000, FalseReportSlashBps: 1000,
		SilentSlashBps: 100, VerifierPay: 1000, DisputeDeposit: 1_000_000, MaxDirectN: 512, Denom: types.NativeDenom}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case p.SampleCount < 1 || p.SampleCount > MaxSamples:
		return fmt.Errorf("sample_count: must be 1 to %d (got %d)", MaxSamples, p.SampleCount)
	case p.SampleDelayBlocks < 1 || p.SampleDelayBlocks > 1000:
		return fmt.Errorf("sample_delay_blocks: must be 1 to 1000 (got %d): the randomness must come from a block after the commitment", p.SampleDelayBlocks)
	case p.VerdictBlocks < 1 || p.VerdictBlocks > 100_000:
		return fmt.Errorf("verdict_blocks: must be 1 to 100000 (got %d)", p.VerdictBlocks)
	case p.CommitteeSize < 1 || p.CommitteeSize%2 == 0 || p.CommitteeSize > 21:
		return fmt.Errorf("committee_size: must be odd, 1 to 21 (got %d)", p.CommitteeSize)
	case p.VoteBlocks < 1 || p.VoteBlocks > 100_000:
		return fmt.Errorf("vote_blocks: must be 1 to 100000 (got %d)", p.VoteBlocks)
	case p.ServeBlocks < 1 || p.ServeBlocks > 100_000:
		return fmt.Errorf("serve_blocks: must be 1 to 100000 (got %d)", p.ServeBlocks)
	case p.FraudSlashBps > 10000:
		return fmt.Errorf("fraud_slash_bps: must be <= 10000 (got %d)", p.FraudSlashBps)
	case p.WhistleblowerBps > 10000:
		return fmt.Errorf("whistleblower_bps: must be <= 10000 (got %d)", p.WhistleblowerBps)
	case p.FalseReportSlashBps > 10000:
		return fmt.Errorf("false_report_slash_bps: must be <= 10000 (got %d)", p.FalseReportSlashBps)
	case p.SilentSlashBps > 10000:
		return fmt.Errorf("silent_slash_bps: must be <= 10000 (got %d)", p.SilentSlashBps)
	case p.MaxDirectN > 4096:
		return fmt.Errorf("max_direct_n: must be <= 4096 (got %d): the chain multiplies n×n matrices in FinalizeBlock", p.MaxDirectN)
	case types.ValidateDenom(p.Denom) != nil:
		return fmt.Errorf("denom: %v", types.ValidateDenom(p.Denom))
	}
	return nil
}

// GetParams returns verify's parameters.
func GetParams(ctx *types.Context) Params {
	var p Params
	params.Get(ctx, ModuleName, &p)
	return p
}

// Bounds on messages.
const (
	MaxSamples   = 256
	MaxUnits     = 1 << 20
	MaxJobBytes  = 4096
	MaxUnitBytes = 60 << 10 // a unit's data carried in a report: with its proof and signature, what fits a 64 KiB transaction
	MaxAunts     = 64
	MaxUnitName  = 256
	maxKind      = 32
)

// Commitment states.
const (
	CommitPending   = "pending"   // waiting for the block whose randomness samples it
	CommitAssigned  = "assigned"  // sampled; the assigned verifier re-executes
	CommitVerified  = "verified"  // a verifier re-executed the samples and they matched
	CommitUnchecked = "unchecked" // no verifier answered (or none is registered)
	CommitDisputed  = "disputed"  // a challenge on it is open
	CommitFraud     = "fraud"     // the provider was proven to have cheated
)

// Commitment is a provider's commitment to the outputs of one lease (or one
// checkpoint of a train lease): the Merkle root of its units (proof.ItemsRoot, units
// sorted by name), how many there are, and the job that says how to re-run any of them.
type Commitment struct {
	ID         uint64        `json:"id,string"`
	LeaseID    uint64        `json:"lease_id,string"`
	Attempt    uint32        `json:"attempt"`
	Checkpoint uint32        `json:"checkpoint"`
	Provider   types.Address `json:"provider"`
	Tenant     types.Address `json:"tenant"`
	Kind       string        `json:"kind"`
	Root       string        `json:"root"` // hex
	Units      uint32        `json:"units"`
	Job        string        `json:"job,omitempty"` // the job description (JSON), as committed
	State      string        `json:"state"`
	// SampleHeight is the block whose randomness picks Samples, at its end.
	SampleHeight int64    `json:"sample_height,string"`
	Samples      []uint32 `json:"samples,omitempty"` // unit indexes in root order
	// Verifier is the one assigned to re-execute the samples by Deadline; Tried are
	// those assigned before who stayed silent.
	Verifier       *types.Address  `json:"verifier,omitempty"`
	Tried          []types.Address `json:"tried,omitempty"`
	AssignedHeight int64           `json:"assigned_height,string,omitempty"`
	Deadline       int64           `json:"deadline,string,omitempty"`
	Challenges     []uint64        `json:"challenges,omitempty"`
	CreatedHeight  int64           `json:"created_height,string"`
	UpdatedHeight  int64           `json:"updated_height,string"`
}

// Challenge modes.
const (
	ModeDirect    = "direct"    // the chain checked the unit itself
	ModeCommittee = "committee" // 2N+1 verifiers re-execute it; the majority decides
	// ModeAvailability: the assigned verifier reported a unit or asset withheld; 2N+1
	// verifiers try to fetch it within serve_blocks and the majority decides whether
	// the provider served it.
	ModeAvailability = "availability"
)

// Challenge outcomes (and the open state).
const (
	ChallengeDrawing      = "drawing"      // the committee is drawn at the end of DrawHeight
	ChallengeVoting       = "voting"       // the committee re-executes and votes
	ChallengeFraud        = "fraud"        // the provider cheated
	ChallengeRefuted      = "refuted"      // the unit was right: a false report
	ChallengeInconclusive = "inconclusive" // two committees could not form a majority
	ChallengeServed       = "served"       // availability: the provider served what was reported withheld
)

// Vote is a committee member's answer. Unavailable: the provider did not serve the
// member what it needed (the unit, its inputs, the job's assets) by the deadline; it
// counts toward conviction and is never slashed as a minority vote.
type Vote struct {
	Verifier    types.Address `json:"verifier"`
	Fraud       bool          `json:"fraud"`
	Unavailable bool          `json:"unavailable,omitempty"`
	Height      int64         `json:"height,string"`
}

// Challenge is a report that one unit of a commitment is wrong.
type Challenge struct {
	ID       uint64 `json:"id,string"`
	CommitID uint64 `json:"commit_id,string"`
	Unit     uint32 `json:"unit"`
	UnitName string `json:"unit_name,omitempty"`
	// UnitSHA256 is the reported unit's hash (hex), when the report carried evidence.
	UnitSHA256 string        `json:"unit_sha256,omitempty"`
	Challenger types.Address `json:"challenger"`
	// ByTenant: a tenant's dispute (its Deposit is at stake) rather than a verifier's
	// report (its bond is).
	ByTenant bool   `json:"by_tenant"`
	Deposit  uint64 `json:"deposit,string,omitempty"`
	// Input and Asset name what an availability challenge says was withheld: the
	// committed input Input of sampled unit Unit, or the pinned asset Asset; neither:
	// unit Unit itself.
	Input string `json:"input,omitempty"`
	Asset string `json:"asset,omitempty"`
	Mode  string `json:"mode"`
	State string `json:"state"`
	// Round is 1, or 2 when the first committee reached no majority.
	Round      uint32          `json:"round"`
	DrawHeight int64           `json:"draw_height,string,omitempty"`
	Committee  []types.Address `json:"committee,omitempty"`
	Past       []types.Address `json:"past,omitempty"` // members of earlier rounds
	Votes      []Vote          `json:"votes,omitempty"`
	Deadline   int64           `json:"deadline,string,omitempty"`
	// What the outcome moved.
	Slashed       uint64 `json:"slashed,string,omitempty"`
	Reward        uint64 `json:"reward,string,omitempty"`
	Refunded      uint64 `json:"refunded,string,omitempty"`
	Detail        string `json:"detail,omitempty"`
	CreatedHeight int64  `json:"created_height,string"`
	UpdatedHeight int64  `json:"updated_height,string"`
	ClosedHeight  int64  `json:"closed_height,string,omitempty"`
}

// Verifier is a registered verifier.
type Verifier struct {
	Address       types.Address `json:"address"`
	Stake         uint64        `json:"stake,string"` // bonded now (live from staking)
	Checks        uint64        `json:"checks,string"`
	Silent        uint64        `json:"silent,string"`
	FalseReports  uint64        `json:"false_reports,string"`
	Earned        uint64        `json:"earned,string"`
	CreatedHeight int64         `json:"created_height,string"`
	UpdatedHeight int64         `json:"updated_height,string"`
}

// State layout. IDs and heights are 8-byte big-endian so keys sort numerically.
var (
	commitSeqKey    = []byte("verify/seq/commit")
	challengeSeqKey = []byte("verify/seq/challenge")
	commitPrefix    = []byte("verify/commit/")    // id → Commitment
	leaseIdxPrefix  = []byte("verify/bylease/")   // lease|attempt(4)|checkpoint(4) → id
	challengePrefix = []byte("verify/challenge/") // id → Challenge
	verifierPrefix  = []byte("verify/verifier/")  // addr → Verifier
	duePrefix       = []byte("verify/due/")       // height|kind(1)|id → {}
	openPrefix      = []byte("verify/open/")      // provider|commit id → {}: unresolved work holding its bond
	paidPrefix      = []byte("verify/paid/")      // lease|attempt(4) → paid
	openChPrefix    = []byte("verify/opench/")    // challenge id → {}: challenges a committee decides, not yet decided
)

// Due-queue kinds.
const (
	dueSample  byte = 1 // draw a commitment's samples and verifier
	dueVerdict byte = 2 // a commitment's verdict deadline
	dueDraw    byte = 3 // draw a challenge's committee
	dueVote    byte = 4 // a challenge's vote deadline
)

var present = []byte{1}

func u64key(prefix []byte, vs ...uint64) []byte {
	k := append([]byte{}, prefix...)
	for _, v := range vs {
		k = binary.BigEndian.AppendUint64(k, v)
	}
	return k
}

func getJSON(ctx *types.Context, k []byte, out any) bool {
	v, ok := ctx.Store.Get(k)
	if !ok {
		return false
	}
	if err := json.Unmarshal(v, out); err != nil {
		panic(fmt.Sprintf("verify: corrupt record at %q: %v", k, err))
	}
	return true
}

func setJSON(ctx *types.Context, k []byte, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	ctx.Store.Set(k, b)
}

func nextSeq(ctx *types.Context, k []byte) uint64 {
	var n uint64
	if v, ok := ctx.Store.Get(k); ok {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	ctx.Store.Set(k, binary.BigEndian.AppendUint64(nil, n))
	return n
}

// GetCommitment returns commitment id.
func GetCommitment(ctx *types.Context, id uint64) (Commitment, bool) {
	var c Commitment
	return c, getJSON(ctx, u64key(commitPrefix, id), &c)
}

func setCommitment(ctx *types.Context, c *Commitment) {
	c.UpdatedHeight = ctx.Height
	setJSON(ctx, u64key(commitPrefix, c.ID), c)
}

// GetChallenge returns challenge id.
func GetChallenge(ctx *types.Context, id uint64) (Challenge, bool) {
	var c Challenge
	return c, getJSON(ctx, u64key(challengePrefix, id), &c)
}

func setChallenge(ctx *types.Context, c *Challenge) {
	c.UpdatedHeight = ctx.Height
	setJSON(ctx, u64key(challengePrefix, c.ID), c)
}

func verifierKey(a types.Address) []byte { return append(append([]byte{}, verifierPrefix...), a[:]...) }

// GetVerifier returns verifier a, with its live stake.
func GetVerifier(ctx *types.Context, a types.Address) (Verifier, bool) {
	var v Verifier
	if !getJSON(ctx, verifierKey(a), &v) {
		return v, false
	}
	v.Stake = bonded(ctx, a)
	return v, true
}

func setVerifier(ctx *types.Context, v *Verifier) {
	v.UpdatedHeight = ctx.Height
	cp := *v
	cp.Stake = 0 // NB: live from staking, never stored
	setJSON(ctx, verifierKey(v.Address), cp)
}

func leaseIdxKey(lease uint64, attempt, checkpoint uint32) []byte {
	k := u64key(leaseIdxPrefix, lease)
	k = binary.BigEndian.AppendUint32(k, attempt)
	return binary.BigEndian.AppendUint32(k, checkpoint)
}

func dueKey(h int64, kind byte, id uint64) []byte {
	k := u64key(duePrefix, uint64(h))
	k = append(k, kind)
	return binary.BigEndian.AppendUint64(k, id)
}

func openKey(p types.Address, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append([]byte{}, openPrefix...), p[:]...), id)
}

func paidKey(lease uint64, attempt uint32) []byte {
	return binary.BigEndian.AppendUint32(u64key(paidPrefix, lease), attempt)
}
