package liveness

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

func nextID(ctx *types.Context) uint64 {
	var n uint64
	if v, ok := ctx.Store.Get(seqKey); ok {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	ctx.Store.Set(seqKey, u64(n))
	return n
}

// issue creates a challenge of kind for provider, sized for one unit of model, with a
// seed drawn from this block's randomness: nobody knows it before this block is
// decided, so the work cannot start earlier.
func issue(ctx *types.Context, p Params, kind string, provider types.Address, lease uint64, attempt uint32, model string) Challenge {
	id := nextID(ctx)
	c := Challenge{ID: id, Kind: kind, Provider: provider, Lease: lease, Attempt: attempt, Model: model,
		N: p.SizeFor(model), Seed: ctx.Rand("liveness/seed", u64(id)).Uint64(),
		IssuedHeight: ctx.Height, IssuedTimeMs: ctx.Time.UnixMilli(), Deadline: ctx.Height + p.DeadlineBlocks, State: StateOpen}
	setChallenge(ctx, &c)
	ctx.Store.Set(cat(duePfx, heightKey(c.Deadline), u64(id)), present)
	ctx.Store.Set(cat(openPfx, provider[:], u64(id)), present)
	s := scoreFor(ctx, p, provider, model)
	s.Challenges++
	setScore(ctx, &s)
	ctx.Emit("liveness_challenge", "id", idStr(id), "kind", kind, "provider", provider.String(), "lease", idStr(lease),
		"model", model, "n", strconv.FormatUint(uint64(c.N), 10), "seed", idStr(c.Seed), "deadline", hStr(c.Deadline))
	return c
}

func scoreFor(ctx *types.Context, p Params, provider types.Address, model string) Score {
	s, ok := GetScore(ctx, provider, model)
	if !ok {
		s = Score{Provider: provider, Model: model}
	}
	s.ExpectedMFLOPS = p.ExpectedMFLOPS[model]
	return s
}

// Handle executes a liveness message.
func Handle(ctx *types.Context, msg types.Msg) error {
	p := GetParams(ctx)
	switch m := msg.(type) {
	case *MsgAnswer:
		return answer(ctx, p, m)
	case *MsgReveal:
		return reveal(ctx, p, m)
	}
	return types.Wrapf(types.ErrUnknownMsgType, "liveness cannot handle %T", msg)
}

// mine loads challenge id and checks it is provider's.
func mine(ctx *types.Context, id uint64, provider types.Address) (Challenge, error) {
	c, ok := GetChallenge(ctx, id)
	if !ok {
		return c, types.Wrapf(types.ErrNotFound, "challenge %d", id)
	}
	if c.Provider != provider {
		return c, types.Wrapf(types.ErrUnauthorized, "challenge %d is %s's; %s may not answer it", id, c.Provider, provider)
	}
	return c, nil
}

func closedErr(c Challenge) error {
	switch c.State {
	case StatePassed:
		return types.Wrapf(types.ErrChallengeClosed, "challenge %d passed at height %d", c.ID, c.ClosedHeight)
	case StateFailed:
		return types.Wrapf(types.ErrChallengeClosed, "challenge %d failed at height %d (%s)", c.ID, c.ClosedHeight, c.Failure)
	}
	return nil
}

func answer(ctx *types.Context, p Params, m *MsgAnswer) error {
	c, err := mine(ctx, m.Challenge, m.Provider)
	if err != nil {
		return err
	}
	if err := closedErr(c); err != nil {
		return err
	}
	if c.State == StateAnswered {
		return types.Wrapf(types.ErrChallengeClosed, "challenge %d was answered at height %d; an answer is final", c.ID, c.AnsweredHeight)
	}
	if ctx.Height > c.Deadline {
		// NB: defensive: EndBlock of the deadline fails the challenge, so a late answer
		// normally meets ErrChallengeClosed ("failed ... (missed)").
		return types.Wrapf(types.ErrChallengeLate, "challenge %d: answers were due by height %d (now %d)", c.ID, c.Deadline, ctx.Height)
	}
	if ctx.Height <= c.IssuedHeight {
		return types.Wrapf(types.ErrInvalidRequest, "challenge %d was issued in this block; its seed is known only once the block is decided", c.ID)
	}
	c.State = StateAnswered
	c.Root = hex.EncodeToString(m.Root[:])
	c.ReportedMillis = m.Millis
	c.AnsweredHeight = ctx.Height
	c.AnsweredTimeMs = ctx.Time.UnixMilli()
	c.RevealDeadline = ctx.Height + p.RevealBlocks
	// NB: drawn from this block's randomness, which commits to this very transaction:
	// the provider learns which chunks it must open only after its root is fixed.
	c.Chunks = drawDistinct(ctx.Rand("liveness/chunks", u64(c.ID), m.Root[:]), uint64(matmul.Chunks(int(c.N))), int(p.SampleChunks))
	ctx.Store.Delete(cat(duePfx, heightKey(c.Deadline), u64(c.ID)))
	ctx.Store.Set(cat(duePfx, heightKey(c.RevealDeadline), u64(c.ID)), present)
	setChallenge(ctx, &c)
	ctx.Emit("liveness_answer", "id", idStr(c.ID), "provider", c.Provider.String(), "root", c.Root,
		"millis", idStr(m.Millis), "reveal_deadline", hStr(c.RevealDeadline))
	return nil
}

// drawDistinct returns k distinct values in [0, n) (all of them, sorted, if k >= n),
// in draw order.
func drawDistinct(r *types.RandStream, n uint64, k int) []uint32 {
	if uint64(k) >= n {
		out := make([]uint32, n)
		for i := range out {
			out[i] = uint32(i)
		}
		return out
	}
	seen := map[uint64]bool{}
	var out []uint32
	for len(out) < k {
		v := r.Uint64N(n)
		if !seen[v] {
			seen[v] = true
			out = append(out, uint32(v))
		}
	}
	return out
}

func reveal(ctx *types.Context, p Params, m *MsgReveal) error {
	c, err := mine(ctx, m.Challenge, m.Provider)
	if err != nil {
		return err
	}
	if err := closedErr(c); err != nil {
		return err
	}
	if c.State == StateOpen {
		return types.Wrapf(types.ErrChallengeClosed, "challenge %d has no answer yet: send its root first (answer), then reveal the chunks drawn for it", c.ID)
	}
	if ctx.Height > c.RevealDeadline {
		return types.Wrapf(types.ErrChallengeLate, "challenge %d: the reveal was due by height %d (now %d)", c.ID, c.RevealDeadline, ctx.Height)
	}
	if len(m.Chunks) != len(c.Chunks) {
		return types.Wrapf(types.ErrBadReveal, "challenge %d: %d chunks revealed, %d drawn (%v)", c.ID, len(m.Chunks), len(c.Chunks), c.Chunks)
	}
	var root [32]byte
	hex.Decode(root[:], []byte(c.Root))
	n := int(c.N)
	for i, ch := range m.Chunks {
		if ch.Index != c.Chunks[i] {
			return types.Wrapf(types.ErrBadReveal, "challenge %d: chunks[%d] is chunk %d, the chain drew %d", c.ID, i, ch.Index, c.Chunks[i])
		}
		if err := matmul.VerifyChunk(root, n, int(ch.Index), ch.Entries, ch.Proof); err != nil {
			return types.Wrapf(types.ErrBadReveal, "challenge %d: chunk %d: %v", c.ID, ch.Index, err)
		}
	}
	// The chunks are the ones committed to; now check entries of each, drawn from this
	// block's randomness, against the chain's own computation (O(n) each).
	r := ctx.Rand("liveness/entries", u64(c.ID))
	for _, ch := range m.Chunks {
		for _, e := range drawDistinct(r, matmul.ChunkEntries, int(p.EntriesPerChunk)) {
			flat := int(ch.Index)*matmul.ChunkEntries + int(e)
			i, j := flat/n, flat%n
			if !matmul.EntryOK(n, c.Seed, i, j, ch.Entries[e]) {
				fail(ctx, p, &c, FailWrongResult)
				ctx.Emit("liveness_wrong_entry", "id", idStr(c.ID), "row", strconv.Itoa(i), "col", strconv.Itoa(j))
				return nil
			}
		}
	}
	pass(ctx, p, &c)
	return nil
}

// closeChallenge ends c in state with failure reason (empty when passed).
func closeChallenge(ctx *types.Context, c *Challenge, state, failure string) {
	due := c.Deadline
	if c.State == StateAnswered {
		due = c.RevealDeadline
	}
	ctx.Store.Delete(cat(duePfx, heightKey(due), u64(c.ID)))
	ctx.Store.Delete(cat(openPfx, c.Provider[:], u64(c.ID)))
	c.State, c.Failure, c.ClosedHeight = state, failure, ctx.Height
}

func mflops(n uint32, ms int64) uint64 {
	if ms < 1 {
		ms = 1
	}
	return uint64(2 * uint64(n) * uint64(n) * uint64(n) / uint64(ms) / 1000)
}

func pass(ctx *types.Context, p Params, c *Challenge) {
	closeChallenge(ctx, c, StatePassed, "")
	c.ReportedMFLOPS = mflops(c.N, int64(c.ReportedMillis))
	c.ChainMFLOPS = mflops(c.N, c.AnsweredTimeMs-c.IssuedTimeMs)
	s := scoreFor(ctx, p, c.Provider, c.Model)
	s.LastReportedMFLOPS, s.LastChainMFLOPS, s.LastN = c.ReportedMFLOPS, c.ChainMFLOPS, c.N
	if c.Kind == KindHardware && slow(p, c) {
		// NB: the result is right, so the challenge passes; the model is flagged.
		s.Failed++
		s.Flagged, s.FlagReason, s.FlagHeight = true, fmt.Sprintf("%s: %d MFLOPS reported at n=%d, below %d.%02d%% of the expected %d", FailSlow, c.ReportedMFLOPS, c.N, p.SlowRatioBps/100, p.SlowRatioBps%100, s.ExpectedMFLOPS), ctx.Height
		c.Failure = FailSlow
	} else {
		s.Passed++
		if c.Kind == KindHardware {
			s.Flagged, s.FlagReason, s.FlagHeight = false, "", 0
		}
	}
	setScore(ctx, &s)
	setChallenge(ctx, c)
	ctx.Emit("liveness_passed", "id", idStr(c.ID), "kind", c.Kind, "provider", c.Provider.String(), "model", c.Model,
		"reported_mflops", idStr(c.ReportedMFLOPS), "chain_mflops", idStr(c.ChainMFLOPS), "flagged", strconv.FormatBool(s.Flagged))
	after(ctx, p, c)
}

// slow reports whether hardware challenge c, answered right, was far slower than its
// model's expected figure. Only challenges that should take MinTimedMillis or more are
// judged.
func slow(p Params, c *Challenge) bool {
	exp, ok := p.ExpectedMFLOPS[c.Model]
	if !ok || p.SlowRatioBps == 0 {
		return false
	}
	if expectedMs := 2 * uint64(c.N) * uint64(c.N) * uint64(c.N) / 1000 / exp; expectedMs < p.MinTimedMillis {
		return false
	}
	return satMul(c.ReportedMFLOPS, 10_000) < satMul(exp, uint64(p.SlowRatioBps))
}

func fail(ctx *types.Context, p Params, c *Challenge, reason string) {
	closeChallenge(ctx, c, StateFailed, reason)
	s := scoreFor(ctx, p, c.Provider, c.Model)
	s.Failed++
	if c.Kind == KindHardware {
		s.Flagged, s.FlagReason, s.FlagHeight = true, reason, ctx.Height
	}
	setScore(ctx, &s)
	if c.Kind == KindLiveness {
		// NB: the fault is dated at the issuing height, so stake that started
		// unbonding after the challenge was issued is slashed too.
		amt, err := staking.SlashBond(ctx, registry.BondPurpose, c.Provider, c.IssuedHeight, p.SlashBps, "liveness_"+reason)
		if err != nil {
			panic(fmt.Sprintf("liveness: slash %s for challenge %d: %v", c.Provider, c.ID, err))
		}
		c.Slashed = amt
	}
	setChallenge(ctx, c)
	ctx.Emit("liveness_failed", "id", idStr(c.ID), "kind", c.Kind, "provider", c.Provider.String(), "lease", idStr(c.Lease),
		"reason", reason, "slashed", idStr(c.Slashed))
	if c.Kind == KindLiveness {
		err := market.CloseLease(ctx, c.Lease, c.Attempt, ReasonLivenessFailed)
		if err != nil && !errors.Is(err, types.ErrLeaseClosed) {
			panic(fmt.Sprintf("liveness: close lease %d attempt %d: %v", c.Lease, c.Attempt, err))
		}
	}
	after(ctx, p, c)
}

// after schedules what follows a closed challenge: a lease's next liveness challenge
// (if it still runs), a provider model's next hardware challenge.
func after(ctx *types.Context, p Params, c *Challenge) {
	switch c.Kind {
	case KindLiveness:
		r, ok := getLeaseRecord(ctx, c.Lease)
		if !ok || r.Open != c.ID {
			return // NB: the lease closed meanwhile; its record went with it
		}
		r.Open = 0
		scheduleLease(ctx, p, c.Lease, r)
	case KindHardware:
		if _, ok := registry.Get(ctx, c.Provider); ok {
			scheduleHardware(ctx, p, c.Provider, c.Model, p.HardwareRecheckBlocks)
		}
	}
}

// gap draws the blocks to the next challenge: uniform in 1..2×mean (mean 0: never).
func gap(ctx *types.Context, purpose string, mean int64, parts ...[]byte) int64 {
	if mean <= 0 {
		return 0
	}
	return 1 + int64(ctx.Rand(purpose, parts...).Uint64N(uint64(2*mean)))
}

func scheduleLease(ctx *types.Context, p Params, id uint64, r leaseRecord) {
	if g := gap(ctx, "liveness/lease-gap", p.LeaseChallengeBlocks, u64(id)); g > 0 {
		r.Next = ctx.Height + g
		ctx.Store.Set(cat(leaseSchedPfx, heightKey(r.Next), u64(id)), present)
	} else {
		r.Next = 0
	}
	setJSON(ctx, cat(leasePfx, u64(id)), r)
}

// scheduleHardware schedules provider's next hardware challenge of model mean blocks
// ahead on average (0: none), replacing one already scheduled.
func scheduleHardware(ctx *types.Context, p Params, provider types.Address, model string, mean int64) {
	k := cat(provider[:], []byte(model))
	if v, ok := ctx.Store.Get(cat(hwNextPfx, k)); ok {
		ctx.Store.Delete(cat(hwSchedPfx, v, k))
		ctx.Store.Delete(cat(hwNextPfx, k))
	}
	g := gap(ctx, "liveness/hw-gap", mean, k)
	if g == 0 {
		return
	}
	h := heightKey(ctx.Height + g)
	ctx.Store.Set(cat(hwSchedPfx, h, k), present)
	ctx.Store.Set(cat(hwNextPfx, k), h)
}

// models returns the model keys a provider's inventory claims: its GPU models, sorted
// and distinct, or "cpu" for a provider without GPUs.
func models(inv registry.Inventory) []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range inv.GPUs {
		if !seen[g.Model] {
			seen[g.Model] = true
			out = append(out, g.Model)
		}
	}
	if len(out) == 0 {
		return []string{cpuModel}
	}
	sort.Strings(out)
	return out
}

