package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// maxAssignments is how many verifiers in turn a commitment is offered to before it is
// left unchecked: each silent one is slashed and replaced.
const maxAssignments = 3

func idStr(id uint64) string { return strconv.FormatUint(id, 10) }

func bonded(ctx *types.Context, a types.Address) uint64 { return staking.Bonded(ctx, BondPurpose, a) }

func bondDenom(ctx *types.Context) string {
	var sp staking.Params
	params.Get(ctx, staking.ModuleName, &sp)
	return sp.BondDenom
}

// Handle executes a verify message.
func Handle(ctx *types.Context, msg types.Msg) error {
	p := GetParams(ctx)
	switch m := msg.(type) {
	case *MsgRegisterVerifier:
		return registerVerifier(ctx, p, m)
	case *MsgUnbondVerifier:
		if _, ok := GetVerifier(ctx, m.Verifier); !ok {
			return types.Wrapf(ErrNotVerifier, "%s is not a registered verifier", m.Verifier)
		}
		return staking.Unbond(ctx, BondPurpose, m.Verifier, m.Amount)
	case *MsgCommit:
		return commit(ctx, p, m)
	case *MsgVerdict:
		return verdict(ctx, p, m)
	case *MsgDispute:
		return dispute(ctx, p, m)
	case *MsgVote:
		return vote(ctx, p, m)
	case *MsgUnavailable:
		return unavailable(ctx, p, m)
	}
	return types.Wrapf(types.ErrUnknownMsgType, "verify cannot handle %T", msg)
}

func registerVerifier(ctx *types.Context, p Params, m *MsgRegisterVerifier) error {
	if d := bondDenom(ctx); m.Stake.Denom != d {
		return types.InvalidField("stake.denom", m.Stake.Denom, "must be the bond denom "+d)
	}
	v, exists := GetVerifier(ctx, m.Verifier)
	if !exists && m.Stake.Amount < p.MinVerifierStake {
		return types.Wrapf(types.ErrInvalidMsg, "stake: %s is below min_verifier_stake %d%s", m.Stake, p.MinVerifierStake, m.Stake.Denom)
	}
	if err := staking.Bond(ctx, BondPurpose, m.Verifier, m.Stake.Amount); err != nil {
		return err
	}
	if !exists {
		v = Verifier{Address: m.Verifier, CreatedHeight: ctx.Height}
	}
	setVerifier(ctx, &v)
	ctx.Emit("verifier_registered", "verifier", m.Verifier.String(), "stake", m.Stake.String(),
		"bonded", strconv.FormatUint(bonded(ctx, m.Verifier), 10))
	return nil
}

// leaseOf returns the lease that commitment-related msgs name: the latest attempt of
// order id.
func leaseOf(ctx *types.Context, id uint64) (market.Lease, error) {
	l, ok := market.GetLease(ctx, id)
	if !ok {
		return l, types.Wrapf(types.ErrNotFound, "lease %d", id)
	}
	return l, nil
}

// windowOpen reports whether lease l may still be disputed: it runs, or it closed no
// more than dispute_window_blocks ago.
func windowOpen(ctx *types.Context, l market.Lease) (bool, int64) {
	if l.State == market.LeaseActive {
		return true, 0
	}
	end := l.ClosedHeight + escrow.GetParams(ctx).DisputeWindowBlocks
	if h, ok := escrow.GetHold(ctx, l.ID, l.Provider); ok && h.ReleaseHeight > end {
		end = h.ReleaseHeight
	}
	return ctx.Height <= end, end
}

