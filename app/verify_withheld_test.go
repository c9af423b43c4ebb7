package app

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/verify"
)

// withheldNet is verifyHarness with 8 blocks to serve a withheld item, a render
// lease running and its commitment assigned; stakes notes every verifier's bond.
func withheldNet(t *testing.T, job string) (*vnet, uint64, verify.Commitment, map[types.Address]uint64) {
	t.Helper()
	n := verifyHarness(t, func(p *verify.Params) { p.ServeBlocks = 8 })
	id := n.runLease(t, 3)
	w := makeWork("scene-1", 8)
	w.job = []byte(job)
	c := n.assigned(t, n.commit(t, id, renderKind, w).ID)
	stakes := map[types.Address]uint64{}
	for _, v := range n.vs {
		stakes[v.addr] = n.stake(verify.BondPurpose, v.addr)
	}
	return n, id, c, stakes
}

func (n *vnet) unavailable(v types.Address, c verify.Commitment, input, asset string) step {
	return step{n.acct(v), &verify.MsgUnavailable{Verifier: v, CommitID: c.ID, Unit: c.Samples[0], Input: input, Asset: asset}}
}

// noVerifierSlashed fails unless every verifier holds the bond it held in stakes.
func (n *vnet) noVerifierSlashed(t *testing.T, stakes map[types.Address]uint64) {
	t.Helper()
	for a, s := range stakes {
		if got := n.stake(verify.BondPurpose, a); got != s {
			t.Fatalf("verifier %s stake %d, want %d: slashed for what the provider withheld", a, got, s)
		}
	}
}

// A provider that does not serve its assigned verifier a sampled unit is convicted when
// it serves no committee member either by serve_blocks: the reporter, silent past its
// verdict deadline only because it had nothing to re-execute, is not slashed but paid
// and rewarded; the provider is slashed, its lease closed for fraud and the tenant
// refunded, as for a fake unit.
func TestVerifyWithheldUnitConvicts(t *testing.T) {
	n, id, c, stakes := withheldNet(t, `{"kind":"render"}`)
	v := *c.Verifier
	provStake := n.stake(registry.BondPurpose, n.p2.addr)
	res := n.mustExec(n.unavailable(v, c, "", ""))
	if !hasEvent(res, "unavailable_reported", "commitment", idStr(c.ID)) {
		t.Fatal("no unavailable_reported event")
	}
	if got := n.commitment(c.ID); got.State != verify.CommitDisputed {
		t.Fatalf("commitment after the report = %+v, want disputed", got)
	}
	ch := n.drawn(t, 1)
	if ch.Mode != verify.ModeAvailability || len(ch.Committee) != 2 || slices.Contains(ch.Committee, v) || ch.Deadline != ch.DrawHeight+8 {
		t.Fatalf("challenge = %+v, want an availability committee of the 2 other verifiers, 8 blocks to serve", ch)
	}
	// The reporter's verdict deadline passes: it is not silent, it reported.
	for n.height <= c.Deadline {
		n.block()
	}
	n.noVerifierSlashed(t, stakes)
	for _, m := range ch.Committee {
		if d, code := n.dutyOf(id, m); code != 0 || d.Challenge != ch.ID {
			t.Fatalf("committee member %s's duty = %+v (code %d): the provider would not serve it", m, d, code)
		}
	}
	n.mustExec(step{n.acct(ch.Committee[0]), &verify.MsgVote{Verifier: ch.Committee[0], ChallengeID: ch.ID, Unavailable: true}})
	res = n.mustExec(step{n.acct(ch.Committee[1]), &verify.MsgVote{Verifier: ch.Committee[1], ChallengeID: ch.ID, Unavailable: true}})
	if !hasEvent(res, "fraud_proven", "commitment", idStr(c.ID)) {
		t.Fatal("no fraud_proven event")
	}
	ch = n.challenge(ch.ID)
	if ch.State != verify.ChallengeFraud || ch.Slashed != provStake*3/10 || ch.Reward != ch.Slashed/2 || !strings.Contains(ch.Detail, "withheld") {
		t.Fatalf("challenge = %+v, want fraud (withheld), %d slashed, half to the reporter", ch, provStake*3/10)
	}
	if l := n.lease(id); l.State != market.LeaseClosed || l.CloseReason != verify.ReasonFraud || ch.Refunded == 0 {
		t.Fatalf("lease %+v, refunded %d: want closed for fraud and the tenant refunded", l, ch.Refunded)
	}
	n.noVerifierSlashed(t, stakes)
	if vv, _ := verify.GetVerifier(n.ctx(), v); vv.Checks != 1 || vv.Silent != 0 {
		t.Fatalf("reporter record %+v, want one check paid, never silent", vv)
	}
}

