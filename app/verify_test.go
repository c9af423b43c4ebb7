package app

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
	"github.com/kiln-network/kiln/x/verify"
)

// hashKind is a workload the chain checks itself in these tests: an honest unit's data
// is SHA-256(job || unit name), so a challenge carrying the data is decided on chain
// (the path matmul takes with Freivalds).
const hashKind = "hash"

func hashCheck(_ verify.Params, job []byte, unit string, data []byte, _ int64) (bool, string, error) {
	want := sha256.Sum256(append(append([]byte{}, job...), unit...))
	if !bytes.Equal(data, want[:]) {
		return false, "unit data is not the hash of its job and name", nil
	}
	return true, "unit data matches", nil
}

// work is a job's units as a provider holds them: data by name, and the Merkle items.
type work struct {
	job   []byte
	names []string
	data  map[string][]byte
	items []proof.Item
}

// makeWork builds n honest units of job, then fakes those in fake (their data replaced).
func makeWork(job string, n int, fake ...int) *work {
	w := &work{job: []byte(job), data: map[string][]byte{}}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("u%04d", i)
		sum := sha256.Sum256(append([]byte(job), name...))
		d := sum[:]
		if slices.Contains(fake, i) {
			d = bytes.Repeat([]byte{0xee}, 32)
		}
		w.names = append(w.names, name)
		w.data[name] = d
		w.items = append(w.items, proof.Item{Name: name, SHA256: sha256.Sum256(d)})
	}
	return w
}

func (w *work) root() []byte { r := proof.ItemsRoot(w.items); return r[:] }

// evidence returns unit i as the provider serves it: data and Merkle proof.
func (w *work) evidence(t *testing.T, i int) *verify.Evidence {
	t.Helper()
	name := w.names[i]
	p, err := proof.ProveItem(w.items, name)
	if err != nil {
		t.Fatal(err)
	}
	return &verify.Evidence{Name: name, Data: w.data[name], Proof: p}
}

// report returns unit i as a report on a kind a committee judges carries it: its hash
// and Merkle proof, not its data.
func (w *work) report(t *testing.T, i int) *verify.Evidence {
	t.Helper()
	e := w.evidence(t, i)
	h := e.Hash()
	e.Data, e.SHA256 = nil, h[:]
	return e
}

// vnet is a harness with the default escrow holdback and dispute window, providers p1
// and p2, a tenant, and three registered verifiers.
type vnet struct {
	*harness
	p1, p2, tenant, stranger *account
	vs                       []*account
	params                   verify.Params
}

func verifyHarness(t *testing.T, edit func(*verify.Params)) *vnet {
	t.Helper()
	vp := verify.DefaultParams()
	vp.SampleCount, vp.VerdictBlocks, vp.VoteBlocks = 4, 5, 5
	if edit != nil {
		edit(&vp)
	}
	h := newHarnessWith(t, 8, func(g *GenesisState) {
		g.Params.Escrow = escrow.DefaultParams()
		g.Params.Verify = vp
	})
	h.app = New(h.app.db, Options{CheckInvariants: true, Extend: func(hk *types.Hooks) {
		verify.RegisterDirect(hk, hashKind, hashCheck)
	}})
	n := &vnet{harness: h, p1: h.accs[1], p2: h.accs[2], tenant: h.accs[3], stranger: h.accs[4], vs: h.accs[5:8], params: vp}
	h.mustExec(h.register(n.p1, inv("eu-west", rtx4090(2))), h.register(n.p2, inv("us-east", a100(4))))
	var steps []step
	for _, v := range n.vs {
		steps = append(steps, step{v, &verify.MsgRegisterVerifier{Verifier: v.addr, Stake: types.NewCoin("ukiln", 20_000_000)}})
	}
	h.mustExec(steps...)
	return n
}

// runLease leases order 1 to p2 at 800 per block, starts it and lets it bill for
// blocks blocks; it returns the lease ID.
func (n *vnet) runLease(t *testing.T, blocks int) uint64 {
	t.Helper()
	n.mustExec(step{n.tenant, order(n.tenant, 1000, 100_000, gpuGroup("job", 1, 1, "a100"))})
	os := market.Orders(n.ctx(), market.OrderFilter{})
	id := os[len(os)-1].ID
	n.mustExec(bid(n.p2, id, 800))
	n.mustExec(start(n.p2, id))
	for range blocks {
		n.block()
	}
	return id
}