func commit(ctx *types.Context, p Params, m *MsgCommit) error {
	l, err := leaseOf(ctx, m.LeaseID)
	if err != nil {
		return err
	}
	if l.Provider != m.Provider {
		return types.Wrapf(types.ErrUnauthorized, "lease %d is run by %s; only it may commit its outputs (got %s)", l.ID, l.Provider, m.Provider)
	}
	if open, end := windowOpen(ctx, l); !open {
		return types.Wrapf(ErrWindowClosed, "lease %d closed at height %d and its dispute window ended at height %d: nothing can be committed for it", l.ID, l.ClosedHeight, end)
	}
	if l.State == market.LeaseClosed && l.CloseReason != market.ReasonCompleted {
		return types.Wrapf(types.ErrLeaseClosed, "lease %d closed with reason %s: only a running or completed lease commits outputs", l.ID, l.CloseReason)
	}
	idx := leaseIdxKey(l.ID, l.Attempt, m.Checkpoint)
	if v, dup := ctx.Store.Get(idx); dup {
		return types.Wrapf(types.ErrAlreadyExists, "lease %d (attempt %d) checkpoint %d is already committed (commitment %d)", l.ID, l.Attempt, m.Checkpoint, binary.BigEndian.Uint64(v))
	}
	c := Commitment{ID: nextSeq(ctx, commitSeqKey), LeaseID: l.ID, Attempt: l.Attempt, Checkpoint: m.Checkpoint,
		Provider: l.Provider, Tenant: l.Owner, Kind: m.Kind, Root: hex.EncodeToString(m.Root), Units: m.Units,
		Job: string(m.Job), State: CommitPending, SampleHeight: ctx.Height + p.SampleDelayBlocks, CreatedHeight: ctx.Height}
	setCommitment(ctx, &c)
	ctx.Store.Set(idx, binary.BigEndian.AppendUint64(nil, c.ID))
	ctx.Store.Set(dueKey(c.SampleHeight, dueSample, c.ID), present)
	ctx.Store.Set(openKey(c.Provider, c.ID), present)
	keepHeld(ctx, &c, c.SampleHeight+p.VerdictBlocks)
	ctx.Emit("work_committed", "commitment", idStr(c.ID), "lease", idStr(l.ID), "provider", l.Provider.String(),
		"kind", m.Kind, "root", c.Root, "units", strconv.FormatUint(uint64(m.Units), 10), "sample_height", strconv.FormatInt(c.SampleHeight, 10))
	return nil
}

// keepHeld keeps the provider's held pay on c's lease from being released before the
// end of height until, when verification is still pending then.
func keepHeld(ctx *types.Context, c *Commitment, until int64) {
	escrow.KeepHeld(ctx, c.LeaseID, c.Provider, until)
}

