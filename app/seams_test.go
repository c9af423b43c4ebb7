package app

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand"
	"strings"
	"testing"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// extend restarts h's app over the same state with wire registering more hooks: a
// module the app does not have yet, plugged in the way it will be.
func extend(h *harness, wire func(*types.Hooks)) {
	h.app = New(h.app.db, Options{CheckInvariants: true, Extend: wire})
}

// recorder logs every market hook it sees as "name:event:lease/attempt[:detail]" and
// calls the optional reactions, like a verify module would.
type recorder struct {
	name      string
	log       *[]string
	onStarted func(*types.Context, market.Lease)
	onClosed  func(*types.Context, market.Lease, market.Reason)
}

func (r *recorder) add(ctx *types.Context, event string, l market.Lease, detail string) {
	s := fmt.Sprintf("%s:%s:%d/%d", r.name, event, l.ID, l.Attempt)
	if detail != "" {
		s += ":" + detail
	}
	if !ctx.CheckTx {
		*r.log = append(*r.log, s)
	}
}

func (r *recorder) LeaseCreated(ctx *types.Context, l market.Lease) { r.add(ctx, "created", l, "") }

func (r *recorder) LeaseStarted(ctx *types.Context, l market.Lease) {
	r.add(ctx, "started", l, "")
	if r.onStarted != nil {
		r.onStarted(ctx, l)
	}
}

func (r *recorder) LeaseClosed(ctx *types.Context, l market.Lease, reason market.Reason) {
	r.add(ctx, "closed", l, reason.Name)
	if r.onClosed != nil {
		r.onClosed(ctx, l, reason)
	}
}

func (r *recorder) PaymentMade(ctx *types.Context, l market.Lease, p escrow.Payment) {
	r.add(ctx, "paid", l, fmt.Sprintf("%d=%d+%d+%d", p.Gross, p.Fee, p.Held, p.ToProvider))
}

// Market hooks see a lease's whole life, in the order the wiring registered them, with
// each payment's split; with the default parameters nothing is held back.
func TestMarketHooksRunInDeclaredOrder(t *testing.T) {
	h, _, p2, tenant, _ := marketHarness(t, nil)
	var log []string
	extend(h, func(hk *types.Hooks) {
		market.RegisterHooks(hk, "first", &recorder{name: "first", log: &log})
		market.RegisterHooks(hk, "second", &recorder{name: "second", log: &log})
	})
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("train", 1, 1, "a100"))})
	h.mustExec(bid(p2, 1, 800))
	h.mustExec(start(p2, 1))
	h.block()
	h.mustExec(step{p2, &market.MsgCompleteLease{Provider: p2.addr, LeaseID: 1, OutputHash: []byte{1}}})
	want := []string{
		"first:created:1/1", "second:created:1/1",
		"first:started:1/1", "second:started:1/1",
		"first:paid:1/1:800=4+0+796", "second:paid:1/1:800=4+0+796", // the block after the start
		"first:paid:1/1:800=4+0+796", "second:paid:1/1:800=4+0+796", // the completion block
		"first:closed:1/1:completed", "second:closed:1/1:completed",
	}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hooks ran\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}
	if hs := escrow.Holds(h.ctx(), 0); len(hs) != 0 {
		t.Fatalf("holds with default params: %+v", hs)
	}
}

