package app

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// livenessOn turns challenges on with small matrices (n = 64..128: the test computes
// them) and short deadlines.
func livenessOn(lease, hwRecheck int64, hwAtRegistration bool) func(*GenesisState) {
	return func(g *GenesisState) {
		p := liveness.DefaultParams()
		p.LeaseChallengeBlocks, p.HardwareRecheckBlocks, p.HardwareAtRegistration = lease, hwRecheck, hwAtRegistration
		p.DeadlineBlocks, p.RevealBlocks, p.MaxN = 3, 3, 128
		g.Params.Liveness = p
	}
}

// pending returns provider p's pending challenges.
func (h *harness) pending(p *account) []liveness.Challenge {
	h.t.Helper()
	var out struct{ Challenges []liveness.Challenge }
	if code := h.query("/liveness/challenges?state=pending&provider="+p.addr.String(), &out); code != 0 {
		h.t.Fatalf("query pending challenges: code %d", code)
	}
	return out.Challenges
}

func (h *harness) challenge(id uint64) liveness.Challenge {
	h.t.Helper()
	var c liveness.Challenge
	if code := h.query(fmt.Sprintf("/liveness/challenge/%d", id), &c); code != 0 {
		h.t.Fatalf("query challenge %d: code %d", id, code)
	}
	return c
}

// blocksUntil runs empty blocks until cond holds, at most max of them.
func (h *harness) blocksUntil(max int, what string, cond func() bool) {
	h.t.Helper()
	for i := 0; !cond(); i++ {
		if i == max {
			h.t.Fatalf("after %d blocks (height %d): still not %s", max, h.height, what)
		}
		h.block()
	}
}

// answerWith commits sol as p's answer to c; reveal then opens the drawn chunks.
func answerWith(p *account, c liveness.Challenge, sol *matmul.Solution, millis uint64) step {
	return step{p, &liveness.MsgAnswer{Provider: p.addr, Challenge: c.ID, Root: sol.Root(), Millis: millis}}
}

func revealWith(p *account, c liveness.Challenge, sol *matmul.Solution) step {
	m := &liveness.MsgReveal{Provider: p.addr, Challenge: c.ID}
	chunks := c.Chunks
	if len(chunks) == 0 {
		chunks = []uint32{0} // NB: not drawn yet; a guess
	}
	for _, k := range chunks {
		m.Chunks = append(m.Chunks, liveness.RevealedChunk{Index: k, Entries: sol.Chunk(int(k)), Proof: sol.Proof(int(k))})
	}
	return step{p, m}
}

// NB: a reveal is about 12 KB and pays the per-byte fee; the harness's steps pay 5000.
func init() {
	stepFee = func(m types.Msg) uint64 {
		if _, ok := m.(*liveness.MsgReveal); ok {
			return 40_000
		}
		return 5000
	}
}