func (n *vnet) commit(t *testing.T, id uint64, kind string, w *work) verify.Commitment {
	t.Helper()
	n.mustExec(step{n.p2, &verify.MsgCommit{Provider: n.p2.addr, LeaseID: id, Kind: kind, Root: w.root(), Units: uint32(len(w.items)), Job: w.job}})
	cs := n.commitments()
	return cs[len(cs)-1]
}

func (n *vnet) commitments() []verify.Commitment {
	var out struct{ Commitments []verify.Commitment }
	if c := n.query("/verify/commitments", &out); c != 0 {
		n.t.Fatalf("query commitments: code %d", c)
	}
	return out.Commitments
}

func (n *vnet) commitment(id uint64) verify.Commitment {
	c, ok := verify.GetCommitment(n.ctx(), id)
	if !ok {
		n.t.Fatalf("commitment %d missing", id)
	}
	return c
}

func (n *vnet) challenge(id uint64) verify.Challenge {
	c, ok := verify.GetChallenge(n.ctx(), id)
	if !ok {
		n.t.Fatalf("challenge %d missing", id)
	}
	return c
}

func (n *vnet) acct(a types.Address) *account {
	for _, x := range n.accs {
		if x.addr == a {
			return x
		}
	}
	n.t.Fatalf("no account %s", a)
	return nil
}

func (n *vnet) bal(a types.Address) uint64 { return bank.Balance(n.ctx(), a, "ukiln") }

func (n *vnet) stake(purpose string, a types.Address) uint64 {
	return staking.Bonded(n.ctx(), purpose, a)
}

// assigned runs blocks until commitment id is assigned and returns it.
func (n *vnet) assigned(t *testing.T, id uint64) verify.Commitment {
	t.Helper()
	for range 3 {
		if c := n.commitment(id); c.State == verify.CommitAssigned {
			return c
		}
		n.block()
	}
	t.Fatalf("commitment %d not assigned: %+v", id, n.commitment(id))
	return verify.Commitment{}
}

// An honest provider's commitment is sampled from the randomness of the block after
// it, assigned to one verifier, verified; the verifier is paid per check from the
// community pool and the provider's held pay is released when the window ends.
func TestVerifySpotCheckHonest(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 3)
	w := makeWork("job-1", 16)
	c := n.commit(t, id, hashKind, w)
	if c.State != verify.CommitPending || c.SampleHeight != n.height+1 || len(c.Samples) != 0 {
		t.Fatalf("commitment = %+v, want pending, sampled at %d", c, n.height+1)
	}
	c = n.assigned(t, c.ID)
	if len(c.Samples) != 4 || !slices.IsSorted(c.Samples) || c.Verifier == nil || c.Deadline != c.AssignedHeight+5 {
		t.Fatalf("assigned = %+v, want 4 sorted samples, a verifier and a deadline 5 blocks on", c)
	}
	v := n.acct(*c.Verifier)
	pool := n.bal(bank.CommunityPool)
	before := n.bal(v.addr)
	n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, OK: true}})
	if got := n.commitment(c.ID); got.State != verify.CommitVerified {
		t.Fatalf("after an ok verdict: %+v", got)
	}
	// NB: the tx fee (5000) went to the fee collector, the pay came from the pool.
	if got := n.bal(v.addr); got != before-5000+n.params.VerifierPay {
		t.Fatalf("verifier balance %d, want %d (paid %d for the check)", got, before-5000+n.params.VerifierPay, n.params.VerifierPay)
	}
	if got := n.bal(bank.CommunityPool); got >= pool+2500 {
		t.Fatalf("community pool %d, was %d: the check was not paid from it", got, pool)
	}
	// Completion opens the window; the held pay reaches the provider at its end.
	n.mustExec(step{n.p2, &market.MsgCompleteLease{Provider: n.p2.addr, LeaseID: id, OutputHash: w.root()}})
	h, _ := escrow.GetHold(n.ctx(), id, n.p2.addr)
	if h.State != escrow.HoldWindow || h.Amount == 0 {
		t.Fatalf("hold after completion = %+v", h)
	}
	for n.height < h.ReleaseHeight {
		n.block()
	}
	if h2, _ := escrow.GetHold(n.ctx(), id, n.p2.addr); h2.State != escrow.HoldReleased || h2.Released != h.Amount {
		t.Fatalf("hold after the window = %+v, want %d released", h2, h.Amount)
	}
}