// A module closes leases with reasons it registered: one that pays the current block,
// and one that refunds the provider's held pay to the tenant at once (and, here, has
// the module slash the provider's bond, which shows at once in the registry). Money is
// conserved throughout (the harness checks every invariant after every block).
func TestRegisteredReasonsCloseLeases(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, func(g *GenesisState) {
		g.Params.Escrow.HoldbackBps = 2000
		g.Params.Escrow.DisputeWindowBlocks = 4
	})
	var log []string
	closeOnStart := map[uint64][2]any{} // lease started → (lease to close, reason)
	v := &recorder{name: "verify", log: &log,
		onStarted: func(ctx *types.Context, l market.Lease) {
			if c, ok := closeOnStart[l.ID]; ok {
				if err := market.CloseLease(ctx, c[0].(uint64), 1, c[1].(string)); err != nil {
					panic(err)
				}
			}
		},
		onClosed: func(ctx *types.Context, l market.Lease, r market.Reason) {
			if r.Name == "test_cheat" {
				if _, err := staking.SlashBond(ctx, registry.BondPurpose, l.Provider, l.StartedHeight, 5000, r.Name); err != nil {
					panic(err)
				}
			}
		}}
	extend(h, func(hk *types.Hooks) {
		market.RegisterReason(hk, market.Reason{Name: "test_pays", PaysThisBlock: true})
		market.RegisterReason(hk, market.Reason{Name: "test_cheat", RefundHeld: true})
		market.RegisterHooks(hk, "toy_verify", v)
	})
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("a", 1, 1, "rtx4090"))},
		step{tenant, order(tenant, 1000, 100_000, gpuGroup("b", 1, 1, "a100"))},
		step{tenant, order(tenant, 1000, 100_000, gpuGroup("c", 1, 1, "a100"))},
		step{tenant, order(tenant, 1000, 100_000, gpuGroup("d", 1, 1, "a100"))})
	h.mustExec(bid(p1, 1, 1000), bid(p2, 2, 1000), bid(p2, 3, 1000), bid(p2, 4, 1000))
	h.mustExec(start(p1, 1), start(p2, 2))
	h.block()
	h.block()
	// Lease 3 starting makes the module close lease 1 in the same transaction, before
	// the block's settlement: test_pays pays for this block.
	closeOnStart[3] = [2]any{uint64(1), "test_pays"}
	h.mustExec(start(p2, 3))
	X := h.height
	l1 := h.lease(1)
	if l1.State != market.LeaseClosed || l1.CloseReason != "test_pays" || l1.ClosedHeight != X || h.order(1).CloseReason != "test_pays" {
		t.Fatalf("lease 1 = %+v, order %+v; want closed test_pays at %d", l1, h.order(1), X)
	}
	// 3 blocks paid (two after the start, and this one): 995 net each, 20% (199) held.
	if e := h.escrowOf(1); e.Paid != 3*796 || e.Held != 3*199 || e.Fees != 3*5 || e.Refunded != 100_000-3000 {
		t.Fatalf("escrow of lease 1 = %+v", e)
	}
	h.block()
	// Lease 4 starting makes the module close lease 2 as a cheat: that block is not
	// paid, the held pay goes back to the tenant, and the module slashes half of p2's
	// bond.
	closeOnStart[4] = [2]any{uint64(2), "test_cheat"}
	tenantBefore := bank.Balance(h.ctx(), tenant.addr, "ukiln")
	h.mustExec(start(p2, 4))
	Y := h.height
	e2 := h.escrowOf(2)
	paid := uint64(Y - 1 - h.lease(2).StartedHeight) // blocks settled before this one
	if e2.Paid != paid*796 || e2.Held != 0 || e2.ClawedBack != paid*199 || e2.Refunded != 100_000-paid*1000 {
		t.Fatalf("escrow of lease 2 after test_cheat = %+v, want %d blocks paid with their held pay refunded", e2, paid)
	}
	if got := bank.Balance(h.ctx(), tenant.addr, "ukiln"); got != tenantBefore+e2.Refunded+e2.ClawedBack {
		t.Fatalf("tenant got %d back, want refund %d + held pay %d", got-tenantBefore, e2.Refunded, e2.ClawedBack)
	}
	var prov registry.Provider
	if c := h.query("/registry/provider/"+p2.addr.String(), &prov); c != 0 || prov.Stake != 50_000_000 {
		t.Fatalf("/registry/provider/p2 after a 50%% slash = %d, stake %d; want 50000000", c, prov.Stake)
	}
	// Lease 1's window (closed at X, window 4) ends at X+4: its held pay goes to p1
	// then, not before.
	for h.height < X+3 {
		h.block()
	}
	if e := h.escrowOf(1); e.Held != 3*199 {
		t.Fatalf("lease 1's held pay released before its window ended: %+v", e)
	}
	p1Before := bank.Balance(h.ctx(), p1.addr, "ukiln")
	res := h.block()
	if e := h.escrowOf(1); e.Held != 0 || e.Released != 3*199 || bank.Balance(h.ctx(), p1.addr, "ukiln") != p1Before+3*199 {
		t.Fatalf("at the end of height %d: escrow %+v, p1 got %d; want 597 released", h.height, e, bank.Balance(h.ctx(), p1.addr, "ukiln")-p1Before)
	}
	if !hasEvent(res, "escrow_released", "order", "1") {
		t.Fatal("no escrow_released event")
	}
	var holds struct{ Holds []escrow.Hold }
	if c := h.query("/escrow/holds/1", &holds); c != 0 || len(holds.Holds) != 1 || holds.Holds[0].State != escrow.HoldReleased ||
		holds.Holds[0].Released != 3*199 || holds.Holds[0].ReleaseHeight != X+4 || holds.Holds[0].Provider != p1.addr {
		t.Fatalf("/escrow/holds/1 = %d %+v", c, holds)
	}
	if c := h.query("/escrow/holds/99", nil); c != types.CodeNotFound {
		t.Fatalf("/escrow/holds/99: code %d, want %d", c, types.CodeNotFound)
	}
	// Below min_provider_stake, the provider may not bid until it adds stake.
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("e", 1, 1, "a100"))})
	if r := h.exec(bid(p2, 5, 900)).TxResults[0]; r.Code != types.CodeNotProvider || !strings.Contains(r.Log, "below min_provider_stake") {
		t.Fatalf("bid by a slashed provider: code %d (%s), want %d naming the minimum", r.Code, r.Log, types.CodeNotProvider)
	}
	h.mustExec(step{p2, &registry.MsgUpdateProvider{Owner: p2.addr, AddStake: 50_000_000}})
	h.mustExec(bid(p2, 5, 900))
	want := []string{"verify:created:1/1", "verify:created:2/1", "verify:created:3/1", "verify:created:4/1"}
	if strings.Join(log[:4], ",") != strings.Join(want, ",") {
		t.Fatalf("first hooks %v, want %v", log[:4], want)
	}
	if !contains(log, "verify:closed:1/1:test_pays") || !contains(log, "verify:closed:2/1:test_cheat") {
		t.Fatalf("hooks did not see the closes: %v", log)
	}

	// CloseLease refuses what it cannot close, and an unregistered reason panics.
	ctx := h.app.wire(&types.Context{Store: store.NewCache(h.app.db), Height: h.height + 1}, types.BlockRand{1})
	tests := []struct {
		id      uint64
		attempt uint32
		want    *types.Error
	}{
		{1, 1, types.ErrLeaseClosed},
		{3, 2, types.ErrNotFound},
		{3, 0, types.ErrNotFound},
		{99, 1, types.ErrNotFound},
	}
	for _, tt := range tests {
		if err := market.CloseLease(ctx, tt.id, tt.attempt, "test_cheat"); !errors.Is(err, tt.want) {
			t.Errorf("CloseLease(%d, %d) = %v, want code %d", tt.id, tt.attempt, err, tt.want.Code)
		}
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "no_such_reason") {
				t.Fatalf("CloseLease with an unknown reason: recovered %v, want a panic naming it", r)
			}
		}()
		market.CloseLease(ctx, 3, 1, "no_such_reason")
	}()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A provider cannot take its bond away while a lease of its own runs, nor while a