// SampleUnits draws min(s, units) distinct unit indexes from r, sorted: the units a
// verifier re-executes. Every node draws the same from the same stream.
func SampleUnits(r *types.RandStream, units, s uint32) []uint32 {
	if s >= units {
		out := make([]uint32, units)
		for i := range out {
			out[i] = uint32(i)
		}
		return out
	}
	// NB: Floyd's algorithm: s draws, no rejection loop, uniform over s-subsets.
	chosen := map[uint32]bool{}
	out := make([]uint32, 0, s)
	for j := units - s; j < units; j++ {
		t := uint32(r.Uint64N(uint64(j) + 1))
		if chosen[t] {
			t = j
		}
		chosen[t] = true
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// candidates returns the registered verifiers with at least min_verifier_stake, in
// address order, except those in skip.
func candidates(ctx *types.Context, p Params, skip []types.Address) []types.Address {
	var out []types.Address
	ctx.Store.Iterate(verifierPrefix, func(k, _ []byte) bool {
		var a types.Address
		copy(a[:], k[len(verifierPrefix):])
		if !slices.Contains(skip, a) && bonded(ctx, a) >= p.MinVerifierStake && bonded(ctx, a) > 0 {
			out = append(out, a)
		}
		return true
	})
	return out
}

// draw picks n distinct members of pool with r (all of them if there are fewer).
func draw(r *types.RandStream, pool []types.Address, n int) []types.Address {
	pool = slices.Clone(pool)
	if n > len(pool) {
		n = len(pool)
	}
	for i := 0; i < n; i++ {
		j := i + int(r.Uint64N(uint64(len(pool)-i)))
		pool[i], pool[j] = pool[j], pool[i]
	}
	return pool[:n]
}

// assign offers c to a verifier drawn from this block's randomness, skipping its
// provider, its tenant and those tried before; with none left it is unchecked.
func assign(ctx *types.Context, p Params, c *Commitment) {
	skip := append([]types.Address{c.Provider, c.Tenant}, c.Tried...)
	pool := candidates(ctx, p, skip)
	if len(pool) == 0 || len(c.Tried) >= maxAssignments {
		c.State, c.Verifier, c.Deadline = CommitUnchecked, nil, 0
		ctx.Store.Delete(openKey(c.Provider, c.ID))
		ctx.Emit("work_unchecked", "commitment", idStr(c.ID), "lease", idStr(c.LeaseID), "tried", strconv.Itoa(len(c.Tried)))
		return
	}
	r := ctx.Rand("verify/assign", binary.BigEndian.AppendUint64(nil, c.ID), []byte{byte(len(c.Tried))})
	v := draw(r, pool, 1)[0]
	c.State, c.Verifier, c.AssignedHeight, c.Deadline = CommitAssigned, &v, ctx.Height, ctx.Height+p.VerdictBlocks
	ctx.Store.Set(dueKey(c.Deadline, dueVerdict, c.ID), present)
	keepHeld(ctx, c, c.Deadline+1)
	ctx.Emit("work_assigned", "commitment", idStr(c.ID), "lease", idStr(c.LeaseID), "provider", c.Provider.String(),
		"verifier", v.String(), "samples", strconv.Itoa(len(c.Samples)), "deadline", strconv.FormatInt(c.Deadline, 10))
}

// slashVerifier takes bps of verifier a's bond for a fault at height h.
func slashVerifier(ctx *types.Context, a types.Address, h int64, bps uint32, reason string) uint64 {
	if bps == 0 {
		return 0
	}
	n, err := staking.SlashBond(ctx, BondPurpose, a, h, bps, reason)
	if err != nil {
		panic(fmt.Sprintf("verify: slash verifier %s: %v", a, err))
	}
	return n
}

// payFromPool pays up to amount from the community pool to a, as much as the pool
// holds, and returns what it paid.
func payFromPool(ctx *types.Context, a types.Address, amount uint64, denom string) uint64 {
	if have := bank.Balance(ctx, bank.CommunityPool, denom); have < amount {
		amount = have
	}
	if amount == 0 {
		return 0
	}
	if err := bank.Send(ctx, bank.CommunityPool, a, types.NewCoin(denom, amount)); err != nil {
		panic(fmt.Sprintf("verify: community pool cannot pay %d%s: %v", amount, denom, err))
	}
	auth.Ensure(ctx, a)
	return amount
}

// fromAccount pays c from the verify module account, which holds exactly the open
// dispute deposits: a shortfall means the books are broken, and the node halts.
func fromAccount(ctx *types.Context, to types.Address, c types.Coin, what string) {
	if err := bank.Send(ctx, Account, to, c); err != nil {
		panic(fmt.Sprintf("verify: module account verify holds less than its records say: cannot %s of %s: %v", what, c, err))
	}
}

// payVerifier pays verifier a for one check the outcome bore out.
func payVerifier(ctx *types.Context, p Params, a types.Address) {
	v, ok := GetVerifier(ctx, a)
	if !ok {
		return
	}
	v.Checks++
	v.Earned += payFromPool(ctx, a, p.VerifierPay, p.Denom)
	setVerifier(ctx, &v)
}

func noteVerifier(ctx *types.Context, a types.Address, f func(*Verifier)) {
	if v, ok := GetVerifier(ctx, a); ok {
		f(&v)
		setVerifier(ctx, &v)
	}
}

func verdict(ctx *types.Context, p Params, m *MsgVerdict) error {
	c, ok := GetCommitment(ctx, m.CommitID)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "commitment %d", m.CommitID)
	}
	switch {
	case c.Verifier == nil || *c.Verifier != m.Verifier:
		if slices.Contains(c.Tried, m.Verifier) {
			return types.Wrapf(ErrLate, "verifier %s's deadline on commitment %d passed; it was replaced", m.Verifier, c.ID)
		}
		return types.Wrapf(ErrNotAssigned, "commitment %d is not assigned to %s", c.ID, m.Verifier)
	case c.State != CommitAssigned:
		return types.Wrapf(ErrAnswered, "commitment %d was already answered (%s)", c.ID, c.State)
	case ctx.Height > c.Deadline:
		return types.Wrapf(ErrLate, "commitment %d's verdict was due by height %d (now %d)", c.ID, c.Deadline, ctx.Height)
	}
	ctx.Store.Delete(dueKey(c.Deadline, dueVerdict, c.ID))
	if m.OK {
		c.State = CommitVerified
		setCommitment(ctx, &c)
		ctx.Store.Delete(openKey(c.Provider, c.ID))
		payVerifier(ctx, p, m.Verifier)
		ctx.Emit("work_verified", "commitment", idStr(c.ID), "lease", idStr(c.LeaseID), "verifier", m.Verifier.String())
		return nil
	}
	if _, sampled := slices.BinarySearch(c.Samples, m.Unit); !sampled {
		return types.Wrapf(ErrNotSampled, "unit %d is not among commitment %d's samples %v", m.Unit, c.ID, c.Samples)
	}
	return openChallenge(ctx, p, &c, m.Unit, m.Verifier, false, m.Evidence)
}

