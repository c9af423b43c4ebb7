package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/node"
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
	// ReportedBy is "watcher" when the committed evidence is the one the harness's
	// watcher broadcast (see watcher.go), "validators" when an honest validator
	// received both votes and reported them itself.
	ReportedBy string `json:"evidence_reported_by"`
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

// evidenceWait bounds the wait for the twin's double-sign to be committed as
// evidence and the validator to leave the set: the twin block-syncs the chain so far
// (tens of blocks), signs at its first consensus height, the evidence goes into the
// next proposal and the power update takes effect two blocks after it.
const evidenceWait = 2 * time.Minute

// byzantine makes validator i double-sign by starting a twin of it, waits until the
// chain has committed the evidence, slashed, jailed and tombstoned it and taken it out
// of the validator set, and then until every node (the twin too) is past the height
// of that moment. fr.recover is the time from the twin's start to then; fr.byz what
// the chain did; fr.problems what it got wrong.
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
	j, from, err := n.addTwin(ctx, i)
	if err != nil {
		return fr, fmt.Errorf("twin of node%d: %w", i, err)
	}
	fr.extra = j
	n.logf("twin of node%d started (same priv_validator_key, fresh sign state): it double-signs", i)

	tconf, err := node.LoadConfig(n.ln.Nodes[j].Home)
	if err != nil {
		return fr, err
	}
	walPath := tconf.Consensus.WalFile()
	var sent *cmttypes.DuplicateVoteEvidence
	lastErr := ""
	watch := func(ctx context.Context) {
		if sent != nil {
			return
		}
		a, b, ok, err := findDoubleSign(walPath, cons)
		if err == nil && ok {
			sent, err = n.reportDoubleSign(ctx, a, b)
		}
		switch {
		case err != nil && !errors.Is(err, errNotYet) && !errors.Is(err, os.ErrNotExist) && err.Error() != lastErr:
			lastErr = err.Error()
			n.logf("watcher: %v", err)
		case sent != nil:
			n.logf("watcher: the twin's WAL holds two votes of node%d at height %d round %d (%v): %v and %v; evidence broadcast to node0",
				i, a.Height, a.Round, a.Type, blockOrNil(a.BlockID), blockOrNil(b.BlockID))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, evidenceWait)
	defer cancel()
	ev, err := n.findEvidence(wctx, cons, from, bz, watch)
	if err != nil {
		return fr, err
	}
	bz.ReportedBy = "validators"
	if sent != nil && bytes.Equal(sent.Hash(), ev.Hash()) {
		bz.ReportedBy = "watcher"
	}
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

// blockOrNil names the block a vote is for.
func blockOrNil(id cmttypes.BlockID) string {
	if len(id.Hash) == 0 {
		return "nil"
	}
	return id.Hash.String()
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

// addTwin starts a second instance of validator i: its priv_validator_key, a fresh
// priv_validator_state (so the key's double-sign guard has no record to stop it) and
// its own node key, block-syncing the chain from the validators.
func (n *net) addTwin(ctx context.Context, i int) (int, int64, error) {
	conf, ir, err := n.extraHome("twin")
	if err != nil {
		return 0, 0, err
	}
	src, err := node.LoadConfig(n.ln.Nodes[i].Home)
	if err != nil {
		return 0, 0, err
	}
	key, err := os.ReadFile(src.PrivValidatorKeyFile())
	if err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(conf.PrivValidatorKeyFile(), key, 0o600); err != nil {
		return 0, 0, err
	}
	// NB: two votes of one validator for the same block differ only in their
	// timestamps, and CometBFT does not count those as evidence: only votes for
	// different block IDs at one height, round and step are. With a 1 ms propose
	// timeout the twin never waits for a proposal: it votes nil before it holds the
	// block, while the real validator votes for it.
	conf.Consensus.TimeoutPropose = time.Millisecond
	conf.Consensus.TimeoutProposeDelta = time.Millisecond
	conf.Consensus.DoubleSignCheckHeight = 0
	var peers []string
	for k, nd := range n.ln.Nodes {
		if k != i {
			peers = append(peers, nd.NodeID+"@"+strings.TrimPrefix(nd.P2P, "tcp://"))
		}
	}
	conf.P2P.PersistentPeers = strings.Join(peers, ",")
	conf.P2P.PexReactor = false
	return n.addExtra(ctx, "twin", conf, ir.NodeID)
}

// byzantineLayout turns peer exchange off on every validator: each dials only its
// persistent peers (every other validator), so that none learns the twin's address
// and the twin and the validator it copies never become peers (each would take the
// other's votes for its own and pass only those on).
func byzantineLayout(ln node.Localnet) error {
	for _, nd := range ln.Nodes {
		conf, err := node.LoadConfig(nd.Home)
		if err != nil {
			return err
		}
		conf.P2P.PexReactor = false
		cfg.WriteConfigFile(filepath.Join(nd.Home, "config", "config.toml"), conf)
	}
	return nil
}

// findEvidence follows node0's blocks after height from until one commits
// duplicate-vote evidence against consensus address cons, and reads the slash
// it caused from that block's results. It calls watch on every poll.
func (n *net) findEvidence(ctx context.Context, cons []byte, from int64, bz *Byzantine, watch func(context.Context)) (*cmttypes.DuplicateVoteEvidence, error) {
	c := n.cl[0]
	for h := from + 1; ; {
		watch(ctx)
		st, err := c.Status(ctx)
		for ; err == nil && h <= st.Height; h++ {
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