// closed one is in its dispute window; the refusal names the lease and when the bond
// unlocks. With the default parameters (no window) it may leave as soon as its last
// lease closes.
func TestProviderBondLockedWhileDisputable(t *testing.T) {
	tests := []struct {
		name     string
		window   int64
		minStake uint64
	}{
		{"defaults", 0, registry.DefaultParams().MinProviderStake},
		{"dispute window of 3 blocks", 3, registry.DefaultParams().MinProviderStake},
		{"no minimum stake", 0, 0}, // leaving takes the whole bond: still locked
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p1, _, tenant, _ := marketHarness(t, func(g *GenesisState) {
				g.Params.Escrow.DisputeWindowBlocks = tt.window
				g.Params.Registry.MinProviderStake = tt.minStake
			})
			h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("a", 1, 1, "rtx4090"))})
			h.mustExec(bid(p1, 1, 1000))
			h.mustExec(start(p1, 1))
			deregister := step{p1, &registry.MsgDeregisterProvider{Owner: p1.addr}}
			r := h.exec(deregister).TxResults[0]
			if r.Code != types.CodeBondLocked || !strings.Contains(r.Log, "runs lease 1 (attempt 1)") {
				t.Fatalf("deregister with an active lease: code %d (%s), want %d naming lease 1", r.Code, r.Log, types.CodeBondLocked)
			}
			if _, ok := registry.Get(h.ctx(), p1.addr); !ok || staking.Bonded(h.ctx(), registry.BondPurpose, p1.addr) != 100_000_000 {
				t.Fatal("a refused deregistration changed the provider or its bond")
			}
			h.mustExec(step{tenant, &market.MsgCloseOrder{Owner: tenant.addr, OrderID: 1}})
			C := h.height
			for h.height < C+tt.window {
				r := h.exec(deregister).TxResults[0]
				wantLog := fmt.Sprintf("lease 1 (attempt 1) closed at height %d and may be disputed until height %d", C, C+tt.window)
				if r.Code != types.CodeBondLocked || !strings.Contains(r.Log, wantLog) || !strings.Contains(r.Log, fmt.Sprintf("before height %d", C+tt.window+1)) {
					t.Fatalf("deregister at height %d: code %d (%s), want %d saying %q", h.height, r.Code, r.Log, types.CodeBondLocked, wantLog)
				}
			}
			h.mustExec(deregister)
			if h.height != C+tt.window+1 {
				t.Fatalf("deregistered at height %d, want %d", h.height, C+tt.window+1)
			}
			if _, ok := registry.Get(h.ctx(), p1.addr); ok {
				t.Fatal("provider still registered")
			}
		})
	}
}