// cpuModel is gpu.CPUModel; the ledger keeps its own copy of the key it stores.
const cpuModel = "cpu"

// EndBlock fails the challenges whose deadline ends with this block, then issues the
// lease and hardware challenges scheduled for it.
func EndBlock(ctx *types.Context) {
	p := GetParams(ctx)
	for _, k := range dueKeys(ctx, duePfx) {
		id := binary.BigEndian.Uint64(k[len(duePfx)+8:])
		c, ok := GetChallenge(ctx, id)
		if !ok {
			panic(fmt.Sprintf("liveness: due queue names missing challenge %d", id))
		}
		switch c.State {
		case StateOpen:
			fail(ctx, p, &c, FailMissed)
		case StateAnswered:
			fail(ctx, p, &c, FailNoReveal)
		default:
			panic(fmt.Sprintf("liveness: due queue names challenge %d in state %s", id, c.State))
		}
	}
	for _, k := range dueKeys(ctx, leaseSchedPfx) {
		ctx.Store.Delete(k)
		id := binary.BigEndian.Uint64(k[len(leaseSchedPfx)+8:])
		r, ok := getLeaseRecord(ctx, id)
		if !ok || r.Open != 0 {
			panic(fmt.Sprintf("liveness: lease schedule names lease %d, whose record is %+v (found %v)", id, r, ok))
		}
		l, ok := market.GetLease(ctx, id)
		if !ok || l.State != market.LeaseActive || l.Attempt != r.Attempt {
			panic(fmt.Sprintf("liveness: lease schedule names lease %d attempt %d, which is not running", id, r.Attempt))
		}
		c := issue(ctx, p, KindLiveness, l.Provider, l.ID, l.Attempt, leaseModel(l))
		r.Open, r.Next = c.ID, 0
		setJSON(ctx, cat(leasePfx, u64(id)), r)
	}
	for _, k := range dueKeys(ctx, hwSchedPfx) {
		ctx.Store.Delete(k)
		rest := k[len(hwSchedPfx)+8:]
		ctx.Store.Delete(cat(hwNextPfx, rest))
		var owner types.Address
		copy(owner[:], rest[:len(owner)])
		model := string(rest[len(owner):])
		if prov, ok := registry.Get(ctx, owner); ok && claims(prov.Inventory, model) {
			issue(ctx, p, KindHardware, owner, 0, 0, model)
		}
	}
}

// dueKeys returns the keys of queue prefix whose height is at most this block's.
func dueKeys(ctx *types.Context, prefix []byte) [][]byte {
	var keys [][]byte
	ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(prefix):])) > ctx.Height {
			return false
		}
		keys = append(keys, bytes.Clone(k))
		return true
	})
	return keys
}

func claims(inv registry.Inventory, model string) bool {
	for _, m := range models(inv) {
		if m == model {
			return true
		}
	}
	return false
}

// leaseModel is the model a lease's challenge is sized for: its first GPU's, or one
// CPU core for a lease without GPUs.
func leaseModel(l market.Lease) string {
	for _, g := range l.Usage.GPUs {
		return g.Model
	}
	return cpuModel
}