func dispute(ctx *types.Context, p Params, m *MsgDispute) error {
	c, ok := GetCommitment(ctx, m.CommitID)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "commitment %d", m.CommitID)
	}
	if c.Tenant != m.Tenant {
		return types.Wrapf(types.ErrUnauthorized, "commitment %d is of lease %d, whose tenant is %s, not %s", c.ID, c.LeaseID, c.Tenant, m.Tenant)
	}
	if m.Unit >= c.Units {
		return types.InvalidField("unit", m.Unit, fmt.Sprintf("must be below the commitment's %d units", c.Units))
	}
	switch c.State {
	case CommitFraud:
		return types.Wrapf(ErrChallengeNotOpen, "commitment %d was already proven fraudulent", c.ID)
	case CommitDisputed:
		return types.Wrapf(ErrChallengeNotOpen, "commitment %d has an open challenge (%d); wait for its outcome", c.ID, c.Challenges[len(c.Challenges)-1])
	}
	l, ok := market.GetLease(ctx, c.LeaseID)
	if !ok || l.Attempt != c.Attempt {
		// NB: a later attempt's lease replaced it; judge by its own record.
		l = market.Lease{ID: c.LeaseID, Provider: c.Provider, State: market.LeaseClosed}
		if o, ok := market.GetOrder(ctx, c.LeaseID); ok {
			l.ClosedHeight = o.ClosedHeight
		}
	}
	if open, end := windowOpen(ctx, l); !open {
		return types.Wrapf(ErrWindowClosed, "lease %d's dispute window ended at height %d (now %d)", c.LeaseID, end, ctx.Height)
	}
	if p.DisputeDeposit > 0 {
		if err := bank.Send(ctx, m.Tenant, Account, types.NewCoin(p.Denom, p.DisputeDeposit)); err != nil {
			return types.Wrapf(types.ErrInsufficientFunds, "dispute deposit %d%s: %v", p.DisputeDeposit, p.Denom, err)
		}
	}
	return openChallenge(ctx, p, &c, m.Unit, m.Tenant, true, m.Evidence)
}

// checkEvidence verifies that e is unit index unit of commitment c: its proof leads
// from (name, SHA-256 of data) to the committed root at that index.
func checkEvidence(c *Commitment, unit uint32, e *Evidence) error {
	if e.Proof.Index != int64(unit) || e.Proof.Total != int64(c.Units) {
		return types.Wrapf(ErrBadProof, "the proof is for unit %d of %d, the challenge names unit %d of commitment %d's %d", e.Proof.Index, e.Proof.Total, unit, c.ID, c.Units)
	}
	var root [32]byte
	b, _ := hex.DecodeString(c.Root)
	copy(root[:], b)
	if err := e.Proof.VerifyItem(root, proof.Item{Name: e.Name, SHA256: e.Hash()}); err != nil {
		return types.Wrapf(ErrBadProof, "unit %d (%q) of commitment %d: %v", unit, e.Name, c.ID, err)
	}
	return nil
}