// blockOf is a FinalizeBlock request as CometBFT sends it: a block hash and the votes
// of the last commit, here from the harness's single validator.
func blockOf(h *harness, hash []byte, txs ...[]byte) *abcitypes.RequestFinalizeBlock {
	val := staking.ConsAddr(h.valKey.Public().(ed25519.PublicKey))
	return &abcitypes.RequestFinalizeBlock{Height: h.height + 1, Time: time.Unix(h.height+1, 0), Txs: txs, Hash: hash,
		ProposerAddress: val, DecidedLastCommit: abcitypes.CommitInfo{Votes: []abcitypes.VoteInfo{
			{Validator: abcitypes.Validator{Address: val, Power: 10}, BlockIdFlag: cmtproto.BlockIDFlagCommit}}}}
}

func (h *harness) finalize(req *abcitypes.RequestFinalizeBlock) {
	h.t.Helper()
	h.height = req.Height
	if _, err := h.app.FinalizeBlock(context.Background(), req); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.app.Commit(context.Background(), &abcitypes.RequestCommit{}); err != nil {
		h.t.Fatal(err)
	}
}

// Block randomness is the same on every node fed the same blocks, differs from block to
// block, and follows the block: a different block hash at one height gives a different
// value from there on. Modules see it in FinalizeBlock, and CheckTx sees the last
// committed block's.
func TestBlockRandAgreesAcrossNodes(t *testing.T) {
	type seen struct {
		checkTx bool
		height  int64
		r       types.BlockRand
	}
	var probes [3][]seen
	nodes := make([]*harness, 3)
	for i := range nodes {
		h, _, _, _, _ := marketHarness(t, nil)
		extend(h, func(hk *types.Hooks) {
			staking.RegisterUnbondGuard(hk, registry.BondPurpose, "probe", func(ctx *types.Context, _ types.Address, _ uint64) error {
				probes[i] = append(probes[i], seen{ctx.CheckTx, ctx.Height, ctx.BlockRand})
				return types.Wrapf(types.ErrBondLocked, "probe")
			})
		})
		nodes[i] = h
	}
	committed := storedBlockRand(nodes[0].app.db)
	values := map[types.BlockRand]int64{}
	for n := 0; n < 8; n++ {
		var got [3]types.BlockRand
		for i, h := range nodes {
			hash := sha256.Sum256([]byte(fmt.Sprint("block", h.height+1)))
			if i == 2 && n == 3 {
				hash[0] ^= 1 // node 2 is fed another block at this height
			}
			p1 := h.accs[1]
			// NB: every node signs the same tx (same keys, same sequence).
			raw := h.sign(p1, p1.seq, 5000, &registry.MsgDeregisterProvider{Owner: p1.addr})
			if res := h.checkTx(raw); res.Code != types.CodeBondLocked {
				t.Fatalf("CheckTx of the probe: code %d (%s)", res.Code, res.Log)
			}
			h.finalize(blockOf(h, hash[:], raw))
			p1.seq++ // the refused tx paid its fee and used its sequence
			got[i] = storedBlockRand(h.app.db)
		}
		if got[0] != got[1] {
			t.Fatalf("height %d: nodes fed the same blocks disagree: %x vs %x", nodes[0].height, got[0], got[1])
		}
		if n >= 3 && got[2] == got[0] {
			t.Fatalf("height %d: a different block gave the same randomness", nodes[0].height)
		}
		if at, dup := values[got[0]]; dup {
			t.Fatalf("height %d repeats the randomness of height %d", nodes[0].height, at)
		}
		values[got[0]] = nodes[0].height
	}
	// Node 0's probe ran twice per block: in CheckTx with the last committed value, in
	// FinalizeBlock with the block's own, which is what it then committed.
	last := committed
	for i, s := range probes[0] {
		switch {
		case i%2 == 0 && (!s.checkTx || s.r != last):
			t.Fatalf("probe %d (CheckTx at %d) saw %x, want the last committed %x", i, s.height, s.r, last)
		case i%2 == 1 && (s.checkTx || s.r.IsZero() || s.r == last):
			t.Fatalf("probe %d (FinalizeBlock at %d) saw %x, want this block's own", i, s.height, s.r)
		}
		if i%2 == 1 {
			last = s.r
		}
	}
	if len(probes[0]) != 16 {
		t.Fatalf("probe ran %d times, want 16", len(probes[0]))
	}
	if probes[0][15].r != storedBlockRand(nodes[0].app.db) {
		t.Fatal("the last block's committed randomness is not what its modules saw")
	}
}

