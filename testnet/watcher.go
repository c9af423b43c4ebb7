package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cometbft/cometbft/p2p"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/node"
)

// The watcher: the fallback when the honest validators have not reported the
// double-sign within Options.WatcherGrace, doing what any fisherman may. It needs
// nothing private: the twin's precommit (which it sent to the validators) and the
// validator's real precommit for the same height and round, which the chain's commit
// of that height carries. It makes duplicate-vote evidence of the two and broadcasts
// it to a validator's RPC; from there on it is CometBFT's: the evidence pool verifies
// both signatures against the validator set of that height, gossips the evidence, a
// proposer puts it in a block, and the app receives it as ABCI misbehavior.

// errNoPair: no committed height has both a precommit of the validator and one of
// the twin's for the same round.
var errNoPair = errors.New("no committed height has both the validator's precommit and the twin's")

// startTwin starts a twin of validator i (see twin.go) peered with every other
// validator.
func (n *net) startTwin(i int) (*twin, error) {
	conf, err := node.LoadConfig(n.ln.Nodes[i].Home)
	if err != nil {
		return nil, err
	}
	var ids, addrs []string
	for _, nd := range n.ln.Nodes {
		ids, addrs = append(ids, nd.NodeID), append(addrs, nd.P2P)
	}
	return startTwin(filepath.Join(n.dir, "twin"), n.ln.ChainID, conf.PrivValidatorKeyFile(), p2p.ID(n.ln.Nodes[i].NodeID),
		twinPeers(ids, addrs, i), n.validatorSet, n.logf)
}

// validatorSet is CometBFT's validator set of height h, as node0 reports it.
func (n *net) validatorSet(ctx context.Context, h int64) (*cmttypes.ValidatorSet, error) {
	perPage := 100
	vals, err := n.cl[0].RPC.Validators(ctx, &h, nil, &perPage)
	if err != nil {
		return nil, fmt.Errorf("validators at %d: %w", h, err)
	}
	return cmttypes.NewValidatorSet(vals.Validators), nil
}

// watchCommits looks for a committed height from `from` on where the validator with
// consensus address cons signed the commit and the twin signed a precommit of the
// same round, and broadcasts the evidence of the two to node0.
func (n *net) watchCommits(ctx context.Context, tw *twin, cons []byte, from int64) (*cmttypes.DuplicateVoteEvidence, error) {
	c := n.cl[0]
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	for h := from; h < st.Height; h++ {
		cm, err := c.RPC.Commit(ctx, &h)
		if err != nil {
			return nil, fmt.Errorf("commit %d: %w", h, err)
		}
		vs, err := n.validatorSet(ctx, h)
		if err != nil {
			return nil, err
		}
		_, _, fake := tw.signed(h, cm.Commit.Round, cmtproto.PrecommitType)
		if fake == nil {
			continue
		}
		ev, err := evidenceFromCommit(cm.Commit, fake, cons, cm.Header.Time, vs)
		if err != nil || ev == nil {
			continue
		}
		if _, err := c.RPC.BroadcastEvidence(ctx, ev); err != nil {
			return nil, fmt.Errorf("broadcast evidence: %w", err)
		}
		return ev, nil
	}
	return nil, errNoPair
}

// evidenceFromCommit makes duplicate-vote evidence of the precommit that the
// validator with consensus address cons signed in commit and the conflicting vote
// other; nil when the commit holds no precommit of that validator for its block.
// blockTime is the header time of the commit's height, vals its validator set.
func evidenceFromCommit(commit *cmttypes.Commit, other *cmttypes.Vote, cons []byte, blockTime time.Time, vals *cmttypes.ValidatorSet) (*cmttypes.DuplicateVoteEvidence, error) {
	for k, sig := range commit.Signatures {
		if sig.BlockIDFlag != cmttypes.BlockIDFlagCommit || !bytes.Equal(sig.ValidatorAddress, cons) {
			continue
		}
		real := commit.GetVote(int32(k))
		if other.Height != real.Height || other.Round != real.Round || other.Type != real.Type || other.BlockID.Equals(real.BlockID) {
			return nil, fmt.Errorf("the votes at %d/%d do not conflict", real.Height, real.Round)
		}
		return cmttypes.NewDuplicateVoteEvidence(real, other, blockTime, vals)
	}
	return nil, nil
}