// A faked unit the chain can check itself: the verifier's report carries the unit and
// its Merkle proof; the chain checks it, slashes the provider, rewards the reporter
// from the slash, closes the lease (fraud) and refunds the tenant every payment;
// money is conserved (the harness audits the books after every block).
func TestVerifyDirectFraud(t *testing.T) {
	n := verifyHarness(t, func(p *verify.Params) { p.SampleCount = 16 })
	id := n.runLease(t, 4)
	w := makeWork("job-1", 16, 5)
	c := n.assigned(t, n.commit(t, id, hashKind, w).ID)
	v := n.acct(*c.Verifier)
	provStake := n.stake(registry.BondPurpose, n.p2.addr)
	tenantBefore, vBefore := n.bal(n.tenant.addr), n.bal(v.addr)
	paidGross := n.escrowOf(id).Paid + n.escrowOf(id).Fees + n.escrowOf(id).Held
	res := n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 5, Evidence: w.evidence(t, 5)}})
	if !hasEvent(res, "fraud_proven", "commitment", fmt.Sprint(c.ID)) {
		t.Fatal("no fraud_proven event")
	}
	ch := n.challenge(1)
	wantSlash := provStake * 3000 / 10000
	if ch.State != verify.ChallengeFraud || ch.Mode != verify.ModeDirect || ch.Slashed != wantSlash || ch.Reward != wantSlash/2 {
		t.Fatalf("challenge = %+v, want fraud, direct, slashed %d, reward %d", ch, wantSlash, wantSlash/2)
	}
	if got := n.stake(registry.BondPurpose, n.p2.addr); got != provStake-wantSlash {
		t.Fatalf("provider stake %d, want %d", got, provStake-wantSlash)
	}
	l := n.lease(id)
	if l.State != market.LeaseClosed || l.CloseReason != verify.ReasonFraud {
		t.Fatalf("lease = %+v, want closed for fraud", l)
	}
	if ch.Refunded != paidGross {
		t.Fatalf("refunded %d, want every payment (%d)", ch.Refunded, paidGross)
	}
	// The tenant got the unused escrow back with the close, plus the refund.
	e := n.escrowOf(id)
	if got := n.bal(n.tenant.addr); got != tenantBefore+e.Refunded+paidGross {
		t.Fatalf("tenant %d, want %d (escrow refund %d + payments %d)", got, tenantBefore+e.Refunded+paidGross, e.Refunded, paidGross)
	}
	if got := n.bal(v.addr); got != vBefore-5000+wantSlash/2+n.params.VerifierPay {
		t.Fatalf("reporter %d, want %d", got, vBefore-5000+wantSlash/2+n.params.VerifierPay)
	}
	if got := n.commitment(c.ID); got.State != verify.CommitFraud {
		t.Fatalf("commitment %+v, want fraud", got)
	}
	// The honest provider is untouched.
	if got := n.stake(registry.BondPurpose, n.p1.addr); got != 100_000_000 {
		t.Fatalf("honest provider stake %d", got)
	}
}

