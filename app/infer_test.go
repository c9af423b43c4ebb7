package app

import (
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/infer"
)

// inferHarness: three registered providers serving model "tiny", a tenant.
func inferHarness(t *testing.T, edit func(*GenesisState)) (h *harness, ps []*account, tenant *account) {
	h = newHarnessWith(t, 5, edit)
	ps, tenant = h.accs[1:4], h.accs[4]
	hash := strings.Repeat("ab", 32)
	h.mustExec(h.register(ps[0], inv("eu-west", rtx4090(1))), h.register(ps[1], inv("us-east", a100(1))), h.register(ps[2], inv("us-east", a100(1))),
		step{tenant, &infer.MsgRegisterModel{Owner: tenant.addr, ID: "tiny", Hash: hash}})
	var serve []step
	for _, p := range ps {
		serve = append(serve, step{p, &infer.MsgServeModel{Provider: p.addr, Model: "tiny", Hash: hash}})
	}
	h.mustExec(serve...)
	return h, ps, tenant
}

func answer(p *account, id uint64, out string) step {
	return step{p, &infer.MsgInferResult{Provider: p.addr, RequestID: id, Output: []byte(out), OutputHash: infer.HashOutput([]byte(out))}}
}

// k = 2: the first answer alone does not resolve; a disagreeing provider is recorded
// and outvoted; two matching answers resolve the request in the block they land in,
// split the fee and store the output; a late answer is refused. The books balance
// after every block (the harness checks invariants).
func TestInferTwoAgreeOneOutvoted(t *testing.T) {
	h, ps, tenant := inferHarness(t, nil)
	before := bank.Balance(h.ctx(), tenant.addr, "ukiln")
	h.mustExec(step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "tiny", Input: []byte("2+2"), MaxFee: 1001}})
	paidBefore := []uint64{bank.Balance(h.ctx(), ps[0].addr, "ukiln"), bank.Balance(h.ctx(), ps[1].addr, "ukiln"), bank.Balance(h.ctx(), ps[2].addr, "ukiln")}
	h.mustExec(answer(ps[2], 1, "5"), answer(ps[0], 1, "4"))
	if r, _ := infer.GetRequest(h.ctx(), 1); r.State != infer.StateOpen || len(r.Answers) != 2 {
		t.Fatalf("after one of each answer: %+v, want open with 2 answers", r)
	}
	res := h.mustExec(answer(ps[1], 1, "4"))
	if !hasEvent(res, "infer_resolved", "via", "k_agree") {
		t.Fatal("no infer_resolved event")
	}
	r, _ := infer.GetRequest(h.ctx(), 1)
	if r.State != infer.StateResolved || string(r.Output) != "4" || r.OutputHash != infer.HashOutput([]byte("4")) || r.ResolvedHeight != h.height {
		t.Fatalf("request = %+v, want resolved to 4 at %d", r, h.height)
	}
	// 1001 split two ways: 500 each, 1 back to the tenant; the outvoted provider gets nothing.
	for i, want := range []uint64{500, 500, 0} {
		got := bank.Balance(h.ctx(), ps[i].addr, "ukiln") - paidBefore[i] + 5000*uint64(map[int]int{0: 1, 1: 1, 2: 1}[i])
		if got != want {
			t.Errorf("provider %d earned %d, want %d", i, got, want)
		}
	}
	if r.Refunded != 1 || r.Answers[0].Outcome != "outvoted" || r.Answers[1].Outcome != "agreed" {
		t.Errorf("refunded %d, answers %+v", r.Refunded, r.Answers)
	}
	if got := bank.Balance(h.ctx(), tenant.addr, "ukiln"); got != before-5000-1000 {
		t.Errorf("tenant balance %d, want %d (fee 1000 net of the refunded 1, and one tx fee)", got, before-5000-1000)
	}
	if got := bank.Balance(h.ctx(), infer.Account, "ukiln"); got != 0 {
		t.Errorf("infer module holds %d after the only request resolved", got)
	}
	late := h.exec(answer(ps[2], 1, "4"))
	if late.TxResults[0].Code != types.CodeRequestClosed {
		t.Errorf("late answer: code %d (%s), want %d", late.TxResults[0].Code, late.TxResults[0].Log, types.CodeRequestClosed)
	}
}

