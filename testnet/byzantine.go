package testnet

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/staking"
)

// Byzantine is what the chain did about a double-signing validator.
type Byzantine struct {
	// Validator is the double-signer's operator; ConsAddress its consensus address.
	Validator   types.Address `json:"double_signer"`
	ConsAddress string        `json:"double_signer_cons"`
	// InfractionHeight is the height at which it signed two votes; EvidenceHeight the
	// block that committed CometBFT's duplicate-vote evidence of them.
	InfractionHeight int64 `json:"infraction_height"`
	EvidenceHeight   int64 `json:"evidence_height"`
	// StakeBefore and StakeAfter are its tokens before the twin started and after the
	// evidence; Slashed what the chain burned (its slash event), SlashBps the chain's
	// double-sign slash fraction.
	StakeBefore uint64 `json:"stake_before,string"`
	StakeAfter  uint64 `json:"stake_after,string"`
	Slashed     uint64 `json:"slashed,string"`
	SlashBps    uint32 `json:"slash_bps"`
	Jailed      bool   `json:"jailed"`
	Tombstoned  bool   `json:"tombstoned"`
	// RemovedAt is the first height whose CometBFT validator set lacks it.
	RemovedAt int64 `json:"removed_at"`
	// FirstDoubleSign is the first height at which the twin signed a vote that
	// conflicts with one of the validator's.
	FirstDoubleSign int64 `json:"first_double_sign"`
	// ReportedBy is "validators" when an honest validator received both votes through
	// gossip and CometBFT reported them itself (the normal path), "watcher" when the
	// committed evidence is the one the harness's fallback watcher broadcast (see
	// watcher.go) after Options.WatcherGrace without it.
	ReportedBy string `json:"evidence_reported_by"`
	// DetectedS is the seconds from the twin's first conflicting vote to the block
	// that committed the evidence; TwinVotes how many conflicting votes it signed by then.
	DetectedS float64 `json:"detected_s"`
	TwinVotes int     `json:"twin_votes"`
}

// problems lists what the chain got wrong about the double-signer: a slash other
// than the slash fraction of each of its delegations, no jail or no tombstone.
func (b *Byzantine) problems(wantSlash uint64) []string {
	var out []string
	if b.Slashed != wantSlash || b.StakeBefore-b.StakeAfter != wantSlash {
		out = append(out, fmt.Sprintf("double-signer %s: slashed %d (stake %d -> %d); %d bps of its delegations is %d", b.Validator, b.Slashed, b.StakeBefore, b.StakeAfter, b.SlashBps, wantSlash))
	}
	if !b.Jailed || !b.Tombstoned {
		out = append(out, fmt.Sprintf("double-signer %s: jailed %v, tombstoned %v; want both", b.Validator, b.Jailed, b.Tombstoned))
	}
	return out
}

// evidenceWait bounds the wait, beyond the watcher's grace, for the double-sign to
// be committed as evidence and the validator to leave the set: the twin connects in
// about a second and signs at the next height, the evidence goes into a proposal a
// block or two later and the power update takes effect two blocks after it; the rest
// is slack for a loaded machine.
const evidenceWait = 2 * time.Minute

// byzantine makes validator i double-sign by starting a twin of it, waits until the
// chain has committed the evidence, slashed, jailed and tombstoned it and taken it out
// of the validator set, and then until every node is past the height of that moment.
// fr.recover is the time from the twin's start to then; fr.byz what the chain did;
// fr.problems what it got wrong.
func (n *net) byzantine(ctx context.Context, i int) (faultResult, error) {
	fr := faultResult{extra: -1}
	c := n.cl[0]
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	op := n.ln.Nodes[i].Operator
	v, err := validatorOf(qctx, n, op)
	if err != nil {
		return fr, err
	}
	p, err := c.StakingParams(qctx)
	if err != nil {
		return fr, err
	}
	dels, err := c.Delegations(qctx)
	if err != nil {
		return fr, err
	}
	var wantSlash uint64
	for _, d := range dels {
		if d.Validator == op {
			wantSlash += types.MulDiv(d.Amount, uint64(p.SlashDoubleSignBps), 10000)
		}
	}
	cons := staking.ConsAddr(v.ConsPubKey)
	bz := &Byzantine{Validator: op, ConsAddress: fmt.Sprintf("%X", cons), StakeBefore: v.Tokens, SlashBps: p.SlashDoubleSignBps}
	fr.byz = bz

	start := time.Now()
	from := maxOf(n.heights(ctx))
	tw, err := n.startTwin(i)
	if err != nil {
		return fr, fmt.Errorf("twin of node%d: %w", i, err)
	}
	defer tw.stop()
	n.logf("twin of node%d started (its priv_validator_key, an empty sign state), peer of every other validator: it double-signs", i)

	var sent *cmttypes.DuplicateVoteEvidence
	var seen time.Time // when the twin first signed a conflicting vote
	lastErr := ""
	watch := func(ctx context.Context) {
		k, first, _ := tw.signed(0, 0, 0)
		if k == 0 || sent != nil {
			return
		}
		if seen.IsZero() {
			seen = time.Now()
			bz.FirstDoubleSign = first
			n.logf("twin: first conflicting vote at height %d; the validators have %v to report it before the watcher does", first, n.o.WatcherGrace)
		}
		if time.Since(seen) < n.o.WatcherGrace {
			return
		}
		var err error
		sent, err = n.watchCommits(ctx, tw, cons, bz.FirstDoubleSign)
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			n.logf("watcher: %v", err)
		case sent != nil:
			n.logf("watcher: the validators reported nothing in %v; evidence of the twin's precommit and node%d's committed one at height %d broadcast to node0", n.o.WatcherGrace, i, sent.Height())
		}
	}
	wctx, cancel := context.WithTimeout(ctx, n.o.WatcherGrace+evidenceWait)
	defer cancel()
	ev, err := n.findEvidence(wctx, cons, from, bz, watch)
	if err != nil {
		return fr, err
	}
	if !seen.IsZero() {
		bz.DetectedS = time.Since(seen).Seconds()
	}
	bz.ReportedBy = "validators"
	if sent != nil && bytes.Equal(sent.Hash(), ev.Hash()) {
		bz.ReportedBy = "watcher"
	}
	bz.TwinVotes, _, _ = tw.signed(0, 0, 0)
	n.logf("duplicate-vote evidence of node%d's double-sign at height %d (reported by the %s) committed at height %d; burned %d", i, bz.InfractionHeight, bz.ReportedBy, bz.EvidenceHeight, bz.Slashed)
	if err := n.waitRemoved(wctx, cons, bz); err != nil {
		return fr, err
	}
	after, err := validatorOf(wctx, n, op)
	if err != nil {
		return fr, err
	}
	bz.StakeAfter, bz.Jailed, bz.Tombstoned = after.Tokens, after.Jailed, after.Tombstoned
	n.logf("node%d out of the validator set from height %d: stake %d -> %d, jailed %v, tombstoned %v", i, bz.RemovedAt, bz.StakeBefore, bz.StakeAfter, bz.Jailed, bz.Tombstoned)

	all := make([]int, len(n.ln.Nodes))
	for k := range all {
		all[k] = k
	}
	if err := n.recoverWait(ctx, all, maxOf(n.heights(ctx))); err != nil {
		return fr, err
	}
	fr.recover = time.Since(start)
	fr.problems = bz.problems(wantSlash)
	return fr, nil
}