// A report against an honest unit is refuted by the chain's own check: the reporter
// loses false_report_slash_bps of its bond; the provider keeps its stake and lease.
func TestVerifyFalseReport(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 2)
	w := makeWork("job-1", 8)
	c := n.assigned(t, n.commit(t, id, hashKind, w).ID)
	v := n.acct(*c.Verifier)
	vStake := n.stake(verify.BondPurpose, v.addr)
	u := int(c.Samples[0])
	n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: uint32(u), Evidence: w.evidence(t, u)}})
	ch := n.challenge(1)
	if ch.State != verify.ChallengeRefuted || ch.Slashed != vStake/10 {
		t.Fatalf("challenge = %+v, want refuted with %d slashed", ch, vStake/10)
	}
	if got := n.stake(verify.BondPurpose, v.addr); got != vStake-vStake/10 {
		t.Fatalf("reporter stake %d, want %d", got, vStake-vStake/10)
	}
	if got := n.stake(registry.BondPurpose, n.p2.addr); got != 100_000_000 {
		t.Fatalf("honest provider slashed: stake %d", got)
	}
	if l := n.lease(id); l.State != market.LeaseActive {
		t.Fatalf("lease closed by a false report: %+v", l)
	}
	if vv, _ := verify.GetVerifier(n.ctx(), v.addr); vv.FalseReports != 1 {
		t.Fatalf("verifier record %+v", vv)
	}
}

// Forged evidence is refused and changes nothing: data that is not what was
// committed, a proof for another unit, a tampered path, a proof of another tree.
func TestVerifyForgedProofRefused(t *testing.T) {
	n := verifyHarness(t, func(p *verify.Params) { p.SampleCount, p.VerdictBlocks = 8, 20 })
	id := n.runLease(t, 2)
	w := makeWork("job-1", 8, 3)
	c := n.assigned(t, n.commit(t, id, hashKind, w).ID)
	v := n.acct(*c.Verifier)
	honest := makeWork("job-1", 8) // the honest unit 3 with its proof in the honest tree
	tests := []struct {
		name string
		unit uint32
		ev   func() *verify.Evidence
		code uint32
	}{
		{"honest data in place of the committed fake", 3, func() *verify.Evidence {
			e := w.evidence(t, 3)
			e.Data = honest.data[honest.names[3]]
			return e
		}, types.CodeBadProof},
		{"another unit's proof", 3, func() *verify.Evidence { return w.evidence(t, 4) }, types.CodeBadProof},
		{"a tampered aunt", 3, func() *verify.Evidence {
			e := w.evidence(t, 3)
			e.Proof.Aunts[0] = bytes.Repeat([]byte{1}, 32)
			return e
		}, types.CodeBadProof},
		{"a proof of another tree", 3, func() *verify.Evidence { return honest.evidence(t, 3) }, types.CodeBadProof},
		{"wrong total", 3, func() *verify.Evidence {
			e := w.evidence(t, 3)
			e.Proof.Total = 9
			return e
		}, types.CodeBadProof},
		{"no evidence for a unit the chain checks", 3, func() *verify.Evidence { return nil }, types.CodeInvalidMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stake := n.stake(registry.BondPurpose, n.p2.addr)
			res := n.exec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: tt.unit, Evidence: tt.ev()}}).TxResults[0]
			if res.Code != tt.code {
				t.Fatalf("code %d (%s), want %d", res.Code, res.Log, tt.code)
			}
			if got := n.commitment(c.ID); got.State != verify.CommitAssigned || len(got.Challenges) != 0 || n.stake(registry.BondPurpose, n.p2.addr) != stake {
				t.Fatalf("a refused report changed state: %+v", got)
			}
		})
	}
	// The real evidence still convicts.
	n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: 3, Evidence: w.evidence(t, 3)}})
	if got := n.commitment(c.ID); got.State != verify.CommitFraud {
		t.Fatalf("commitment %+v, want fraud", got)
	}
}

