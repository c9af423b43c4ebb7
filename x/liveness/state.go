package liveness

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/params"
)

// ModuleName is the module's name in params, state and queries.
const ModuleName = "liveness"

// Challenge kinds.
const (
	// KindLiveness: issued during a running lease; a failure slashes the provider and
	// closes the lease (liveness_failed).
	KindLiveness = "liveness"
	// KindHardware: issued at registration and at random later; a failure or a slow
	// answer flags the provider's model, which then cannot take orders that need it.
	KindHardware = "hardware"
)

// Challenge states.
const (
	StateOpen     = "open"     // issued, awaiting MsgAnswer by Deadline
	StateAnswered = "answered" // root committed, awaiting MsgReveal by RevealDeadline
	StatePassed   = "passed"
	StateFailed   = "failed"
)

// Failure reasons (Challenge.Failure, Score.FlagReason).
const (
	FailMissed      = "missed"       // no answer by the deadline
	FailNoReveal    = "no_reveal"    // answered, but no valid reveal by its deadline
	FailWrongResult = "wrong_result" // a revealed entry is not the product's
	FailSlow        = "slow"         // hardware: right, but far below the model's figure
)

// ReasonLivenessFailed is the market close reason of a lease whose provider failed a
// liveness challenge.
const ReasonLivenessFailed = "liveness_failed"

// Challenge is one matmul challenge, as stored and queried. Every record notes the
// height that wrote it.
type Challenge struct {
	ID       uint64        `json:"id,string"`
	Kind     string        `json:"kind"`
	Provider types.Address `json:"provider"`
	// Lease and Attempt name the lease a liveness challenge is about (0 for hardware).
	Lease   uint64 `json:"lease,string,omitempty"`
	Attempt uint32 `json:"attempt,omitempty"`
	// Model is the model key the challenge is sized for ("cpu": one core).
	Model string `json:"model"`
	N     uint32 `json:"n"`
	Seed  uint64 `json:"seed,string"`
	// IssuedHeight and IssuedTimeMs are the issuing block's height and time (Unix ms).
	IssuedHeight int64  `json:"issued_height,string"`
	IssuedTimeMs int64  `json:"issued_time_ms,string"`
	Deadline     int64  `json:"deadline,string"`
	State        string `json:"state"`
	// Set by MsgAnswer.
	Root           string   `json:"root,omitempty"` // hex
	ReportedMillis uint64   `json:"reported_millis,string,omitempty"`
	AnsweredHeight int64    `json:"answered_height,string,omitempty"`
	AnsweredTimeMs int64    `json:"answered_time_ms,string,omitempty"`
	Chunks         []uint32 `json:"chunks,omitempty"` // to reveal, drawn in the answer's block
	RevealDeadline int64    `json:"reveal_deadline,string,omitempty"`
	// Set when it closes.
	Failure string `json:"failure,omitempty"`
	// ReportedMFLOPS is 2n³ over the provider's reported time; ChainMFLOPS is 2n³ over
	// the block time between issue and answer: a lower bound the chain's clock proves.
	ReportedMFLOPS uint64 `json:"reported_mflops,string,omitempty"`
	ChainMFLOPS    uint64 `json:"chain_mflops,string,omitempty"`
	Slashed        uint64 `json:"slashed,string,omitempty"`
	ClosedHeight   int64  `json:"closed_height,string,omitempty"`
	UpdatedHeight  int64  `json:"updated_height,string"`
}