// A hook may close another lease while the market settles the block: the settlement
// loop skips a lease a hook closed before its turn instead of halting the chain.
func TestHookClosesLeaseDuringSettlement(t *testing.T) {
	h, p1, p2, tenant, _ := marketHarness(t, nil)
	var log []string
	armed := false
	v := &recorder{name: "verify", log: &log}
	extend(h, func(hk *types.Hooks) {
		market.RegisterReason(hk, market.Reason{Name: "test_fraud"})
		market.RegisterHooks(hk, "toy_verify", &paymentCloser{recorder: v, armed: &armed, close: 2, reason: "test_fraud"})
	})
	h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("a", 1, 1, "rtx4090"))},
		step{tenant, order(tenant, 1000, 100_000, gpuGroup("b", 1, 1, "a100"))})
	h.mustExec(bid(p1, 1, 1000), bid(p2, 2, 1000))
	h.mustExec(start(p1, 1), start(p2, 2))
	h.block()
	armed = true // lease 1's next payment, in EndBlock, closes lease 2 before its turn
	h.block()
	l2 := h.lease(2)
	if l2.State != market.LeaseClosed || l2.CloseReason != "test_fraud" || l2.ClosedHeight != h.height {
		t.Fatalf("lease 2 = %+v, want closed test_fraud at %d", l2, h.height)
	}
	if e := h.escrowOf(2); e.Paid+e.Fees != 1000 {
		t.Fatalf("escrow of lease 2 = %+v, want only the block before the close paid", e)
	}
	if l1 := h.lease(1); l1.State != market.LeaseActive {
		t.Fatalf("lease 1 = %+v, want still active", l1)
	}
}

