package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/verify"
)

// setUnit replaces unit i's data with d (a provider committing d for it).
func (w *work) setUnit(i int, d []byte) {
	w.data[w.names[i]] = d
	w.items[i].SHA256 = sha256.Sum256(d)
}

// A unit larger than a transaction (a production tile or model checkpoint) is
// reported by its hash and Merkle proof: the report fits a transaction, where one
// carrying the unit could not be sent; the committee convicts, and the challenge
// records the reported unit's hash. A report that carries a committee kind's data is
// refused and changes nothing.
func TestVerifyLargeUnitReportedByHash(t *testing.T) {
	n := verifyHarness(t, func(p *verify.Params) { p.SampleCount = 8 })
	id := n.runLease(t, 3)
	w := makeWork("scene-1", 8)
	// NB: 200 KiB of incompressible bytes: a 16-bit tile or a checkpoint of ~50k weights.
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i*7919 + i>>8)
	}
	w.setUnit(3, big)
	c := n.assigned(t, n.commit(t, id, renderKind, w).ID)
	v := n.acct(*c.Verifier)

	whole := &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 3, Evidence: w.evidence(t, 3)}
	if raw := n.sign(v, v.seq, 5000, whole); len(raw) <= tx.MaxTxBytes {
		t.Fatalf("a report carrying the 200 KiB unit is %d bytes: the test needs one over the %d-byte limit", len(raw), tx.MaxTxBytes)
	} else if _, err := tx.Decode(raw); !errors.Is(err, types.ErrTxTooLarge) {
		t.Fatalf("decode a report carrying the unit: %v, want %v", err, types.ErrTxTooLarge)
	}
	// Under the limit but still carrying a committee kind's data: refused.
	small := w.evidence(t, 2)
	if r := n.exec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 2, Evidence: small}}).TxResults[0]; r.Code != types.CodeInvalidMsg {
		t.Fatalf("a render report carrying data: code %d (%s), want %d", r.Code, r.Log, types.CodeInvalidMsg)
	}
	if got := n.commitment(c.ID); got.State != verify.CommitAssigned || len(got.Challenges) != 0 {
		t.Fatalf("a refused report changed the commitment: %+v", got)
	}

	byHash := &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 3, Evidence: w.report(t, 3)}
	if raw := n.sign(v, v.seq, 5000, byHash); len(raw) > 2<<10 {
		t.Fatalf("the report by hash is %d bytes, want at most 2 KiB whatever the unit's size", len(raw))
	}
	n.mustExec(step{v, byHash})
	ch := n.drawn(t, 1)
	want := sha256.Sum256(big)
	if ch.Mode != verify.ModeCommittee || ch.UnitName != w.names[3] || ch.UnitSHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("challenge = %+v, want a committee judging %s (sha256 %x)", ch, w.names[3], want)
	}
	provStake := n.stake(registry.BondPurpose, n.p2.addr)
	n.mustExec(n.vote(ch.Committee[0], ch.ID, true), n.vote(ch.Committee[1], ch.ID, true))
	if ch = n.challenge(ch.ID); ch.State != verify.ChallengeFraud || ch.Slashed != provStake*3/10 {
		t.Fatalf("challenge = %+v, want fraud with %d slashed", ch, provStake*3/10)
	}
}

// A unit the chain would check itself but that is too big to carry is reported by its
// hash and goes to a committee instead; a forged hash is refused as a bad proof.
func TestVerifyDirectKindByHashGoesToCommittee(t *testing.T) {
	n := verifyHarness(t, func(p *verify.Params) { p.SampleCount = 8 })
	id := n.runLease(t, 3)
	w := makeWork("job-1", 8)
	w.setUnit(5, bytes.Repeat([]byte{0xee}, 100<<10))
	c := n.assigned(t, n.commit(t, id, hashKind, w).ID)
	v := n.acct(*c.Verifier)
	forged := w.report(t, 5)
	forged.SHA256 = proof.HexBytes(bytes.Repeat([]byte{1}, 32))
	if r := n.exec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 5, Evidence: forged}}).TxResults[0]; r.Code != types.CodeBadProof {
		t.Fatalf("a report with a forged hash: code %d (%s), want %d", r.Code, r.Log, types.CodeBadProof)
	}
	n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 5, Evidence: w.report(t, 5)}})
	ch := n.drawn(t, 1)
	// NB: three verifiers, less the reporter.
	if ch.Mode != verify.ModeCommittee || ch.Detail == "" || len(ch.Committee) != 2 {
		t.Fatalf("challenge = %+v, want a committee of the 2 other verifiers, saying why", ch)
	}
}