// openChallenge opens a challenge on unit of c. Kinds the chain checks itself are
// decided here and now from the evidence's data; the others, and a direct kind's unit
// reported by its hash (too big for a transaction), go to a committee drawn from the
// next block's randomness, whose members fetch the unit from the provider.
func openChallenge(ctx *types.Context, p Params, c *Commitment, unit uint32, who types.Address, byTenant bool, e *Evidence) error {
	chk, direct := directOf(ctx, c.Kind)
	if e != nil {
		if !direct && !e.HashOnly() {
			// NB: block space is for what the chain reads: a committee fetches the
			// unit from the provider, so its data here would only bloat the block.
			return types.InvalidField("evidence.data", fmt.Sprintf("%d bytes", len(e.Data)),
				fmt.Sprintf("a %s unit is judged by a committee, which fetches it from the provider: carry its sha256, not its data", c.Kind))
		}
		if err := checkEvidence(c, unit, e); err != nil {
			return err
		}
	}
	ch := Challenge{ID: nextSeq(ctx, challengeSeqKey), CommitID: c.ID, Unit: unit, Challenger: who, ByTenant: byTenant,
		Round: 1, CreatedHeight: ctx.Height}
	if byTenant {
		ch.Deposit = p.DisputeDeposit
	}
	if e != nil {
		h := e.Hash()
		ch.UnitName, ch.UnitSHA256 = e.Name, hex.EncodeToString(h[:])
	}
	c.Challenges = append(c.Challenges, ch.ID)
	ctx.Store.Set(openKey(c.Provider, c.ID), present)
	if direct && e == nil {
		return types.Wrapf(types.ErrInvalidMsg, "evidence: a %s unit is checked by the chain itself: the challenge must carry the unit's data and Merkle proof", c.Kind)
	}
	var honest bool
	if direct && e.HashOnly() {
		direct = false
		ch.Detail = "committee: the report carries the unit's hash, not its data"
	}
	if direct {
		ch.Mode = ModeDirect
		rs := ctx.Rand("verify/direct", binary.BigEndian.AppendUint64(nil, ch.ID))
		ok, why, err := chk(p, []byte(c.Job), e.Name, e.Data, int64(rs.Uint64()>>1))
		if err != nil {
			// NB: the chain cannot check this job itself (too big): a committee does.
			direct = false
			ch.Detail = "committee: " + err.Error()
		} else {
			honest, ch.Detail = ok, why
		}
	}
	if direct {
		ctx.Emit("challenge_opened", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "unit", strconv.FormatUint(uint64(unit), 10),
			"challenger", who.String(), "mode", ch.Mode)
		if honest {
			resolveRefuted(ctx, p, &ch, c)
		} else {
			resolveFraud(ctx, p, &ch, c)
		}
		return nil
	}
	ch.Mode, ch.State, ch.DrawHeight = ModeCommittee, ChallengeDrawing, ctx.Height+1
	ctx.Store.Set(u64key(openChPrefix, ch.ID), present)
	c.State = CommitDisputed
	setChallenge(ctx, &ch)
	setCommitment(ctx, c)
	ctx.Store.Set(dueKey(ch.DrawHeight, dueDraw, ch.ID), present)
	keepHeld(ctx, c, ch.DrawHeight+2*p.VoteBlocks+2)
	ctx.Emit("challenge_opened", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "unit", strconv.FormatUint(uint64(unit), 10),
		"challenger", who.String(), "mode", ch.Mode, "draw_height", strconv.FormatInt(ch.DrawHeight, 10))
	return nil
}

func vote(ctx *types.Context, p Params, m *MsgVote) error {
	ch, ok := GetChallenge(ctx, m.ChallengeID)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "challenge %d", m.ChallengeID)
	}
	if !slices.Contains(ch.Committee, m.Verifier) {
		if slices.Contains(ch.Past, m.Verifier) {
			return types.Wrapf(ErrLate, "verifier %s sat on an earlier committee of challenge %d, whose vote closed", m.Verifier, ch.ID)
		}
		return types.Wrapf(ErrNotAssigned, "verifier %s is not on challenge %d's committee", m.Verifier, ch.ID)
	}
	for _, v := range ch.Votes {
		if v.Verifier == m.Verifier {
			return types.Wrapf(ErrAnswered, "verifier %s already voted on challenge %d at height %d", m.Verifier, ch.ID, v.Height)
		}
	}
	switch {
	case ch.State != ChallengeVoting:
		return types.Wrapf(ErrChallengeNotOpen, "challenge %d is %s", ch.ID, ch.State)
	case ctx.Height > ch.Deadline:
		return types.Wrapf(ErrLate, "challenge %d's votes were due by height %d (now %d)", ch.ID, ch.Deadline, ctx.Height)
	}
	ch.Votes = append(ch.Votes, Vote{Verifier: m.Verifier, Fraud: m.Fraud, Unavailable: m.Unavailable, Height: ctx.Height})
	ctx.Emit("challenge_vote", "challenge", idStr(ch.ID), "verifier", m.Verifier.String(), "fraud", strconv.FormatBool(m.Fraud),
		"unavailable", strconv.FormatBool(m.Unavailable))
	fraud, ok := tally(&ch)
	if !ok {
		setChallenge(ctx, &ch)
		return nil
	}
	// NB: a majority is reached: the outcome cannot change, so it is decided now.
	ctx.Store.Delete(dueKey(ch.Deadline, dueVote, ch.ID))
	c, _ := GetCommitment(ctx, ch.CommitID)
	decide(ctx, p, &ch, &c, fraud)
	return nil
}

// decide settles ch by its committee's majority: fraud (or withheld), or not.
func decide(ctx *types.Context, p Params, ch *Challenge, c *Commitment, fraud bool) {
	switch {
	case fraud:
		resolveFraud(ctx, p, ch, c)
	case ch.Mode == ModeAvailability:
		resolveServed(ctx, p, ch, c)
	default:
		resolveRefuted(ctx, p, ch, c)
	}
}