// paymentCloser closes lease close (0: the lease just paid) with reason at the first
// payment it sees once armed, and keeps CloseLease's answer.
type paymentCloser struct {
	*recorder
	armed  *bool
	close  uint64
	reason string
	err    error
}

func (p *paymentCloser) PaymentMade(ctx *types.Context, l market.Lease, pay escrow.Payment) {
	p.recorder.PaymentMade(ctx, l, pay)
	if !*p.armed || ctx.CheckTx || l.ID == p.close {
		return
	}
	*p.armed = false
	id := p.close
	if id == 0 {
		id = l.ID
	}
	p.err = market.CloseLease(ctx, id, 1, p.reason)
}

// A PaymentMade hook may close the very lease just paid: in EndBlock's settlement it
// closes it; during a transaction's close, whose last payment it sees, the lease is
// already closed and CloseLease says so. Either way the lease closes once.
func TestHookClosesThePaidLease(t *testing.T) {
	tests := []struct {
		name       string
		byTenant   bool
		deposit    uint64
		before     int // blocks paid before the hook is armed
		wantReason string
		wantErr    *types.Error
		wantPaid   uint64
	}{
		{"in settlement", false, 100_000, 1, "test_fraud", nil, 2000},
		{"in the settlement that exhausts the escrow", false, 10_500, 10, "test_fraud", nil, 10_500},
		{"in the tenant's close", true, 100_000, 1, market.ReasonTenantClosed, types.ErrLeaseClosed, 2000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p1, _, tenant, _ := marketHarness(t, nil)
			var log []string
			armed := false
			pc := &paymentCloser{recorder: &recorder{name: "verify", log: &log}, armed: &armed, reason: "test_fraud"}
			extend(h, func(hk *types.Hooks) {
				market.RegisterReason(hk, market.Reason{Name: "test_fraud"})
				market.RegisterHooks(hk, "toy_verify", pc)
			})
			h.mustExec(step{tenant, order(tenant, 1000, tt.deposit, gpuGroup("a", 1, 1, "rtx4090"))})
			h.mustExec(bid(p1, 1, 1000))
			h.mustExec(start(p1, 1))
			for range tt.before {
				h.block()
			}
			armed = true
			if tt.byTenant {
				h.mustExec(step{tenant, &market.MsgCloseLease{Sender: tenant.addr, LeaseID: 1}})
			} else {
				h.block()
			}
			if l := h.lease(1); l.State != market.LeaseClosed || l.CloseReason != tt.wantReason || l.ClosedHeight != h.height {
				t.Fatalf("lease = %+v, want closed %s at %d", l, tt.wantReason, h.height)
			}
			if tt.wantErr == nil && pc.err != nil || tt.wantErr != nil && !errors.Is(pc.err, tt.wantErr) {
				t.Fatalf("the hook's CloseLease = %v, want %v", pc.err, tt.wantErr)
			}
			closes := 0
			for _, e := range log {
				if strings.HasPrefix(e, "verify:closed:1/1") {
					closes++
				}
			}
			if e := h.escrowOf(1); closes != 1 || e.Paid+e.Fees != tt.wantPaid || e.State != escrow.StateClosed {
				t.Fatalf("closed %d times (%v); escrow %+v, want %d paid and the account closed", closes, log, e, tt.wantPaid)
			}
		})
	}
}

