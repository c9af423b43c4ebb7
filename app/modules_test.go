package app

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/staking"
)

// msgTip is the toy module's one message: pay Amount ukiln into its module account.
type msgTip struct {
	From   types.Address
	Amount uint64
}

const msgTypeTip types.MsgType = 9901

func (m *msgTip) Type() types.MsgType       { return msgTypeTip }
func (m *msgTip) Signer() types.Address     { return m.From }
func (m *msgTip) MarshalTo(w *codec.Writer) { w.Fixed(m.From[:]); w.Uvarint(m.Amount) }
func (m *msgTip) ValidateBasic() error      { return nil }
func decodeTip(r *codec.Reader) types.Msg {
	return &msgTip{From: bank.ReadAddress(r), Amount: r.Uvarint()}
}
func tipKey() []byte    { return []byte("toy/tips") }
func blocksKey() []byte { return []byte("toy/blocks") }
func getU64(ctx *types.Context, k []byte) uint64 {
	v, ok := ctx.Store.Get(k)
	if !ok {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

var toyAccount = types.ModuleAddress("toy")

// toyModule is a module the app has never heard of, added as one table entry: a
// message that moves money into its module account, an end-block counter, a query,
// its account in the books and an invariant that trips above maxTips.
func toyModule(maxTips uint64) Module {
	return Module{
		Name: "toy",
		Msgs: []MsgRoute{{msgTypeTip, decodeTip}},
		Handle: func(ctx *types.Context, msg types.Msg) error {
			m := msg.(*msgTip)
			if err := bank.Send(ctx, m.From, toyAccount, types.NewCoin("ukiln", m.Amount)); err != nil {
				return err
			}
			ctx.Store.Set(tipKey(), binary.BigEndian.AppendUint64(nil, getU64(ctx, tipKey())+m.Amount))
			return nil
		},
		EndBlock: func(ctx *types.Context) []staking.Update {
			ctx.Store.Set(blocksKey(), binary.BigEndian.AppendUint64(nil, getU64(ctx, blocksKey())+1))
			return nil
		},
		Accounts: []bank.ModuleAccount{{Name: "toy", Address: toyAccount, Owed: func(ctx *types.Context) types.Coins {
			if n := getU64(ctx, tipKey()); n > 0 {
				return types.Coins{types.NewCoin("ukiln", n)}
			}
			return types.Coins{}
		}}},
		Invariants: func(ctx *types.Context) error {
			if n := getU64(ctx, tipKey()); n > maxTips {
				return fmt.Errorf("toy: %d ukiln tipped, more than %d", n, maxTips)
			}
			return nil
		},
		Query: func(ctx *types.Context, path string) (any, error) {
			if path != "/toy/count" {
				return nil, unknownPath(path)
			}
			return map[string]uint64{"tips": getU64(ctx, tipKey()), "blocks": getU64(ctx, blocksKey())}, nil
		},
	}
}

// A new module is one entry of the module table: its messages are decoded and routed,
// its end-block runs every block, its queries answer, its module account is in the
// books and its invariant is checked after every block.
func TestNewModuleIsOneEntry(t *testing.T) {
	h := newHarnessOpts(t, 3, Options{CheckInvariants: true, Modules: []Module{toyModule(1000)}}, nil)
	a := h.accs[1]
	h.mustExec(step{a, &msgTip{From: a.addr, Amount: 400}})
	h.block()
	var got map[string]uint64
	if c := h.query("/toy/count", &got); c != 0 || got["tips"] != 400 || got["blocks"] < 2 {
		t.Fatalf("/toy/count = %d %v, want 400 tipped over at least 2 blocks", c, got)
	}
	var acc bank.Accounting
	if c := h.query("/bank/accounting", &acc); c != 0 {
		t.Fatalf("/bank/accounting code %d", c)
	}
	if c := h.query("/toy/nothing", nil); c != types.CodeInvalidRequest {
		t.Fatalf("/toy/nothing code %d, want %d", c, types.CodeInvalidRequest)
	}
	// The module's invariant runs after every block: past its limit the block halts
	// (a diverging node must stop, not limp on).
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "toy") {
			t.Fatalf("a tip above the toy invariant's limit did not halt the block: %v", r)
		}
	}()
	h.exec(step{a, &msgTip{From: a.addr, Amount: 700}})
}