// tally returns the committee's decision once more than half of it agrees. A member
// the provider did not serve counts toward conviction: a provider is paid for work
// that can be checked, and one that will not serve it to a committee cannot refute a
// report of it.
func tally(ch *Challenge) (fraud, decided bool) {
	var yes, no int
	for _, v := range ch.Votes {
		if v.Fraud || v.Unavailable {
			yes++
		} else {
			no++
		}
	}
	half := len(ch.Committee) / 2
	switch {
	case yes > half:
		return true, true
	case no > half:
		return false, true
	}
	return false, false
}

// settleVoters pays the committee members who voted with the outcome and slashes those
// who found the opposite by re-executing (silent_slash_bps). Never slashed when
// outvoted: a member that said the provider did not serve it, or (on an availability
// challenge) that it did, nor one that found the unit honest when the conviction came
// from members the provider did not serve: a provider can serve some members and not
// others.
func settleVoters(ctx *types.Context, p Params, ch *Challenge, fraud bool) {
	reexecuted := 0
	for _, v := range ch.Votes {
		if v.Fraud {
			reexecuted++
		}
	}
	byReexecution := reexecuted > len(ch.Committee)/2
	for _, v := range ch.Votes {
		switch {
		case (v.Fraud || v.Unavailable) == fraud:
			payVerifier(ctx, p, v.Verifier)
		case v.Unavailable || ch.Mode == ModeAvailability:
		case fraud && !byReexecution:
		default:
			slashVerifier(ctx, v.Verifier, v.Height, p.SilentSlashBps, "minority_vote")
		}
	}
}

// paid is what one lease has paid, for refunds.
type paid struct {
	Gross uint64 `json:"gross,string"`
	Fees  uint64 `json:"fees,string"`
}

func getPaid(ctx *types.Context, lease uint64, attempt uint32) paid {
	var pd paid
	getJSON(ctx, paidKey(lease, attempt), &pd)
	return pd
}

// resolveFraud settles a proven cheat: the provider's bond is slashed, the reporter
// rewarded from it, the lease closed (reason fraud) and the tenant refunded what the
// lease paid: the held pay clawed back at once, the rest from the community pool up
// to what the slash and the lease's fees brought into it.
func resolveFraud(ctx *types.Context, p Params, ch *Challenge, c *Commitment) {
	slashed, err := staking.SlashBond(ctx, registry.BondPurpose, c.Provider, c.CreatedHeight, p.FraudSlashBps, "fraud")
	if err != nil {
		panic(fmt.Sprintf("verify: slash provider %s: %v", c.Provider, err))
	}
	ch.Slashed = slashed
	ch.Reward = payFromPool(ctx, ch.Challenger, types.MulDiv(slashed, uint64(p.WhistleblowerBps), 10000), p.Denom)
	var refunded uint64
	if l, ok := market.GetLease(ctx, c.LeaseID); ok && l.Attempt == c.Attempt && l.State == market.LeaseActive {
		if err := market.CloseLease(ctx, c.LeaseID, c.Attempt, ReasonFraud); err != nil {
			panic(fmt.Sprintf("verify: close lease %d for fraud: %v", c.LeaseID, err))
		}
		// NB: the close also refunds the unused escrow; only the held pay it clawed
		// back counts as a refund of payments.
		if h, ok := escrow.GetHold(ctx, c.LeaseID, c.Provider); ok {
			refunded += h.ClawedBack
		}
	} else if h, ok := escrow.GetHold(ctx, c.LeaseID, c.Provider); ok && h.State == escrow.HoldWindow && h.Amount > 0 {
		amt := h.Amount
		if err := escrow.ClawBack(ctx, c.LeaseID, c.Provider, amt, c.Tenant); err != nil {
			panic(fmt.Sprintf("verify: claw back lease %d: %v", c.LeaseID, err))
		}
		refunded += amt
	}
	pd := getPaid(ctx, c.LeaseID, c.Attempt)
	if pd.Gross > refunded {
		limit := slashed - ch.Reward + pd.Fees
		owed := min(pd.Gross-refunded, limit)
		refunded += payFromPool(ctx, c.Tenant, owed, p.Denom)
	}
	ch.Refunded = refunded
	if n := unserved(ch); n > 0 {
		ch.Detail = fmt.Sprintf("withheld: the provider did not serve %d of the committee what re-executing unit %d needs", n, ch.Unit)
	}
	if ch.ByTenant && ch.Deposit > 0 {
		fromAccount(ctx, ch.Challenger, types.NewCoin(p.Denom, ch.Deposit), "return a dispute deposit")
	} else if !ch.ByTenant {
		payVerifier(ctx, p, ch.Challenger)
	}
	settleVoters(ctx, p, ch, true)
	ch.State, ch.ClosedHeight = ChallengeFraud, ctx.Height
	clearDuties(ctx, ch)
	setChallenge(ctx, ch)
	c.State = CommitFraud
	setCommitment(ctx, c)
	ctx.Store.Delete(openKey(c.Provider, c.ID))
	ctx.Emit("fraud_proven", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "lease", idStr(c.LeaseID),
		"provider", c.Provider.String(), "reporter", ch.Challenger.String(), "mode", ch.Mode,
		"slashed", strconv.FormatUint(slashed, 10), "reward", strconv.FormatUint(ch.Reward, 10),
		"refunded", strconv.FormatUint(refunded, 10))
}