// chaosVerifier is a stand-in verify module whose verdicts come from block randomness:
// on some payments it finds the provider cheating (closing the lease with test_cheat,
// which refunds its held pay, and slashing 10% of its bond as of the lease's start);
// on some closes it claws half the held pay back to the community pool. It keeps no
// state of its own, so two nodes fed the same blocks must agree on everything.
type chaosVerifier struct{ market.BaseHooks }

func (chaosVerifier) PaymentMade(ctx *types.Context, l market.Lease, _ escrow.Payment) {
	if ctx.Rand("test/verdict", []byte(fmt.Sprint(l.ID, l.Attempt))).Uint64N(12) != 0 {
		return
	}
	if err := market.CloseLease(ctx, l.ID, l.Attempt, "test_cheat"); err != nil {
		return // NB: already closed earlier in this block
	}
	if _, err := staking.SlashBond(ctx, registry.BondPurpose, l.Provider, l.StartedHeight, 1000, "test_cheat"); err != nil {
		panic(err)
	}
}

func (chaosVerifier) LeaseClosed(ctx *types.Context, l market.Lease, r market.Reason) {
	hold, ok := escrow.GetHold(ctx, l.ID, l.Provider)
	if !ok || hold.Amount < 2 || ctx.Rand("test/claw", []byte(fmt.Sprint(l.ID))).Uint64N(3) != 0 {
		return
	}
	if err := escrow.ClawBack(ctx, l.ID, l.Provider, hold.Amount/2, bank.CommunityPool); err != nil {
		panic(err)
	}
}

