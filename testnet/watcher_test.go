package testnet

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cometbft/cometbft/crypto/tmhash"
	"github.com/cometbft/cometbft/evidence"
	"github.com/cometbft/cometbft/privval"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"
)

const walChainID = "kiln-watcher-test"

// The twin signs a vote that conflicts with the validator's for any block and for
// nil, carries no extension signature (Kiln's chains refuse one), and signs each
// height/round/type once.
func TestTwinVoteConflicts(t *testing.T) {
	dir := t.TempDir()
	real := privval.GenFilePV(filepath.Join(dir, "key.json"), filepath.Join(dir, "state.json"))
	tw := &twin{chainID: walChainID, pv: privval.NewFilePV(real.Key.PrivKey, filepath.Join(dir, "k2.json"), filepath.Join(dir, "s2.json")),
		addr: real.Key.Address, votes: map[step]*cmttypes.Vote{}}
	s := step{5, 0, cmtproto.PrecommitType}
	v, err := tw.vote(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(walChainID, real.Key.PubKey); err != nil {
		t.Fatalf("the twin's vote does not verify with the validator's key: %v", err)
	}
	if len(v.ExtensionSignature) != 0 || v.BlockID.IsZero() {
		t.Fatalf("twin vote: extension signature %x, block %v; want none, a block", v.ExtensionSignature, v.BlockID)
	}
	for _, b := range []cmttypes.BlockID{{}, blockID("block")} {
		if v.BlockID.Equals(b) {
			t.Fatalf("the twin votes for %v, as the validator may", b)
		}
	}
	again, err := tw.vote(s, 0)
	if err != nil || again != v {
		t.Fatalf("second vote for %v = %v, %v; want the first", s, again, err)
	}
	if n, first, _ := tw.signed(0, 0, 0); n != 1 || first != 5 {
		t.Fatalf("signed = %d from %d; want 1 from 5", n, first)
	}
}

func blockID(s string) cmttypes.BlockID {
	return cmttypes.BlockID{Hash: tmhash.Sum([]byte(s)), PartSetHeader: cmttypes.PartSetHeader{Total: 1, Hash: tmhash.Sum([]byte(s + "p"))}}
}

// The watcher's evidence: the validator's precommit as the chain's commit holds it
// and the twin's conflicting one; CometBFT's own evidence verification accepts it.
func TestEvidenceFromCommit(t *testing.T) {
	dir := t.TempDir()
	real := privval.GenFilePV(filepath.Join(dir, "key.json"), filepath.Join(dir, "state.json"))
	other := privval.GenFilePV(filepath.Join(dir, "okey.json"), filepath.Join(dir, "ostate.json"))
	vals := cmttypes.NewValidatorSet([]*cmttypes.Validator{cmttypes.NewValidator(real.Key.PubKey, 10), cmttypes.NewValidator(other.Key.PubKey, 10)})
	block := blockID("block")
	sign := func(pv *privval.FilePV, b cmttypes.BlockID) *cmttypes.Vote {
		idx, _ := vals.GetByAddress(pv.Key.Address)
		v := &cmttypes.Vote{Type: cmtproto.PrecommitType, Height: 5, Round: 0, BlockID: b, Timestamp: time.Unix(1700000000, 0).UTC(), ValidatorAddress: pv.Key.Address, ValidatorIndex: idx}
		p := v.ToProto()
		if err := pv.SignVote(walChainID, p); err != nil {
			t.Fatal(err)
		}
		v.Signature = p.Signature
		return v
	}
	commit := func(signers ...*privval.FilePV) *cmttypes.Commit {
		c := &cmttypes.Commit{Height: 5, Round: 0, BlockID: block, Signatures: make([]cmttypes.CommitSig, vals.Size())}
		for k := range c.Signatures {
			c.Signatures[k] = cmttypes.NewCommitSigAbsent()
		}
		for _, pv := range signers {
			v := sign(pv, block)
			c.Signatures[v.ValidatorIndex] = v.CommitSig()
		}
		return c
	}
	twinPV := privval.NewFilePV(real.Key.PrivKey, filepath.Join(dir, "k2.json"), filepath.Join(dir, "s2.json"))
	tw := &twin{chainID: walChainID, pv: twinPV, addr: real.Key.Address, votes: map[step]*cmttypes.Vote{}}
	idx, _ := vals.GetByAddress(real.Key.Address)
	fake, err := tw.vote(step{5, 0, cmtproto.PrecommitType}, idx)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := evidenceFromCommit(commit(real, other), fake, real.Key.Address, time.Unix(1700000000, 0), vals)
	if err != nil || ev == nil {
		t.Fatalf("evidenceFromCommit = %v, %v; want evidence", ev, err)
	}
	if err := evidence.VerifyDuplicateVote(ev, walChainID, vals); err != nil {
		t.Fatalf("CometBFT refuses the evidence: %v", err)
	}
	if err := evidence.VerifyDuplicateVote(ev, "another-chain", vals); err == nil {
		t.Fatal("the evidence verifies for another chain too")
	}
	if ev, err := evidenceFromCommit(commit(other), fake, real.Key.Address, time.Unix(1700000000, 0), vals); ev != nil || err != nil {
		t.Fatalf("a commit the validator did not sign gives %v, %v; want nothing", ev, err)
	}
	same := sign(privval.NewFilePV(real.Key.PrivKey, filepath.Join(dir, "k3.json"), filepath.Join(dir, "s3.json")), block)
	if _, err := evidenceFromCommit(commit(real, other), same, real.Key.Address, time.Unix(1700000000, 0), vals); err == nil {
		t.Fatal("two precommits for one block are taken for evidence")
	}
}