// Verdicts and votes are refused from anyone not assigned, twice (replayed in a new
// transaction), and after their deadline (late); a report on an unsampled unit too.
func TestVerifyReplayedLateAndStrangerAnswers(t *testing.T) {
	n := verifyHarness(t, func(p *verify.Params) { p.SampleCount = 2 })
	id := n.runLease(t, 2)
	w := makeWork("job-1", 64)
	c := n.assigned(t, n.commit(t, id, hashKind, w).ID)
	v := n.acct(*c.Verifier)
	other := n.vs[0]
	if other == v {
		other = n.vs[1]
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
		{"verifier not assigned", step{other, &verify.MsgVerdict{Verifier: other.addr, CommitID: c.ID, OK: true}}, types.CodeNotAssigned},
		{"unsampled unit", step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, Unit: notSampled}}, types.CodeNotSampled},
		{"unknown commitment", step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: 99, OK: true}}, types.CodeNotFound},
	} {
		if r := n.exec(tt.s).TxResults[0]; r.Code != tt.code {
			t.Fatalf("%s: code %d (%s), want %d", tt.name, r.Code, r.Log, tt.code)
		}
	}
	n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, OK: true}})
	if r := n.exec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, OK: true}}).TxResults[0]; r.Code != types.CodeAnswered {
		t.Fatalf("replayed verdict: code %d (%s), want %d", r.Code, r.Log, types.CodeAnswered)
	}
	// A second commitment of the same lease and checkpoint is refused.
	if r := n.exec(step{n.p2, &verify.MsgCommit{Provider: n.p2.addr, LeaseID: id, Kind: hashKind, Root: w.root(), Units: 64}}).TxResults[0]; r.Code != types.CodeAlreadyExists {
		t.Fatalf("second commitment: code %d (%s), want %d", r.Code, r.Log, types.CodeAlreadyExists)
	}
}

// A verifier that never answers is slashed silent_slash_bps at its deadline and the
// check goes to another; after max tries nobody is left and it stays unchecked.
func TestVerifySilentVerifierReplaced(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 2)
	c := n.assigned(t, n.commit(t, id, hashKind, makeWork("job-1", 8)).ID)
	first := *c.Verifier
	stake := n.stake(verify.BondPurpose, first)
	for n.height <= c.Deadline {
		n.block()
	}
	c2 := n.commitment(c.ID)
	if c2.State != verify.CommitAssigned || *c2.Verifier == first || !slices.Contains(c2.Tried, first) {
		t.Fatalf("after the deadline: %+v, want reassigned away from %s", c2, first)
	}
	if got := n.stake(verify.BondPurpose, first); got != stake-stake/100 {
		t.Fatalf("silent verifier stake %d, want %d (1%% slashed)", got, stake-stake/100)
	}
	// Late: the first verifier's verdict now is refused.
	if r := n.exec(step{n.acct(first), &verify.MsgVerdict{Verifier: first, CommitID: c.ID, OK: true}}).TxResults[0]; r.Code != types.CodeLate {
		t.Fatalf("late verdict: code %d (%s), want %d", r.Code, r.Log, types.CodeLate)
	}
	// Two more silent verifiers and the commitment is left unchecked.
	for range 2 {
		c2 = n.commitment(c.ID)
		for n.height <= c2.Deadline {
			n.block()
		}
	}
	if c3 := n.commitment(c.ID); c3.State != verify.CommitUnchecked || len(c3.Tried) != 3 {
		t.Fatalf("after three silent verifiers: %+v, want unchecked", c3)
	}
}

// renderKind is a workload the chain cannot check itself: a committee re-executes.
const renderKind = "render"

// vote casts member's vote on challenge id.
func (n *vnet) vote(member types.Address, id uint64, fraud bool) step {
	return step{n.acct(member), &verify.MsgVote{Verifier: member, ChallengeID: id, Fraud: fraud}}
}

// drawn runs blocks until challenge id has its committee.
func (n *vnet) drawn(t *testing.T, id uint64) verify.Challenge {
	t.Helper()
	for range 3 {
		if ch := n.challenge(id); ch.State == verify.ChallengeVoting {
			return ch
		}
		n.block()
	}
	t.Fatalf("challenge %d has no committee: %+v", id, n.challenge(id))
	return verify.Challenge{}
}