// Without the module, its message type is unknown: refused deterministically.
func TestUnknownModuleMessageRefused(t *testing.T) {
	h := newHarness(t, 2)
	a := h.accs[1]
	res := h.exec(step{a, &msgTip{From: a.addr, Amount: 1}})
	if c := res.TxResults[0].Code; c != types.CodeUnknownMsgType {
		t.Fatalf("tip without the toy module: code %d (%s), want %d", c, res.TxResults[0].Log, types.CodeUnknownMsgType)
	}
}

// The table refuses clashes: a name or message type taken twice, or messages without
// a handler, is a programming error caught when the app is made.
func TestModuleTableRefusesClashes(t *testing.T) {
	toy := toyModule(1)
	noHandler := toy
	noHandler.Name, noHandler.Handle = "toy2", nil
	sameType := toyModule(1)
	sameType.Name = "toy3"
	tests := []struct {
		name string
		mods []Module
		want string
	}{
		{"name taken", []Module{toy, toy}, "taken"},
		{"standard name taken", []Module{{Name: "market"}}, "taken"},
		{"messages without a handler", []Module{noHandler}, "no handler"},
		{"message type taken", []Module{toy, sameType}, "registered twice"},
		{"slash in a name", []Module{{Name: "a/b"}}, "slash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Fatalf("newLedger = %v, want a panic saying %q", r, tt.want)
				}
			}()
			newLedger(append(Modules(), tt.mods...))
		})
	}
}

// The end-block order is the protocol's: liveness fails overdue challenges (closing
// their leases before they are paid), market settles, verify samples and decides
// (keeping pay held while a check is pending), tee stores the block's nonce and expires
// attestations (closing their TEE leases after settlement), infer expires unanswered
// requests, escrow releases held pay, bank pays out fees, staking computes validator
// updates last.
func TestEndBlockOrder(t *testing.T) {
	var order []string
	for _, m := range Modules() {
		if m.EndBlock != nil {
			order = append(order, m.Name)
		}
	}
	if got, want := strings.Join(order, ","), "liveness,market,verify,tee,infer,escrow,bank,staking"; got != want {
		t.Fatalf("end-block order %s, want %s", got, want)
	}
}

// A module account whose module keeps records of its balance takes no plain transfer:
// it would unbalance the books (and halt a node checking invariants). One without
// records (the community pool) may receive a donation.
func TestSendToModuleAccountRefused(t *testing.T) {
	h := newHarnessOpts(t, 2, Options{CheckInvariants: true, Modules: []Module{toyModule(1000)}}, nil)
	a := h.accs[1]
	for _, acc := range ledgerTable.accounts {
		if acc.Owed == nil {
			continue
		}
		res := h.exec(step{a, &bank.MsgSend{From: a.addr, To: acc.Address, Amount: types.Coins{types.NewCoin("ukiln", 5)}}})
		if r := res.TxResults[0]; r.Code != types.CodeUnauthorized || !strings.Contains(r.Log, acc.Name) {
			t.Errorf("send to the %s module account: code %d (%s), want %d naming it", acc.Name, r.Code, r.Log, types.CodeUnauthorized)
		}
	}
	res := h.exec(step{a, &bank.MsgSend{From: a.addr, To: toyAccount, Amount: types.Coins{types.NewCoin("ukiln", 5)}}})
	if r := res.TxResults[0]; r.Code != types.CodeUnauthorized {
		t.Errorf("send to an added module's account: code %d (%s), want %d", r.Code, r.Log, types.CodeUnauthorized)
	}
	h.mustExec(step{a, &bank.MsgSend{From: a.addr, To: bank.CommunityPool, Amount: types.Coins{types.NewCoin("ukiln", 5)}}})
}