func solve(t *testing.T, c liveness.Challenge) *matmul.Solution {
	t.Helper()
	s, err := matmul.Solve(int(c.N), c.Seed)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runningLease makes order 1 (one GPU of any model, auto_redeploy) leased to p1 (its
// rtx4090: p1 bids alone) and started.
func runningLease(t *testing.T, edit func(*GenesisState)) (h *harness, p1, p2, tenant *account) {
	h, p1, p2, tenant, _ = marketHarness(t, edit)
	o := order(tenant, 100, 100_000, gpuGroup("a", 1, 1))
	o.AutoRedeploy = true
	h.mustExec(step{tenant, o})
	h.mustExec(bid(p1, 1, 50))
	h.mustExec(start(p1, 1))
	return h, p1, p2, tenant
}

// An honest provider answers its lease's challenges and keeps the lease; the next
// challenge is scheduled again; its score records the passes.
func TestLivenessAnsweredKeepsLease(t *testing.T) {
	h, p1, _, _ := runningLease(t, livenessOn(3, 0, false))
	for round := 0; round < 3; round++ {
		h.blocksUntil(10, "challenged", func() bool { return len(h.pending(p1)) == 1 })
		c := h.pending(p1)[0]
		if c.Kind != liveness.KindLiveness || c.Lease != 1 || c.Model != "rtx4090" || c.N != 128 {
			t.Fatalf("challenge = %+v, want a liveness challenge of lease 1 sized 128 for an rtx4090", c)
		}
		sol := solve(t, c)
		h.mustExec(answerWith(p1, c, sol, 5))
		c = h.challenge(c.ID)
		if c.State != liveness.StateAnswered || len(c.Chunks) != 16 || c.Root != rootHex(sol) {
			t.Fatalf("after answer: %+v", c)
		}
		h.mustExec(revealWith(p1, c, sol))
		if c = h.challenge(c.ID); c.State != liveness.StatePassed || c.ReportedMFLOPS != 2*128*128*128/5/1000 {
			t.Fatalf("after reveal: %+v, want passed at %d MFLOPS", c, 2*128*128*128/5/1000)
		}
	}
	if l := h.lease(1); l.State != market.LeaseActive {
		t.Fatalf("lease closed: %+v", l)
	}
	var sc struct{ Scores []liveness.Score }
	h.query("/liveness/scores?provider="+p1.addr.String(), &sc)
	if len(sc.Scores) != 1 || sc.Scores[0].Passed != 3 || sc.Scores[0].Failed != 0 || sc.Scores[0].Challenges < 3 {
		t.Fatalf("scores = %+v, want rtx4090 with 3 passed", sc.Scores)
	}
}

// A provider that misses a challenge is slashed slash_bps of its bond, its lease is
// closed with liveness_failed, its held pay goes back to the tenant, and the
// auto_redeploy order re-opens without it. The books balance throughout (the harness
// checks invariants every block).
func TestLivenessMissedSlashesAndRedeploys(t *testing.T) {
	h, p1, p2, tenant := runningLease(t, func(g *GenesisState) {
		livenessOn(3, 0, false)(g)
		g.Params.Escrow.HoldbackBps, g.Params.Escrow.DisputeWindowBlocks = 5000, 20 // half the pay held back, to see it refunded
	})
	bond := staking.Bonded(h.ctx(), registry.BondPurpose, p1.addr)
	h.blocksUntil(10, "challenged", func() bool { return len(h.pending(p1)) == 1 })
	c := h.pending(p1)[0]
	for h.challenge(c.ID).State == liveness.StateOpen {
		h.block()
	}
	c = h.challenge(c.ID)
	if c.State != liveness.StateFailed || c.Failure != liveness.FailMissed || c.ClosedHeight != c.Deadline {
		t.Fatalf("challenge = %+v, want failed (missed) at its deadline", c)
	}
	want := bond - bond*100/10_000
	if got := staking.Bonded(h.ctx(), registry.BondPurpose, p1.addr); got != want || c.Slashed != bond-want {
		t.Fatalf("bond %d -> %d (challenge says %d slashed), want %d", bond, got, c.Slashed, want)
	}
	l := h.lease(1)
	if l.State != market.LeaseClosed || l.CloseReason != liveness.ReasonLivenessFailed || l.ClosedHeight != c.Deadline {
		t.Fatalf("lease = %+v, want closed liveness_failed at %d", l, c.Deadline)
	}
	if hold, ok := escrow.GetHold(h.ctx(), 1, p1.addr); ok && hold.Amount != 0 {
		t.Fatalf("held pay left with the failed provider: %+v", hold)
	}
	if o := h.order(1); o.State != market.OrderOpen || len(o.Excluded) != 1 || o.Excluded[0] != p1.addr {
		t.Fatalf("order = %+v, want re-opened excluding p1", o)
	}
	// Another provider takes the order over; the failed one may not.
	res := h.exec(bid(p1, 1, 10), bid(p2, 1, 90))
	if res.TxResults[0].Code == 0 || res.TxResults[1].Code != 0 {
		t.Fatalf("bids after liveness failure: %d %q / %d %q", res.TxResults[0].Code, res.TxResults[0].Log, res.TxResults[1].Code, res.TxResults[1].Log)
	}
	_ = tenant
}

// A wrong product fails the challenge when its chunks are revealed, even though its
// Merkle proofs are right: the chain recomputes sampled entries.
func TestLivenessWrongResultFails(t *testing.T) {
	h, p1, _, _ := runningLease(t, livenessOn(3, 0, false))
	h.blocksUntil(10, "challenged", func() bool { return len(h.pending(p1)) == 1 })
	c := h.pending(p1)[0]
	n := int(c.N)
	// A lazy prover: computes nothing and commits to zeros.
	lazy := matmul.Commit(n, c.Seed, make([]float64, n*n))
	h.mustExec(answerWith(p1, c, lazy, 1))
	res := h.mustExec(revealWith(p1, h.challenge(c.ID), lazy))
	c = h.challenge(c.ID)
	if c.State != liveness.StateFailed || c.Failure != liveness.FailWrongResult || !hasEvent(res, "liveness_failed", "reason", "wrong_result") {
		t.Fatalf("challenge = %+v, want failed with wrong_result", c)
	}
	if l := h.lease(1); l.CloseReason != liveness.ReasonLivenessFailed {
		t.Fatalf("lease = %+v", l)
	}
}

// Replayed, late, foreign and malformed answers and reveals are refused, changing
// nothing; a bad reveal may be retried before its deadline.
func TestLivenessRefusals(t *testing.T) {
	h, p1, p2, _ := runningLease(t, livenessOn(3, 0, false))
	h.blocksUntil(10, "challenged", func() bool { return len(h.pending(p1)) == 1 })
	c := h.pending(p1)[0]
	sol := solve(t, c)
	code := func(s step) (uint32, string) {
		r := h.exec(s).TxResults[0]
		return r.Code, r.Log
	}
	if got, log := code(answerWith(p2, c, sol, 5)); got != types.CodeUnauthorized {
		t.Fatalf("another provider's answer: code %d %s", got, log)
	}
	if got, log := code(revealWith(p1, c, sol)); got != types.CodeChallengeClosed || !strings.Contains(log, "no answer yet") {
		t.Fatalf("reveal before answer: code %d %s", got, log)
	}
	h.mustExec(answerWith(p1, c, sol, 5))
	if got, log := code(answerWith(p1, c, sol, 4)); got != types.CodeChallengeClosed || !strings.Contains(log, "answer is final") {
		t.Fatalf("second answer: code %d %s", got, log)
	}
	c = h.challenge(c.ID)
	// A reveal of the wrong chunk, or with another chunk's proof, is refused.
	bad := revealWith(p1, c, sol)
	bad.msg.(*liveness.MsgReveal).Chunks[0].Proof = sol.Proof(int(c.Chunks[1]))
	if got, log := code(bad); got != types.CodeBadReveal {
		t.Fatalf("reveal with a wrong proof: code %d %s", got, log)
	}
	if h.challenge(c.ID).State != liveness.StateAnswered {
		t.Fatal("a refused reveal changed the challenge")
	}
	h.mustExec(revealWith(p1, c, sol))
	if got, log := code(revealWith(p1, c, sol)); got != types.CodeChallengeClosed || !strings.Contains(log, "passed") {
		t.Fatalf("replayed reveal: code %d %s", got, log)
	}

	// The next challenge is left past its deadline: a late answer is refused.
	h.blocksUntil(10, "challenged", func() bool { return len(h.pending(p1)) == 1 })
	c2 := h.pending(p1)[0]
	for h.height <= c2.Deadline {
		h.block()
	}
	if got, log := code(answerWith(p1, c2, solve(t, c2), 5)); got != types.CodeChallengeClosed || !strings.Contains(log, "missed") {
		t.Fatalf("late answer: code %d %s", got, log)
	}
	if got, _ := code(answerWith(p1, liveness.Challenge{ID: 999}, sol, 5)); got != types.CodeNotFound {
		t.Fatalf("answer to no challenge: code %d", got)
	}
}

// CheckTx refuses an answer after the deadline with its own code, before EndBlock has
// failed the challenge.
func TestLivenessLateAnswerCode(t *testing.T) {
	h, p1, _, _ := runningLease(t, livenessOn(3, 0, false))
	h.blocksUntil(10, "challenged", func() bool { return len(h.pending(p1)) == 1 })
	c := h.pending(p1)[0]
	ctx := h.ctx()
	ctx.Height = c.Deadline + 1
	err := liveness.Handle(ctx, &liveness.MsgAnswer{Provider: p1.addr, Challenge: c.ID, Root: [32]byte{1}, Millis: 1})
	if types.CodeOf(err) != types.CodeChallengeLate {
		t.Fatalf("answer at deadline+1 on a still-open challenge: %v, want ErrChallengeLate", err)
	}
}

// Hardware proof: a provider that does not answer its registration challenge is
// flagged and excluded from orders needing its model (why-no-bids says so); a later
// hardware challenge it passes clears the flag.
func TestHardwareProofFlagsAndClears(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, livenessOn(0, 5, true))
	cs := h.pending(p1)
	if len(cs) != 1 || cs[0].Kind != liveness.KindHardware || cs[0].Model != "rtx4090" {
		t.Fatalf("after registration: %+v, want one hardware challenge for rtx4090", cs)
	}
	for h.challenge(cs[0].ID).State == liveness.StateOpen {
		h.block()
	}
	h.mustExec(step{tenant, order(tenant, 100, 100_000, gpuGroup("a", 1, 1, "rtx4090"))})
	res := h.exec(bid(p1, 1, 50))
	if r := res.TxResults[0]; r.Code != types.CodeRequirementsUnmet || !strings.Contains(r.Log, "hardware_proof") || !strings.Contains(r.Log, "missed") {
		t.Fatalf("bid of a flagged provider: code %d %s", r.Code, r.Log)
	}
	var m market.MatchReport
	h.query("/market/order/1/match", &m)
	if m.Summary["hardware_proof"] != 1 {
		t.Fatalf("why-no-bids summary = %v, want hardware_proof for one provider", m.Summary)
	}
	// The recheck comes within 2×5 blocks; answered right, it clears the flag.
	h.blocksUntil(12, "re-challenged", func() bool { return len(h.pending(p1)) == 1 })
	c := h.pending(p1)[0]
	sol := solve(t, c)
	h.mustExec(answerWith(p1, c, sol, 1))
	h.mustExec(revealWith(p1, h.challenge(c.ID), sol))
	if s, _ := liveness.GetScore(h.ctx(), p1.addr, "rtx4090"); s.Flagged || s.Passed != 1 || s.Failed != 1 {
		t.Fatalf("score after passing = %+v", s)
	}
	if o := h.order(1); o.State == market.OrderOpen {
		h.mustExec(bid(p1, 1, 50))
	}
}

// A right answer far slower than the model's figure flags it as slow; the speed check
// is skipped for challenges too small to time.
func TestHardwareProofSlow(t *testing.T) {
	edit := func(g *GenesisState) {
		livenessOn(0, 0, true)(g)
		g.Params.Liveness.ExpectedMFLOPS["cpu"] = 1000 // 1 GFLOPS per core: n=128 takes 4 ms
		g.Params.Liveness.MinTimedMillis = 1
	}
	h := newHarnessWith(t, 3, edit)
	p := h.accs[1]
	h.mustExec(h.register(p, inv("eu-west")))
	c := h.pending(p)[0]
	if c.Model != "cpu" {
		t.Fatalf("challenge of a CPU-only provider = %+v", c)
	}
	sol := solve(t, c)
	h.mustExec(answerWith(p, c, sol, 400)) // 100x slower than expected
	h.mustExec(revealWith(p, h.challenge(c.ID), sol))
	s, _ := liveness.GetScore(h.ctx(), p.addr, "cpu")
	if !s.Flagged || !strings.HasPrefix(s.FlagReason, "slow") {
		t.Fatalf("score = %+v, want flagged slow", s)
	}
	// CPU-only orders now skip it.
	g := gpuGroup("c", 1, 0)
	fails := liveness.CheckProvider(h.ctx(), market.Order{Groups: []market.Group{g}}, registry.Provider{Owner: p.addr, Inventory: inv("eu-west")})
	if len(fails) != 1 || fails[0].Constraint != "hardware_proof" {
		t.Fatalf("CheckProvider = %+v", fails)
	}
}

func rootHex(s *matmul.Solution) string {
	r := s.Root()
	return hex.EncodeToString(r[:])
}

// Random challenges against providers that answer right, answer wrong or stay silent
// at random, while orders come and go: after every block the books balance and the
// liveness records agree (the harness checks invariants), supply never changes, every
// failed liveness challenge slashed its provider, and the provider that always answers
// right is never slashed nor flagged.
func TestRandomChallengesKeepBooks(t *testing.T) {
	edit := func(g *GenesisState) {
		livenessOn(3, 6, true)(g)
		g.Params.Escrow.HoldbackBps, g.Params.Escrow.DisputeWindowBlocks = 3000, 5
	}
	h := newHarnessWith(t, 6, edit)
	honest, flaky1, flaky2, tenant := h.accs[1], h.accs[2], h.accs[3], h.accs[4]
	h.mustExec(h.register(honest, inv("eu-west", rtx4090(2))), h.register(flaky1, inv("eu-west", rtx4090(2))),
		h.register(flaky2, inv("eu-west", rtx4090(2))))
	supply := fmt.Sprint(bankSupply(h))
	r := rand.New(rand.NewPCG(7, 7))
	sols := map[uint64]*matmul.Solution{}
	var orders uint64
	for range 80 {
		var steps []step
		if r.IntN(3) == 0 {
			o := order(tenant, 100, 20_000, gpuGroup("a", 1, 1))
			o.AutoRedeploy = r.IntN(2) == 0
			o.Kind = market.KindService
			steps = append(steps, step{tenant, o})
			orders++
		}
		for _, p := range []*account{honest, flaky1, flaky2} {
			for id := uint64(1); id <= orders; id++ {
				if o, ok := market.GetOrder(h.ctx(), id); ok && o.State == market.OrderOpen && r.IntN(2) == 0 {
					steps = append(steps, bid(p, id, 10+uint64(r.IntN(80))))
				}
				if l, ok := market.GetLease(h.ctx(), id); ok && l.Provider == p.addr && l.State == market.LeaseActive && l.StartedHeight == 0 {
					steps = append(steps, start(p, id))
				}
			}
			for _, c := range h.pending(p) {
				switch {
				case c.State == liveness.StateOpen && (p == honest || r.IntN(3) > 0):
					sol := solve(t, c)
					if p != honest && r.IntN(4) == 0 {
						sol = matmul.Commit(int(c.N), c.Seed, make([]float64, int(c.N)*int(c.N)))
					}
					sols[c.ID] = sol
					steps = append(steps, answerWith(p, c, sol, 1+uint64(r.IntN(20))))
				case c.State == liveness.StateAnswered && sols[c.ID] != nil && (p == honest || r.IntN(4) > 0):
					steps = append(steps, revealWith(p, c, sols[c.ID]))
				}
			}
		}
		h.exec(steps...) // NB: some bids are refused (no capacity, slashed below the minimum); that is part of it
		if got := fmt.Sprint(bankSupply(h)); got != supply {
			t.Fatalf("height %d: supply %s, was %s", h.height, got, supply)
		}
	}
	var failed, passed int
	for _, c := range liveness.Challenges(h.ctx(), liveness.ChallengeFilter{}) {
		switch {
		case c.Provider == honest.addr && c.State == liveness.StateFailed:
			t.Fatalf("the honest provider failed challenge %+v", c)
		case c.State == liveness.StateFailed && c.Kind == liveness.KindLiveness && c.Slashed == 0:
			t.Fatalf("failed liveness challenge slashed nothing: %+v", c)
		case c.State == liveness.StateFailed:
			failed++
		case c.State == liveness.StatePassed:
			passed++
		}
	}
	if s, _ := liveness.GetScore(h.ctx(), honest.addr, "rtx4090"); s.Flagged || s.Failed != 0 {
		t.Fatalf("honest provider's score = %+v", s)
	}
	if got := staking.Bonded(h.ctx(), registry.BondPurpose, honest.addr); got != 100_000_000 {
		t.Fatalf("honest provider's bond = %d, want it untouched", got)
	}
	if failed == 0 || passed == 0 {
		t.Fatalf("%d challenges failed and %d passed: the run exercised too little", failed, passed)
	}
	t.Logf("%d orders, %d challenges passed, %d failed", orders, passed, failed)
}

func bankSupply(h *harness) types.Coins { return bank.Supply(h.ctx()) }

// Changing the inventory issues a hardware challenge for each model it claims; an
// update that leaves the inventory alone issues none.
func TestHardwareChallengeOnInventoryUpdate(t *testing.T) {
	h, p1, _, _, _ := marketHarness(t, livenessOn(0, 0, true))
	before := len(liveness.Challenges(h.ctx(), liveness.ChallengeFilter{Provider: p1.addr}))
	h.mustExec(step{p1, &registry.MsgUpdateProvider{Owner: p1.addr, Endpoint: "https://p1.example:9443"}})
	if got := len(liveness.Challenges(h.ctx(), liveness.ChallengeFilter{Provider: p1.addr})); got != before {
		t.Fatalf("an endpoint update issued %d challenges", got-before)
	}
	newInv := inv("eu-west", rtx4090(2), a100(1))
	h.mustExec(step{p1, &registry.MsgUpdateProvider{Owner: p1.addr, Inventory: &newInv}})
	var models []string
	for _, c := range liveness.Challenges(h.ctx(), liveness.ChallengeFilter{Provider: p1.addr})[before:] {
		models = append(models, c.Model)
	}
	if strings.Join(models, ",") != "a100,rtx4090" {
		t.Fatalf("after an inventory update: challenges for %v, want one per model (a100, rtx4090)", models)
	}
}