// A tenant disputes a completed render lease within its window: a committee drawn from
// the next block's randomness re-executes the unit and its majority convicts; the
// tenant's deposit comes back with the refund, the majority is paid and the dissenter
// slashed.
func TestVerifyTenantDisputeCommitteeConvicts(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 3)
	w := makeWork("scene-1", 8, 2)
	c := n.commit(t, id, renderKind, w)
	n.mustExec(step{n.p2, &market.MsgCompleteLease{Provider: n.p2.addr, LeaseID: id, OutputHash: w.root()}})
	held, _ := escrow.GetHold(n.ctx(), id, n.p2.addr)
	tenantBefore := n.bal(n.tenant.addr)
	n.mustExec(step{n.tenant, &verify.MsgDispute{Tenant: n.tenant.addr, CommitID: c.ID, Unit: 2, Evidence: w.report(t, 2)}})
	if got := n.bal(verify.Account); got != n.params.DisputeDeposit {
		t.Fatalf("verify account holds %d, want the deposit %d", got, n.params.DisputeDeposit)
	}
	// A second dispute while one is open is refused.
	if r := n.exec(step{n.tenant, &verify.MsgDispute{Tenant: n.tenant.addr, CommitID: c.ID, Unit: 1}}).TxResults[0]; r.Code != types.CodeChallengeNotOpen {
		t.Fatalf("second dispute: code %d (%s), want %d", r.Code, r.Log, types.CodeChallengeNotOpen)
	}
	ch := n.drawn(t, 1)
	if len(ch.Committee) != 3 || ch.Mode != verify.ModeCommittee {
		t.Fatalf("challenge = %+v, want a committee of 3", ch)
	}
	if r := n.exec(n.vote(n.stranger.addr, 1, true)).TxResults[0]; r.Code != types.CodeNotAssigned {
		t.Fatalf("vote from outside the committee: code %d, want %d", r.Code, types.CodeNotAssigned)
	}
	dissenter := ch.Committee[2]
	dStake := n.stake(verify.BondPurpose, dissenter)
	n.mustExec(n.vote(ch.Committee[2], 1, false))
	if r := n.exec(n.vote(ch.Committee[2], 1, false)).TxResults[0]; r.Code != types.CodeAnswered {
		t.Fatalf("replayed vote: code %d (%s), want %d", r.Code, r.Log, types.CodeAnswered)
	}
	n.mustExec(n.vote(ch.Committee[0], 1, true))
	provStake := n.stake(registry.BondPurpose, n.p2.addr)
	n.mustExec(n.vote(ch.Committee[1], 1, true))
	ch = n.challenge(1)
	if ch.State != verify.ChallengeFraud || ch.Slashed != provStake*3/10 {
		t.Fatalf("challenge after a majority = %+v, want fraud with %d slashed", ch, provStake*3/10)
	}
	// The late third vote... was already cast; a vote now is refused as closed.
	if r := n.exec(n.vote(ch.Committee[0], 1, true)).TxResults[0]; r.Code != types.CodeAnswered {
		t.Fatalf("vote after the decision: code %d (%s), want %d", r.Code, r.Log, types.CodeAnswered)
	}
	if got := n.stake(verify.BondPurpose, dissenter); got != dStake-dStake/100 {
		t.Fatalf("dissenter stake %d, want %d", got, dStake-dStake/100)
	}
	if h, _ := escrow.GetHold(n.ctx(), id, n.p2.addr); h.ClawedBack != held.Amount || h.Amount != 0 {
		t.Fatalf("hold = %+v, want all %d clawed back", h, held.Amount)
	}
	// tenant: the deposit back, every payment refunded, the reporter's reward; less
	// its three tx fees.
	want := tenantBefore + ch.Refunded + ch.Reward - 2*5000
	if got := n.bal(n.tenant.addr); got != want {
		t.Fatalf("tenant %d, want %d (refund %d, reward %d)", got, want, ch.Refunded, ch.Reward)
	}
	if n.bal(verify.Account) != 0 {
		t.Fatalf("verify account still holds %d", n.bal(verify.Account))
	}
}