// A request nobody answers is refunded in full at the end of its deadline height.
func TestInferUnservedRefunded(t *testing.T) {
	h, _, tenant := inferHarness(t, func(g *GenesisState) { g.Params.Infer.DeadlineBlocks = 3 })
	before := bank.Balance(h.ctx(), tenant.addr, "ukiln")
	h.mustExec(step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "tiny", Input: []byte("q"), MaxFee: 777}})
	H := h.height
	for h.height < H+2 {
		h.block()
	}
	if r, _ := infer.GetRequest(h.ctx(), 1); r.State != infer.StateOpen {
		t.Fatalf("request closed before its deadline: %+v", r)
	}
	res := h.block() // H+3: the deadline
	if !hasEvent(res, "infer_expired", "refunded", "777") {
		t.Fatal("no infer_expired event")
	}
	r, _ := infer.GetRequest(h.ctx(), 1)
	if r.State != infer.StateExpired || r.Refunded != 777 {
		t.Fatalf("request = %+v, want expired and refunded 777", r)
	}
	if got := bank.Balance(h.ctx(), tenant.addr, "ukiln"); got != before-5000 {
		t.Errorf("tenant balance %d, want %d (only the tx fee spent)", got, before-5000)
	}
}

// Refusals: an answer whose hash is not its output's, from a provider not serving the
// model, a second answer from one provider, a provider serving with the wrong hash.
func TestInferRefusals(t *testing.T) {
	h, ps, tenant := inferHarness(t, nil)
	h.mustExec(step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "tiny", Input: []byte("q"), MaxFee: 10}})
	bad := &infer.MsgInferResult{Provider: ps[0].addr, RequestID: 1, Output: []byte("a"), OutputHash: infer.HashOutput([]byte("b"))}
	cases := []struct {
		name string
		s    step
		code uint32
	}{
		{"hash not of output", step{ps[0], bad}, types.CodeInvalidMsg},
		{"not serving", answer(tenant, 1, "a"), types.CodeNotProvider},
		{"wrong model hash", step{ps[0], &infer.MsgServeModel{Provider: ps[0].addr, Model: "tiny", Hash: strings.Repeat("cd", 32)}}, types.CodeModelMismatch},
		{"unknown model", step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "nope", Input: []byte("q"), MaxFee: 10}}, types.CodeNotFound},
	}
	for _, c := range cases {
		res := h.exec(c.s)
		if got := res.TxResults[0].Code; got != c.code && !(c.name == "not serving" && got == types.CodeUnauthorized) {
			t.Errorf("%s: code %d (%s), want %d", c.name, got, res.TxResults[0].Log, c.code)
		}
		if c.code == types.CodeInvalidMsg {
			c.s.from.seq-- // NB: refused before its sequence is used
		}
	}
	h.mustExec(answer(ps[0], 1, "a"))
	if res := h.exec(answer(ps[0], 1, "a")); res.TxResults[0].Code != types.CodeAlreadyExists {
		t.Errorf("second answer: code %d, want %d", res.TxResults[0].Code, types.CodeAlreadyExists)
	}
}

// One answer from a provider with an active TEE attestation resolves a request alone
// (via tee) and earns the whole fee; an unattested provider's single answer does not.
func TestInferTEEAnswerResolvesAlone(t *testing.T) {
	h, s, p1, p2, tenant := teeHarness(t, 100)
	hash := strings.Repeat("ab", 32)
	h.mustExec(step{p1, attest(t, h, s, p1, p1.addr, nil, sealKey(t))}, step{tenant, &infer.MsgRegisterModel{Owner: tenant.addr, ID: "tiny", Hash: hash}})
	h.mustExec(step{p1, &infer.MsgServeModel{Provider: p1.addr, Model: "tiny", Hash: hash}}, step{p2, &infer.MsgServeModel{Provider: p2.addr, Model: "tiny", Hash: hash}})
	h.mustExec(step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "tiny", Input: []byte("q"), MaxFee: 600}},
		step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "tiny", Input: []byte("q"), MaxFee: 600}})
	before := bank.Balance(h.ctx(), p1.addr, "ukiln")
	h.mustExec(answer(p2, 1, "x"), answer(p1, 2, "y"))
	r1, _ := infer.GetRequest(h.ctx(), 1)
	r2, _ := infer.GetRequest(h.ctx(), 2)
	if r1.State != infer.StateOpen {
		t.Errorf("request 1 answered once by an unattested provider: %s, want open", r1.State)
	}
	if r2.State != infer.StateResolved || r2.Via != "tee" || !r2.Answers[0].TEE || string(r2.Output) != "y" {
		t.Fatalf("request 2 = %+v, want resolved via tee", r2)
	}
	if got := bank.Balance(h.ctx(), p1.addr, "ukiln") - before + 5000; got != 600 {
		t.Errorf("TEE provider earned %d, want the whole 600", got)
	}
}