// Property: a random market with held-back pay, dispute windows, deregistrations and a
// verifier that closes, slashes and claws back at random keeps every invariant (money,
// bonds, held pay, capacity) after every block, never lets a bond leave while a lease
// or dispute window holds it, shows the live bond in the registry, and a replica fed
// the same blocks agrees on every app hash.
func TestRandomSeamsKeepMoneyAndAgree(t *testing.T) {
	blocks := 90
	if testing.Short() {
		blocks = 30
	}
	for trial, pr := range []escrow.Params{
		{ProtocolFeeBps: 50, HoldbackBps: 2500, DisputeWindowBlocks: 3},
		{ProtocolFeeBps: 700, HoldbackBps: 10000, DisputeWindowBlocks: 1},
		{ProtocolFeeBps: 0, HoldbackBps: 333, DisputeWindowBlocks: 9},
	} {
		edit := func(g *GenesisState) {
			g.Params.Escrow = pr
			g.Params.Market.HeartbeatTimeoutBlocks = 12
		}
		h, replica := newHarnessWith(t, 8, edit), newHarnessWith(t, 8, edit)
		for _, x := range []*harness{h, replica} {
			extend(x, func(hk *types.Hooks) {
				market.RegisterReason(hk, market.Reason{Name: "test_cheat", RefundHeld: true})
				market.RegisterHooks(hk, "toy_verify", chaosVerifier{})
			})
		}
		provs, tenants := h.accs[1:5], h.accs[5:8]
		invs := []registry.Inventory{inv("eu-west", rtx4090(2)), inv("eu-west", a100(4)), inv("us-east"), inv("us-east", a100(8))}
		var reg []step
		for i, p := range provs {
			reg = append(reg, h.register(p, invs[i]))
		}
		txs := h.signSteps(reg...)
		h.block(txs...)
		replica.block(txs...)
		r := mrand.New(mrand.NewSource(int64(trial)))
		supply0 := fmt.Sprint(bank.Supply(h.ctx()))
		var locked, left, cheats int
		for b := 0; b < blocks; b++ {
			var steps []step
			registered := map[types.Address]bool{}
			for _, p := range registry.List(h.ctx()) {
				registered[p.Owner] = true
			}
			open := market.Orders(h.ctx(), market.OrderFilter{State: market.OrderOpen})
			active := market.Leases(h.ctx(), market.LeaseFilter{State: market.LeaseActive})
			for i := 0; i < 6; i++ {
				switch k := r.Intn(12); {
				case k < 3:
					tn := tenants[r.Intn(len(tenants))]
					g := gpuGroup("g", 1, uint32(r.Intn(2)))
					price := uint64(50 + r.Intn(2000))
					steps = append(steps, step{tn, order(tn, price, price*uint64(10+r.Intn(30)), g)})
				case k < 6 && len(open) > 0:
					o := open[r.Intn(len(open))]
					steps = append(steps, bid(provs[r.Intn(len(provs))], o.ID, uint64(1+r.Intn(int(o.MaxPrice)))))
				case k < 8 && len(active) > 0:
					l := active[r.Intn(len(active))]
					p := h.accountOf(l.Provider)
					if l.StartedHeight == 0 {
						steps = append(steps, start(p, l.ID))
					} else {
						steps = append(steps, step{p, &market.MsgHeartbeat{Provider: p.addr, LeaseID: l.ID}})
					}
				case k < 9 && len(active) > 0:
					l := active[r.Intn(len(active))]
					who := []types.Address{l.Owner, l.Provider}[r.Intn(2)]
					steps = append(steps, step{h.accountOf(who), &market.MsgCloseLease{Sender: who, LeaseID: l.ID}})
				case k < 10:
					p := provs[r.Intn(len(provs))]
					if registered[p.addr] {
						steps = append(steps, step{p, &registry.MsgDeregisterProvider{Owner: p.addr}})
					} else {
						steps = append(steps, h.register(p, invs[r.Intn(len(invs))]))
					}
				default:
					p := provs[r.Intn(len(provs))]
					if registered[p.addr] {
						steps = append(steps, step{p, &registry.MsgUpdateProvider{Owner: p.addr, AddStake: uint64(1 + r.Intn(20_000_000))}})
					}
				}
			}
			txs := h.signSteps(steps...)
			before := h.ctx()
			res := h.block(txs...)
			if rr := replica.block(txs...); string(rr.AppHash) != string(res.AppHash) {
				t.Fatalf("trial %d height %d: replica app hash %x, want %x", trial, h.height, rr.AppHash, res.AppHash)
			}
			for i, tr := range res.TxResults {
				switch m := steps[i].msg.(type) {
				case *registry.MsgDeregisterProvider:
					if tr.Code == types.CodeBondLocked {
						locked++
					} else if tr.Code == 0 {
						left++
						// It left: nothing it ran may still be disputable.
						for _, l := range market.Leases(before, market.LeaseFilter{Provider: m.Owner}) {
							if l.State == market.LeaseActive || l.ClosedHeight+pr.DisputeWindowBlocks >= h.height {
								t.Fatalf("trial %d height %d: %s left with lease %d (%s at %d) still disputable", trial, h.height, m.Owner, l.ID, l.State, l.ClosedHeight)
							}
						}
					}
				}
				if tr.Code == types.CodeInternal {
					t.Fatalf("trial %d height %d: internal error: %s", trial, h.height, tr.Log)
				}
			}
			if hasEvent(res, "lease_closed", "reason", "test_cheat") {
				cheats++
			}
			if got := fmt.Sprint(bank.Supply(h.ctx())); got != supply0 {
				t.Fatalf("trial %d height %d: supply %s, want %s", trial, h.height, got, supply0)
			}
			if err := CheckInvariants(h.ctx()); err != nil {
				t.Fatalf("trial %d height %d: %v", trial, h.height, err)
			}
			for _, p := range registry.List(h.ctx()) {
				if p.Stake != staking.Bonded(h.ctx(), registry.BondPurpose, p.Owner) {
					t.Fatalf("trial %d height %d: registry says %s has %d bonded, staking %d", trial, h.height, p.Owner, p.Stake, staking.Bonded(h.ctx(), registry.BondPurpose, p.Owner))
				}
			}
		}
		if locked == 0 || left == 0 || cheats == 0 {
			t.Fatalf("trial %d: %d deregistrations refused, %d allowed, %d cheats: the generator misses a path", trial, locked, left, cheats)
		}
		t.Logf("trial %d (%+v): %d deregistrations refused, %d allowed, %d leases closed as cheats", trial, pr, locked, left, cheats)
	}
}
