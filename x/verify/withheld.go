package verify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/kiln-network/kiln/types"
)

// jobAssets returns the assets c's job pins (name → SHA-256), as committed.
func jobAssets(c *Commitment) map[string]string {
	var j struct {
		Assets map[string]string `json:"assets"`
	}
	// NB: a job that does not decode pins nothing: a report naming an asset of it is
	// refused, and the committee's re-execution judges the job itself.
	_ = json.Unmarshal([]byte(c.Job), &j)
	return j.Assets
}

// unavailable opens an availability challenge: the assigned verifier says the
// provider did not serve what re-executing one of its samples needs. The verifier's
// check ends here without a verdict and without a slash; a committee gives the
// provider serve_blocks to serve the item, and decides.
func unavailable(ctx *types.Context, p Params, m *MsgUnavailable) error {
	c, ok := GetCommitment(ctx, m.CommitID)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "commitment %d", m.CommitID)
	}
	switch {
	case c.Verifier == nil || *c.Verifier != m.Verifier:
		if slices.Contains(c.Tried, m.Verifier) {
			return types.Wrapf(ErrLate, "verifier %s's check of commitment %d ended; it was replaced", m.Verifier, c.ID)
		}
		return types.Wrapf(ErrNotAssigned, "commitment %d is not assigned to %s", c.ID, m.Verifier)
	case c.State != CommitAssigned:
		return types.Wrapf(ErrAnswered, "commitment %d was already answered (%s)", c.ID, c.State)
	case ctx.Height > c.Deadline:
		return types.Wrapf(ErrLate, "commitment %d's verdict was due by height %d (now %d)", c.ID, c.Deadline, ctx.Height)
	}
	if _, sampled := slices.BinarySearch(c.Samples, m.Unit); !sampled {
		return types.Wrapf(ErrNotSampled, "unit %d is not among commitment %d's samples %v", m.Unit, c.ID, c.Samples)
	}
	if m.Asset != "" {
		if _, pinned := jobAssets(&c)[m.Asset]; !pinned {
			return types.InvalidField("asset", m.Asset, fmt.Sprintf("is not an asset commitment %d's job pins", c.ID))
		}
	}
	ctx.Store.Delete(dueKey(c.Deadline, dueVerdict, c.ID))
	ch := Challenge{ID: nextSeq(ctx, challengeSeqKey), CommitID: c.ID, Unit: m.Unit, Input: m.Input, Asset: m.Asset,
		Challenger: m.Verifier, Mode: ModeAvailability, State: ChallengeDrawing, Round: 1, DrawHeight: ctx.Height + 1,
		CreatedHeight: ctx.Height}
	c.Challenges = append(c.Challenges, ch.ID)
	c.State = CommitDisputed
	ctx.Store.Set(u64key(openChPrefix, ch.ID), present)
	ctx.Store.Set(dueKey(ch.DrawHeight, dueDraw, ch.ID), present)
	setChallenge(ctx, &ch)
	setCommitment(ctx, &c)
	keepHeld(ctx, &c, ch.DrawHeight+2*p.ServeBlocks+2)
	ctx.Emit("unavailable_reported", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "lease", idStr(c.LeaseID),
		"provider", c.Provider.String(), "verifier", m.Verifier.String(), "unit", strconv.FormatUint(uint64(m.Unit), 10),
		"input", m.Input, "asset", m.Asset, "draw_height", strconv.FormatInt(ch.DrawHeight, 10))
	return nil
}

// window is how long a challenge's committee has to vote.
func (ch *Challenge) window(p Params) int64 {
	if ch.Mode == ModeAvailability {
		return p.ServeBlocks
	}
	return p.VoteBlocks
}

// resolveServed settles an availability challenge whose committee fetched what was
// reported withheld: the provider served it. The reporter is neither slashed (the
// provider may have refused it alone) nor paid; the check goes to another verifier.
func resolveServed(ctx *types.Context, p Params, ch *Challenge, c *Commitment) {
	settleVoters(ctx, p, ch, false)
	ch.State, ch.ClosedHeight = ChallengeServed, ctx.Height
	clearDuties(ctx, ch)
	setChallenge(ctx, ch)
	c.Tried = append(c.Tried, ch.Challenger)
	c.Verifier = nil
	assign(ctx, p, c)
	setCommitment(ctx, c)
	ctx.Emit("unavailable_refuted", "challenge", idStr(ch.ID), "commitment", idStr(c.ID), "lease", idStr(c.LeaseID),
		"reporter", ch.Challenger.String(), "state", c.State)
}