// unserved counts the votes saying the provider did not serve the member.
func unserved(ch *Challenge) int {
	n := 0
	for _, v := range ch.Votes {
		if v.Unavailable || (ch.Mode == ModeAvailability && v.Fraud) {
			n++
		}
	}
	return n
}

// resolveRefuted settles a false report: a verifier reporter is slashed, a tenant's
// deposit goes to the community pool; the commitment counts as verified.
func resolveRefuted(ctx *types.Context, p Params, ch *Challenge, c *Commitment) {
	if ch.ByTenant {
		if ch.Deposit > 0 {
			fromAccount(ctx, bank.CommunityPool, types.NewCoin(p.Denom, ch.Deposit), "forfeit a dispute deposit")
		}
	} else {
		ch.Slashed = slashVerifier(ctx, ch.Challenger, ch.CreatedHeight, p.FalseReportSlashBps, "false_report")
		noteVerifier(ctx, ch.Challenger, func(v *Verifier) { v.FalseReports++ })
	}
	settleVoters(ctx, p, ch, false)
	ch.State, ch.ClosedHeight = ChallengeRefuted, ctx.Height
	clearDuties(ctx, ch)
	setChallenge(ctx, ch)
	c.State = CommitVerified
	setCommitment(ctx, c)
	ctx.Store.Delete(openKey(c.Provider, c.ID))
	ctx.Emit("report_refuted", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "lease", idStr(c.LeaseID),
		"reporter", ch.Challenger.String(), "mode", ch.Mode, "slashed", strconv.FormatUint(ch.Slashed, 10))
}

// resolveInconclusive closes a challenge no committee could decide: nobody is slashed
// for the report, a tenant's deposit goes back, and the commitment stays unchecked.
func resolveInconclusive(ctx *types.Context, p Params, ch *Challenge, c *Commitment) {
	if ch.ByTenant && ch.Deposit > 0 {
		fromAccount(ctx, ch.Challenger, types.NewCoin(p.Denom, ch.Deposit), "return a dispute deposit")
	}
	ch.State, ch.ClosedHeight = ChallengeInconclusive, ctx.Height
	clearDuties(ctx, ch)
	setChallenge(ctx, ch)
	c.State = CommitUnchecked
	setCommitment(ctx, c)
	ctx.Store.Delete(openKey(c.Provider, c.ID))
	ctx.Emit("challenge_inconclusive", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "rounds", strconv.FormatUint(uint64(ch.Round), 10))
}

func clearDuties(ctx *types.Context, ch *Challenge) {
	ctx.Store.Delete(u64key(openChPrefix, ch.ID))
	if ch.Deadline != 0 {
		ctx.Store.Delete(dueKey(ch.Deadline, dueVote, ch.ID))
	}
}