// A provider that serves the committee what its verifier reported withheld is not
// convicted: the reporter is neither slashed nor paid (the provider may have refused
// it alone, or it lied), its late verdict is refused, and the check goes to another
// verifier, who answers it.
func TestVerifyWithheldButServedReassigns(t *testing.T) {
	n, id, c, stakes := withheldNet(t, `{"kind":"render","assets":{"scene.blend":"`+strings.Repeat("ab", 32)+`"}}`)
	v := *c.Verifier
	n.mustExec(n.unavailable(v, c, "", "scene.blend"))
	ch := n.drawn(t, 1)
	if ch.Asset != "scene.blend" || ch.Mode != verify.ModeAvailability {
		t.Fatalf("challenge = %+v, want the asset named", ch)
	}
	n.mustExec(step{n.acct(ch.Committee[0]), &verify.MsgVote{Verifier: ch.Committee[0], ChallengeID: ch.ID}})
	res := n.mustExec(step{n.acct(ch.Committee[1]), &verify.MsgVote{Verifier: ch.Committee[1], ChallengeID: ch.ID}})
	if !hasEvent(res, "unavailable_refuted", "commitment", idStr(c.ID)) {
		t.Fatal("no unavailable_refuted event")
	}
	if ch = n.challenge(ch.ID); ch.State != verify.ChallengeServed {
		t.Fatalf("challenge = %+v, want served", ch)
	}
	c2 := n.commitment(c.ID)
	if c2.State != verify.CommitAssigned || c2.Verifier == nil || *c2.Verifier == v || !slices.Contains(c2.Tried, v) {
		t.Fatalf("commitment = %+v, want reassigned away from the reporter %s", c2, v)
	}
	n.noVerifierSlashed(t, stakes)
	if vv, _ := verify.GetVerifier(n.ctx(), v); vv.Checks != 0 {
		t.Fatalf("reporter record %+v: paid for a refuted report", vv)
	}
	if r := n.exec(step{n.acct(v), &verify.MsgVerdict{Verifier: v, CommitID: c.ID, OK: true}}).TxResults[0]; r.Code != types.CodeLate {
		t.Fatalf("the reporter's verdict after the refutation: code %d (%s), want %d", r.Code, r.Log, types.CodeLate)
	}
	nv := *c2.Verifier
	n.mustExec(step{n.acct(nv), &verify.MsgVerdict{Verifier: nv, CommitID: c.ID, OK: true}})
	if got := n.commitment(c.ID); got.State != verify.CommitVerified {
		t.Fatalf("commitment = %+v, want verified", got)
	}
	if got := n.stake(registry.BondPurpose, n.p2.addr); got != 100_000_000 {
		t.Fatalf("provider stake %d: slashed though it served", got)
	}
	if l := n.lease(id); l.State != market.LeaseActive {
		t.Fatalf("lease %+v closed", l)
	}
}