// Score is a provider's record for one model: what its challenges measured. It feeds
// performance-based pricing.
type Score struct {
	Provider       types.Address `json:"provider"`
	Model          string        `json:"model"`
	ExpectedMFLOPS uint64        `json:"expected_mflops,string"`
	Challenges     uint64        `json:"challenges,string"`
	Passed         uint64        `json:"passed,string"`
	Failed         uint64        `json:"failed,string"`
	// Last* are from the last passed challenge.
	LastReportedMFLOPS uint64 `json:"last_reported_mflops,string"`
	LastChainMFLOPS    uint64 `json:"last_chain_mflops,string"`
	LastN              uint32 `json:"last_n"`
	// Flagged: the model's last hardware challenge failed or was slow; orders that need
	// it exclude the provider until a later hardware challenge passes.
	Flagged       bool   `json:"flagged"`
	FlagReason    string `json:"flag_reason,omitempty"`
	FlagHeight    int64  `json:"flag_height,string,omitempty"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

// leaseRecord follows one running lease's challenges.
type leaseRecord struct {
	Provider types.Address `json:"provider"`
	Attempt  uint32        `json:"attempt"`
	// Next is the height whose end issues its next challenge (0: one is open).
	Next int64 `json:"next,string"`
	// Open is the ID of its open challenge (0: none).
	Open uint64 `json:"open,string"`
}

// State layout. IDs and heights are 8-byte big-endian so keys sort numerically.
var (
	seqKey        = []byte("liveness/seq")
	challengePfx  = []byte("liveness/ch/")    // id → Challenge
	duePfx        = []byte("liveness/due/")   // height|id → {}: a deadline of challenge id ends with height
	openPfx       = []byte("liveness/open/")  // provider|id → {}: open or answered challenges
	leasePfx      = []byte("liveness/lease/") // lease id → leaseRecord
	leaseSchedPfx = []byte("liveness/lsch/")  // height|lease id → {}: challenge lease at the end of height
	hwSchedPfx    = []byte("liveness/hsch/")  // height|provider|model → {}: hardware-challenge at the end of height
	hwNextPfx     = []byte("liveness/hnext/") // provider|model → height of its scheduled hardware challenge
	scorePfx      = []byte("liveness/score/") // provider|model → Score
)

var present = []byte{1}

func cat(parts ...[]byte) []byte {
	var k []byte
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getJSON(ctx *types.Context, k []byte, out any) bool {
	v, ok := ctx.Store.Get(k)
	if !ok {
		return false
	}
	if err := json.Unmarshal(v, out); err != nil {
		panic(fmt.Sprintf("liveness: corrupt record at %q: %v", k, err))
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

// GetParams returns the module's parameters.
func GetParams(ctx *types.Context) Params {
	var p Params
	params.Get(ctx, ModuleName, &p)
	return p
}

// GetChallenge returns challenge id.
func GetChallenge(ctx *types.Context, id uint64) (Challenge, bool) {
	var c Challenge
	return c, getJSON(ctx, cat(challengePfx, u64(id)), &c)
}

func setChallenge(ctx *types.Context, c *Challenge) {
	c.UpdatedHeight = ctx.Height
	setJSON(ctx, cat(challengePfx, u64(c.ID)), c)
}

func scoreKey(p types.Address, model string) []byte { return cat(scorePfx, p[:], []byte(model)) }

// GetScore returns provider p's score for model.
func GetScore(ctx *types.Context, p types.Address, model string) (Score, bool) {
	var s Score
	return s, getJSON(ctx, scoreKey(p, model), &s)
}

func setScore(ctx *types.Context, s *Score) {
	s.UpdatedHeight = ctx.Height
	setJSON(ctx, scoreKey(s.Provider, s.Model), s)
}

// ScoresOf returns provider p's scores, by model.
func ScoresOf(ctx *types.Context, p types.Address) []Score {
	return listScores(ctx, cat(scorePfx, p[:]))
}

// Scores returns every score, by provider then model.
func Scores(ctx *types.Context) []Score { return listScores(ctx, scorePfx) }

func listScores(ctx *types.Context, prefix []byte) []Score {
	out := []Score{}
	ctx.Store.Iterate(prefix, func(k, v []byte) bool {
		var s Score
		if err := json.Unmarshal(v, &s); err != nil {
			panic(fmt.Sprintf("liveness: corrupt score at %q: %v", k, err))
		}
		out = append(out, s)
		return true
	})
	return out
}

func getLeaseRecord(ctx *types.Context, id uint64) (leaseRecord, bool) {
	var r leaseRecord
	return r, getJSON(ctx, cat(leasePfx, u64(id)), &r)
}

func idStr(v uint64) string    { return strconv.FormatUint(v, 10) }
func hStr(v int64) string      { return strconv.FormatInt(v, 10) }
func heightKey(h int64) []byte { return u64(uint64(h)) }