// EndBlock works the due queue: samples and verifiers for commitments whose sampling
// block is this one, silent verifiers, committee draws and vote deadlines. Its work is
// proportional to what is due, never to history.
func EndBlock(ctx *types.Context) {
	p := GetParams(ctx)
	var due [][]byte
	ctx.Store.Iterate(duePrefix, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(duePrefix):])) > ctx.Height {
			return false
		}
		due = append(due, bytes.Clone(k))
		return true
	})
	for _, k := range due {
		ctx.Store.Delete(k)
		kind := k[len(duePrefix)+8]
		id := binary.BigEndian.Uint64(k[len(duePrefix)+9:])
		switch kind {
		case dueSample:
			c := mustCommitment(ctx, id)
			r := ctx.Rand("verify/sample", binary.BigEndian.AppendUint64(nil, c.ID))
			c.Samples = SampleUnits(r, c.Units, p.SampleCount)
			assign(ctx, p, &c)
			setCommitment(ctx, &c)
		case dueVerdict:
			c := mustCommitment(ctx, id)
			if c.State != CommitAssigned || c.Deadline != ctx.Height {
				continue
			}
			silent := *c.Verifier
			// NB: the fault dates from the assignment, so stake unbonded since is slashed too.
			slashed := slashVerifier(ctx, silent, c.AssignedHeight, p.SilentSlashBps, "silent")
			noteVerifier(ctx, silent, func(v *Verifier) { v.Silent++ })
			ctx.Emit("verifier_silent", "commitment", idStr(c.ID), "verifier", silent.String(), "slashed", strconv.FormatUint(slashed, 10))
			c.Tried = append(c.Tried, silent)
			assign(ctx, p, &c)
			setCommitment(ctx, &c)
		case dueDraw:
			ch := mustChallenge(ctx, id)
			c := mustCommitment(ctx, ch.CommitID)
			skip := append([]types.Address{c.Provider, c.Tenant, ch.Challenger}, ch.Past...)
			r := ctx.Rand("verify/committee", binary.BigEndian.AppendUint64(nil, ch.ID), []byte{byte(ch.Round)})
			ch.Committee = draw(r, candidates(ctx, p, skip), int(p.CommitteeSize))
			if len(ch.Committee) == 0 {
				resolveInconclusive(ctx, p, &ch, &c)
				continue
			}
			ch.State, ch.Deadline = ChallengeVoting, ctx.Height+ch.window(p)
			ctx.Store.Set(dueKey(ch.Deadline, dueVote, ch.ID), present)
			keepHeld(ctx, &c, ch.Deadline+ch.window(p)+2)
			setChallenge(ctx, &ch)
			ctx.Emit("committee_drawn", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "round", strconv.FormatUint(uint64(ch.Round), 10),
				"size", strconv.Itoa(len(ch.Committee)), "deadline", strconv.FormatInt(ch.Deadline, 10))
		case dueVote:
			ch := mustChallenge(ctx, id)
			if ch.State != ChallengeVoting {
				continue
			}
			c := mustCommitment(ctx, ch.CommitID)
			voted := map[types.Address]bool{}
			for _, v := range ch.Votes {
				voted[v.Verifier] = true
			}
			for _, a := range ch.Committee {
				if !voted[a] {
					slashVerifier(ctx, a, ch.DrawHeight, p.SilentSlashBps, "silent")
					noteVerifier(ctx, a, func(v *Verifier) { v.Silent++ })
					ctx.Emit("verifier_silent", "challenge", idStr(ch.ID), "verifier", a.String())
				}
			}
			ch.Deadline = 0
			if fraud, ok := tally(&ch); ok {
				decide(ctx, p, &ch, &c, fraud)
				continue
			}
			// NB: no majority (members were silent): the answers given are paid for
			// nothing and a fresh committee, none of this one, tries once more.
			if ch.Round >= 2 {
				resolveInconclusive(ctx, p, &ch, &c)
				continue
			}
			ch.Past = append(ch.Past, ch.Committee...)
			ch.Committee, ch.Votes = nil, nil
			ch.Round++
			ch.State, ch.DrawHeight = ChallengeDrawing, ctx.Height+1
			ctx.Store.Set(dueKey(ch.DrawHeight, dueDraw, ch.ID), present)
			setChallenge(ctx, &ch)
			ctx.Emit("committee_split", "challenge", idStr(ch.ID), "round", strconv.FormatUint(uint64(ch.Round), 10))
		default:
			panic(fmt.Sprintf("verify: due queue entry of unknown kind %d", kind))
		}
	}
}

func mustCommitment(ctx *types.Context, id uint64) Commitment {
	c, ok := GetCommitment(ctx, id)
	if !ok {
		panic(fmt.Sprintf("verify: due queue names missing commitment %d", id))
	}
	return c
}

func mustChallenge(ctx *types.Context, id uint64) Challenge {
	c, ok := GetChallenge(ctx, id)
	if !ok {
		panic(fmt.Sprintf("verify: due queue names missing challenge %d", id))
	}
	return c
}