// A committee that cannot reach a majority (members silent) is slashed for silence and
// replaced once; when the second is silent too the challenge is inconclusive: the
// tenant's deposit comes back, nobody is convicted.
func TestVerifyCommitteeSplitInconclusive(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 2)
	w := makeWork("scene-1", 8)
	c := n.commit(t, id, renderKind, w)
	tenantBefore := n.bal(n.tenant.addr)
	n.mustExec(step{n.tenant, &verify.MsgDispute{Tenant: n.tenant.addr, CommitID: c.ID, Unit: 1}})
	ch := n.drawn(t, 1)
	stakes := map[types.Address]uint64{}
	for _, m := range ch.Committee {
		stakes[m] = n.stake(verify.BondPurpose, m)
	}
	// One votes fraud, one votes honest, one is silent: no majority of 3.
	n.mustExec(n.vote(ch.Committee[0], 1, true), n.vote(ch.Committee[1], 1, false))
	for n.height <= ch.Deadline {
		n.block()
	}
	ch2 := n.challenge(1)
	if ch2.Round != 2 || !slices.Contains(ch2.Past, ch.Committee[2]) {
		t.Fatalf("after a split: %+v, want round 2", ch2)
	}
	if got := n.stake(verify.BondPurpose, ch.Committee[2]); got != stakes[ch.Committee[2]]*99/100 {
		t.Fatalf("silent member stake %d, want 1%% slashed", got)
	}
	// Late: a round-1 member's vote is refused.
	if r := n.exec(n.vote(ch.Committee[2], 1, true)).TxResults[0]; r.Code != types.CodeLate {
		t.Fatalf("round-1 vote in round 2: code %d (%s), want %d", r.Code, r.Log, types.CodeLate)
	}
	// Every verifier sat on round 1: round 2 finds nobody and the challenge ends.
	for range 3 {
		n.block()
	}
	ch2 = n.challenge(1)
	if ch2.State != verify.ChallengeInconclusive {
		t.Fatalf("challenge = %+v, want inconclusive", ch2)
	}
	if got := n.bal(n.tenant.addr); got != tenantBefore-5000 {
		t.Fatalf("tenant %d, want its deposit back (%d)", got, tenantBefore-5000)
	}
	if got := n.stake(registry.BondPurpose, n.p2.addr); got != 100_000_000 {
		t.Fatalf("provider slashed on an inconclusive challenge: %d", got)
	}
}

// A tenant's refuted dispute forfeits its deposit to the community pool; a dispute
// after the window is refused; a stranger may not dispute.
func TestVerifyTenantDisputeRefutedAndWindow(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 2)
	w := makeWork("scene-1", 8)
	c := n.commit(t, id, renderKind, w)
	if r := n.exec(step{n.stranger, &verify.MsgDispute{Tenant: n.stranger.addr, CommitID: c.ID, Unit: 1}}).TxResults[0]; r.Code != types.CodeUnauthorized {
		t.Fatalf("stranger's dispute: code %d, want %d", r.Code, types.CodeUnauthorized)
	}
	n.mustExec(step{n.tenant, &verify.MsgDispute{Tenant: n.tenant.addr, CommitID: c.ID, Unit: 1}})
	ch := n.drawn(t, 1)
	pool := n.bal(bank.CommunityPool)
	n.mustExec(n.vote(ch.Committee[0], 1, false), n.vote(ch.Committee[1], 1, false))
	if ch = n.challenge(1); ch.State != verify.ChallengeRefuted {
		t.Fatalf("challenge = %+v, want refuted", ch)
	}
	if got := n.bal(bank.CommunityPool); got < pool+n.params.DisputeDeposit-2*n.params.VerifierPay {
		t.Fatalf("community pool %d, want the deposit forfeited into it (was %d)", got, pool)
	}
	n.mustExec(step{n.p2, &market.MsgCompleteLease{Provider: n.p2.addr, LeaseID: id, OutputHash: w.root()}})
	end := n.height + 100
	for n.height <= end+1 {
		n.block()
	}
	if r := n.exec(step{n.tenant, &verify.MsgDispute{Tenant: n.tenant.addr, CommitID: c.ID, Unit: 2}}).TxResults[0]; r.Code != types.CodeWindowClosed {
		t.Fatalf("dispute after the window: code %d (%s), want %d", r.Code, r.Log, types.CodeWindowClosed)
	}
}