// Reports of withheld items are refused from anyone but the assigned verifier, for a
// unit not sampled, for an asset the job does not pin, twice, and after the deadline.
func TestVerifyUnavailableRefusals(t *testing.T) {
	n, _, c, _ := withheldNet(t, `{"kind":"render","assets":{"scene.blend":"`+strings.Repeat("ab", 32)+`"}}`)
	v := *c.Verifier
	other := n.vs[0].addr
	if other == v {
		other = n.vs[1].addr
	}
	notSampled := uint32(0)
	for slices.Contains(c.Samples, notSampled) {
		notSampled++
	}
	for _, tt := range []struct {
		name string
		s    step
		code uint32
	}{
		{"not assigned", n.unavailable(other, c, "", ""), types.CodeNotAssigned},
		{"unsampled unit", step{n.acct(v), &verify.MsgUnavailable{Verifier: v, CommitID: c.ID, Unit: notSampled}}, types.CodeNotSampled},
		{"asset not pinned", n.unavailable(v, c, "", "other.blend"), types.CodeInvalidMsg},
		{"unknown commitment", step{n.acct(v), &verify.MsgUnavailable{Verifier: v, CommitID: 99}}, types.CodeNotFound},
	} {
		if r := n.exec(tt.s).TxResults[0]; r.Code != tt.code {
			t.Fatalf("%s: code %d (%s), want %d", tt.name, r.Code, r.Log, tt.code)
		}
	}
	if got := n.commitment(c.ID); got.State != verify.CommitAssigned || len(got.Challenges) != 0 {
		t.Fatalf("refused reports changed the commitment: %+v", got)
	}
	n.mustExec(n.unavailable(v, c, "u0001", ""))
	if r := n.exec(n.unavailable(v, c, "", "")).TxResults[0]; r.Code != types.CodeAnswered {
		t.Fatalf("second report: code %d (%s), want %d", r.Code, r.Log, types.CodeAnswered)
	}
	// Late: another commitment whose deadline passed.
	id2 := n.runLease(t, 1)
	c2 := n.assigned(t, n.commit(t, id2, renderKind, makeWork("scene-2", 8)).ID)
	for n.height <= c2.Deadline {
		n.block()
	}
	if r := n.exec(n.unavailable(*c2.Verifier, c2, "", "")).TxResults[0]; r.Code != types.CodeLate {
		t.Fatalf("report after the deadline: code %d (%s), want %d", r.Code, r.Log, types.CodeLate)
	}
}

// A committee the provider will not serve the disputed unit to convicts it: members
// vote unavailable at the end of the vote, which counts toward conviction; the member
// it did serve, which re-executed and found the unit honest, is outvoted but not
// slashed, since the conviction is for withholding, not for what it found.
func TestVerifyCommitteeNotServedConvicts(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 3)
	w := makeWork("scene-1", 8)
	c := n.commit(t, id, renderKind, w)
	n.mustExec(step{n.tenant, &verify.MsgDispute{Tenant: n.tenant.addr, CommitID: c.ID, Unit: 2, Evidence: w.report(t, 2)}})
	ch := n.drawn(t, 1)
	stakes := map[types.Address]uint64{}
	for _, m := range ch.Committee {
		stakes[m] = n.stake(verify.BondPurpose, m)
	}
	provStake := n.stake(registry.BondPurpose, n.p2.addr)
	n.mustExec(n.vote(ch.Committee[0], ch.ID, false))
	n.mustExec(step{n.acct(ch.Committee[1]), &verify.MsgVote{Verifier: ch.Committee[1], ChallengeID: ch.ID, Unavailable: true}})
	n.mustExec(step{n.acct(ch.Committee[2]), &verify.MsgVote{Verifier: ch.Committee[2], ChallengeID: ch.ID, Unavailable: true}})
	ch = n.challenge(ch.ID)
	if ch.State != verify.ChallengeFraud || ch.Slashed != provStake*3/10 || !strings.Contains(ch.Detail, "did not serve 2 of the committee") {
		t.Fatalf("challenge = %+v, want fraud for withholding", ch)
	}
	n.noVerifierSlashed(t, stakes)
	if l := n.lease(id); l.CloseReason != verify.ReasonFraud {
		t.Fatalf("lease %+v, want closed for fraud", l)
	}
	if r := n.exec(step{n.acct(ch.Committee[0]), &verify.MsgVote{Verifier: ch.Committee[0], ChallengeID: ch.ID, Fraud: true, Unavailable: true}}).TxResults[0]; r.Code != types.CodeInvalidMsg {
		t.Fatalf("a vote both fraud and unavailable: code %d, want %d", r.Code, types.CodeInvalidMsg)
	}
}

func (n *vnet) dutyOf(lease uint64, a types.Address) (verify.Duty, uint32) {
	var d verify.Duty
	return d, n.query(fmt.Sprintf("/verify/duty/%d/%s", lease, a), &d)
}

func idStr(id uint64) string { return fmt.Sprint(id) }