// validatorOf returns the staking record of operator op, as node0 holds it.
func validatorOf(ctx context.Context, n *net, op types.Address) (staking.Validator, error) {
	vs, err := n.cl[0].Validators(ctx)
	if err != nil {
		return staking.Validator{}, err
	}
	for _, v := range vs {
		if v.Operator == op {
			return v, nil
		}
	}
	return staking.Validator{}, fmt.Errorf("validator %s is not in node0's staking state", op)
}

// findEvidence follows node0's blocks after height from until one commits
// duplicate-vote evidence against consensus address cons, and reads the slash
// it caused from that block's results. It calls watch on every poll.
func (n *net) findEvidence(ctx context.Context, cons []byte, from int64, bz *Byzantine, watch func(context.Context)) (*cmttypes.DuplicateVoteEvidence, error) {
	c := n.cl[0]
	for h := from + 1; ; {
		watch(ctx)
		top, err := c.AppHeight(ctx) // results of a height exist once the app committed it
		for ; err == nil && h <= top; h++ {
			b, berr := c.RPC.Block(ctx, &h)
			if berr != nil {
				err = berr
				break
			}
			for _, ev := range b.Block.Evidence.Evidence {
				dv, ok := ev.(*cmttypes.DuplicateVoteEvidence)
				if !ok || !bytes.Equal(dv.VoteA.ValidatorAddress, cons) {
					continue
				}
				bz.InfractionHeight, bz.EvidenceHeight = dv.Height(), h
				return dv, n.readSlash(ctx, h, bz)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no duplicate-vote evidence against %X committed in heights %d-%d: %w", cons, from+1, h-1, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readSlash reads the double-sign slash event of bz's validator from block h's
// results.
func (n *net) readSlash(ctx context.Context, h int64, bz *Byzantine) error {
	br, err := n.cl[0].RPC.BlockResults(ctx, &h)
	if err != nil {
		return fmt.Errorf("block results %d: %w", h, err)
	}
	for _, e := range br.FinalizeBlockEvents {
		if e.Type != "slash" {
			continue
		}
		at := map[string]string{}
		for _, a := range e.Attributes {
			at[a.Key] = a.Value
		}
		if at["operator"] != bz.Validator.String() || at["reason"] != "double_sign" {
			continue
		}
		burned, err := strconv.ParseUint(at["burned"], 10, 64)
		if err != nil {
			return fmt.Errorf("slash event at height %d: burned %q: %w", h, at["burned"], err)
		}
		bz.Slashed = burned
		return nil
	}
	return fmt.Errorf("block %d commits evidence against %s but emits no double_sign slash of it", h, bz.Validator)
}

// waitRemoved finds the first height after the evidence whose validator set (as
// node0 reports it) lacks cons, waiting for the chain to reach it.
func (n *net) waitRemoved(ctx context.Context, cons []byte, bz *Byzantine) error {
	c := n.cl[0]
	for h := bz.EvidenceHeight + 1; ; {
		st, err := c.Status(ctx)
		for ; err == nil && h <= st.Height; h++ {
			vs, verr := c.RPC.Validators(ctx, &h, nil, nil)
			if verr != nil {
				err = verr
				break
			}
			in := false
			for _, v := range vs.Validators {
				in = in || bytes.Equal(v.Address, cons)
			}
			if !in {
				bz.RemovedAt = h
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("validator %X still in the validator set at heights %d-%d: %w", cons, bz.EvidenceHeight+1, h-1, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