// While a commitment awaits its verdict the provider's bond cannot be unbonded (it
// cannot deregister); once verified it can.
func TestVerifyLocksProviderBond(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 1)
	n.mustExec(step{n.p2, &market.MsgCloseLease{Sender: n.p2.addr, LeaseID: id}})
	// NB: a closed lease may still commit only if it completed.
	if r := n.exec(step{n.p2, &verify.MsgCommit{Provider: n.p2.addr, LeaseID: id, Kind: hashKind, Root: make([]byte, 32), Units: 1}}).TxResults[0]; r.Code != types.CodeLeaseClosed {
		t.Fatalf("commit on a provider-closed lease: code %d (%s)", r.Code, r.Log)
	}
	id2 := n.runLease(t, 1)
	c := n.assigned(t, n.commit(t, id2, hashKind, makeWork("j", 4)).ID)
	n.mustExec(step{n.p2, &market.MsgCompleteLease{Provider: n.p2.addr, LeaseID: id2, OutputHash: make([]byte, 32)}})
	r := n.exec(step{n.p2, &registry.MsgDeregisterProvider{Owner: n.p2.addr}}).TxResults[0]
	if r.Code != types.CodeBondLocked {
		t.Fatalf("deregister while checked: code %d (%s), want %d", r.Code, r.Log, types.CodeBondLocked)
	}
	v := n.acct(*c.Verifier)
	n.mustExec(step{v, &verify.MsgVerdict{Verifier: v.addr, CommitID: c.ID, OK: true}})
	if err := staking.CheckInvariants(n.ctx()); err != nil {
		t.Fatal(err)
	}
}

// A verifier's duty on a lease is what a provider opens the lease's units and assets
// to: the assigned verifier has a check until it answers, committee members a vote
// until they cast it, and nobody has one on another lease.
func TestVerifyDutyQuery(t *testing.T) {
	n := verifyHarness(t, nil)
	id := n.runLease(t, 3)
	w := makeWork("scene-1", 8)
	c := n.assigned(t, n.commit(t, id, renderKind, w).ID)
	duty := func(lease uint64, a types.Address) (verify.Duty, uint32) {
		var d verify.Duty
		return d, n.query(fmt.Sprintf("/verify/duty/%d/%s", lease, a), &d)
	}
	v := *c.Verifier
	if d, code := duty(id, v); code != 0 || d.Role != verify.DutyCheck || d.Commitment != c.ID || d.Deadline != c.Deadline {
		t.Fatalf("duty of the assigned verifier = %+v (code %d), want a check of commitment %d", d, code, c.ID)
	}
	if _, code := duty(id+1, v); code != types.CodeNotFound {
		t.Fatalf("duty on another lease: code %d, want %d", code, types.CodeNotFound)
	}
	for _, x := range append(n.vs, n.stranger, n.tenant) {
		if _, code := duty(id, x.addr); x.addr != v && code != types.CodeNotFound {
			t.Fatalf("duty of %s, not assigned: code %d, want %d", x.addr, code, types.CodeNotFound)
		}
	}
	if code := n.query(fmt.Sprintf("/verify/duty/%d/nope", id), nil); code != types.CodeInvalidRequest {
		t.Fatalf("duty of a malformed address: code %d, want %d", code, types.CodeInvalidRequest)
	}
	// The verifier reports a unit: its check is answered, the committee's votes are due.
	u := c.Samples[0]
	n.mustExec(step{n.acct(v), &verify.MsgVerdict{Verifier: v, CommitID: c.ID, Unit: u, Evidence: w.report(t, int(u))}})
	if _, code := duty(id, v); code != types.CodeNotFound {
		t.Fatalf("duty of a verifier that answered: code %d, want %d", code, types.CodeNotFound)
	}
	ch := n.drawn(t, 1)
	for _, m := range ch.Committee {
		if d, code := duty(id, m); code != 0 || d.Role != verify.DutyCommittee || d.Challenge != ch.ID || d.Commitment != c.ID {
			t.Fatalf("duty of committee member %s = %+v (code %d), want a vote on challenge %d", m, d, code, ch.ID)
		}
	}
	n.mustExec(n.vote(ch.Committee[0], ch.ID, false))
	if _, code := duty(id, ch.Committee[0]); code != types.CodeNotFound {
		t.Fatalf("duty of a member that voted: code %d, want %d", code, types.CodeNotFound)
	}
}
