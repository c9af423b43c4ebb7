package app

import (
	"fmt"
	"strings"

	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/infer"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
	xtee "github.com/kiln-network/kiln/x/tee"
	"github.com/kiln-network/kiln/x/verify"
)

// Module is one ledger module as the app wires it: everything the app needs to know of
// it, in one entry of Modules. A new module is one more entry, not edits across the app.
// Every field but Name may be left zero.
type Module struct {
	// Name is the module's name: its key under genesis params and in /params, and the
	// first element of its query paths (/NAME/...).
	Name string
	// Msgs are the message types the module handles, with their decoders. Types are
	// part of the protocol (types.MsgType): never reused or renumbered.
	Msgs []MsgRoute
	// Handle executes one of the module's messages; required when Msgs is not empty.
	Handle func(ctx *types.Context, msg types.Msg) error
	// Wire registers the module's hooks with other modules (close reasons, unbond
	// guards...), once, when the app is made; hooks run in table order.
	Wire func(h *types.Hooks)
	// BeginBlock runs before a block's transactions, in table order, with what
	// consensus says about the previous block (evidence, votes).
	BeginBlock func(ctx *types.Context, b BlockInfo)
	// EndBlock runs after a block's transactions, in table order; only staking returns
	// validator updates.
	EndBlock func(ctx *types.Context) []staking.Update
	// Params points at the module's parameters in a genesis, so that one entry gives
	// both their default (DefaultGenesis, and a genesis without them) and their place
	// in genesis.json.
	Params func(g *GenesisParams) params.Validator
	// DefaultParams sets the module's default parameters in g.
	DefaultParams func(g *GenesisParams)
	// Accounts are the module accounts the module owns, with what its records say each
	// holds: the books (/bank/accounting, and the invariant after every block) check
	// them.
	Accounts []bank.ModuleAccount
	// Invariants checks the module's own records (beyond the books); nil when none.
	Invariants func(ctx *types.Context) error
	// Query answers the module's query paths (/NAME/...); path is the whole path,
	// query string included. It returns ErrInvalidRequest for a path it does not know.
	Query func(ctx *types.Context, path string) (any, error)
}

// MsgRoute is a message type and its decoder.
type MsgRoute struct {
	Type   types.MsgType
	Decode tx.Decoder
}

// BlockInfo is what consensus reports about the previous block, for BeginBlock.
type BlockInfo struct {
	// DoubleSigners are the consensus addresses of validators with duplicate-vote
	// evidence in this block.
	DoubleSigners [][]byte
	// Votes are the previous block's validators, each with whether it signed.
	Votes []Vote
}

// Vote is one validator's part in the previous block's commit.
type Vote struct {
	Address []byte // consensus address
	Signed  bool
}

// Modules is the ledger: every module, in the order their hooks are wired, their
// begin- and end-block run and their invariants are checked. (Genesis parameters are
// written in name order.)
//
// NB: the end-block order is part of the protocol. The market settles leases and
// closes bid windows after the block's transactions (so a bid in block H+window still
// counts and a close in a transaction stops that block's billing); escrow then
// releases held pay whose dispute window ends this block, once every module that may
// claw it back has acted; bank pays out the block's fees to the proposer's operator;
// staking matures unbondings and computes validator updates last.
func Modules() []Module {
	return []Module{
		{
			Name:          auth.ModuleName,
			Params:        func(g *GenesisParams) params.Validator { return &g.Auth },
			DefaultParams: func(g *GenesisParams) { g.Auth = auth.DefaultParams() },
			Query:         queryAuth,
		},
		{
			Name: registry.ModuleName,
			Msgs: []MsgRoute{
				{types.MsgTypeRegistryRegister, registry.DecodeRegister},
				{types.MsgTypeRegistryUpdate, registry.DecodeUpdate},
				{types.MsgTypeRegistryDeregister, registry.DecodeDeregister},
			},
			Handle:        registry.Handle,
			Params:        func(g *GenesisParams) params.Validator { return &g.Registry },
			DefaultParams: func(g *GenesisParams) { g.Registry = registry.DefaultParams() },
			Query:         queryRegistry,
		},
		{
			Name:   cert.ModuleName,
			Msgs:   []MsgRoute{{types.MsgTypeCertPublish, cert.DecodePublish}, {types.MsgTypeCertRevoke, cert.DecodeRevoke}},
			Handle: cert.Handle,
			Query:  queryCert,
		},
		{
			// NB: before the market: a lease whose provider fails a challenge closes
			// before the block's settlement, so the block it failed in is not paid.
			Name: liveness.ModuleName,
			Msgs: []MsgRoute{
				{types.MsgTypeLivenessAnswer, liveness.DecodeAnswer},
				{types.MsgTypeLivenessReveal, liveness.DecodeReveal},
			},
			Handle:   liveness.Handle,
			Wire:     liveness.Wire,
			EndBlock: func(ctx *types.Context) []staking.Update { liveness.EndBlock(ctx); return nil },
			Params:   func(g *GenesisParams) params.Validator { return &g.Liveness },
			// NB: challenges are off in the default genesis: the dev tools (demo,
			// localnet, most tests) declare GPUs on machines without one, which a
			// challenge sized for the claimed GPU rightly fails. A network turns them
			// on in genesis (app_state.params.liveness); see README.
			DefaultParams: func(g *GenesisParams) { g.Liveness = liveness.DefaultParams().Off() },
			Invariants:    liveness.CheckInvariants,
			Query:         queryLiveness,
		},
		{
			Name: market.ModuleName,
			Msgs: []MsgRoute{
				{types.MsgTypeMarketCreateOrder, market.DecodeCreateOrder},
				{types.MsgTypeMarketCloseOrder, market.DecodeCloseOrder},
				{types.MsgTypeMarketCreateBid, market.DecodeCreateBid},
				{types.MsgTypeMarketCloseBid, market.DecodeCloseBid},
				{types.MsgTypeMarketCreateLease, market.DecodeCreateLease},
				{types.MsgTypeMarketCloseLease, market.DecodeCloseLease},
				{types.MsgTypeMarketHeartbeat, market.DecodeHeartbeat},
				{types.MsgTypeMarketCompleteLease, market.DecodeCompleteLease},
				{types.MsgTypeMarketStartLease, market.DecodeStartLease},
				{types.MsgTypeMarketAsk, market.DecodeAsk},
				{types.MsgTypeMarketCancelAsk, market.DecodeCancelAsk},
				{types.MsgTypeMarketCommitBid, market.DecodeCommitBid},
				{types.MsgTypeMarketRevealBid, market.DecodeRevealBid},
				{types.MsgTypeMarketRTTProbe, market.DecodeRTTProbe},
				{types.MsgTypeMarketReclaim, market.DecodeReclaimLease},
				{types.MsgTypeMarketMemberReady, market.DecodeMemberReady},
				{types.MsgTypeMarketMemberRunning, market.DecodeMemberRunning},
			},
			Handle: market.Handle,
			Wire: func(h *types.Hooks) {
				market.Wire(h)
				market.RegisterScores(h, "liveness", market.Measured, measuredScore)
				market.RegisterScores(h, "catalogue", market.Expected, catalogueScore)
			},
			EndBlock:      func(ctx *types.Context) []staking.Update { market.EndBlock(ctx); return nil },
			Params:        func(g *GenesisParams) params.Validator { return &g.Market },
			DefaultParams: func(g *GenesisParams) { g.Market = market.DefaultParams() },
			Accounts:      []bank.ModuleAccount{{Name: "market", Address: market.Account, Owed: market.BidDeposits}},
			Invariants:    market.CheckInvariants,
			Query:         queryMarket,
		},
		{
			// NB: after the market (its settlement's payments are recorded for refunds)
			// and before escrow, so that a pending check keeps pay held that escrow
			// would release this block.
			Name: verify.ModuleName,
			Msgs: []MsgRoute{
				{types.MsgTypeVerifyRegisterVerifier, verify.DecodeRegisterVerifier},
				{types.MsgTypeVerifyUnbondVerifier, verify.DecodeUnbondVerifier},
				{types.MsgTypeVerifyCommit, verify.DecodeCommit},
				{types.MsgTypeVerifyVerdict, verify.DecodeVerdict},
				{types.MsgTypeVerifyDispute, verify.DecodeDispute},
				{types.MsgTypeVerifyVote, verify.DecodeVote},
				{types.MsgTypeVerifyUnavailable, verify.DecodeUnavailable},
			},
			Handle:        verify.Handle,
			Wire:          verify.Wire,
			EndBlock:      func(ctx *types.Context) []staking.Update { verify.EndBlock(ctx); return nil },
			Params:        func(g *GenesisParams) params.Validator { return &g.Verify },
			DefaultParams: func(g *GenesisParams) { g.Verify = verify.DefaultParams() },
			Accounts:      []bank.ModuleAccount{{Name: "verify", Address: verify.Account, Owed: verify.Deposits}},
			Invariants:    verify.CheckInvariants,
			Query:         verify.Query,
		},
		{
			// NB: after the market: an attestation that expires at the end of a
			// block closes its TEE leases once that block's settlement is done.
			Name:          xtee.ModuleName,
			Msgs:          []MsgRoute{{types.MsgTypeTEEAttest, xtee.DecodeAttest}},
			Handle:        xtee.Handle,
			Wire:          xtee.Wire,
			EndBlock:      func(ctx *types.Context) []staking.Update { xtee.EndBlock(ctx); return nil },
			Params:        func(g *GenesisParams) params.Validator { return &g.TEE },
			DefaultParams: func(g *GenesisParams) { g.TEE = xtee.DefaultParams() },
			Query:         queryTEE,
		},
		{
			Name: infer.ModuleName,
			Msgs: []MsgRoute{
				{types.MsgTypeInferRegisterModel, infer.DecodeRegisterModel},
				{types.MsgTypeInferServeModel, infer.DecodeServeModel},
				{types.MsgTypeInferRequest, infer.DecodeRequest},
				{types.MsgTypeInferResult, infer.DecodeResult},
			},
			Handle:        infer.Handle,
			EndBlock:      func(ctx *types.Context) []staking.Update { infer.EndBlock(ctx); return nil },
			Params:        func(g *GenesisParams) params.Validator { return &g.Infer },
			DefaultParams: func(g *GenesisParams) { g.Infer = infer.DefaultParams() },
			Accounts:      []bank.ModuleAccount{{Name: "infer", Address: infer.Account, Owed: infer.Owed}},
			Invariants:    infer.CheckInvariants,
			Query:         queryInfer,
		},
		{
			Name:          escrow.ModuleName,
			Msgs:          []MsgRoute{{types.MsgTypeEscrowDeposit, escrow.DecodeDeposit}},
			Handle:        escrow.Handle,
			EndBlock:      func(ctx *types.Context) []staking.Update { escrow.EndBlock(ctx); return nil },
			Params:        func(g *GenesisParams) params.Validator { return &g.Escrow },
			DefaultParams: func(g *GenesisParams) { g.Escrow = escrow.DefaultParams() },
			Accounts:      []bank.ModuleAccount{{Name: "escrow", Address: escrow.Account, Owed: escrow.Owed}},
			Invariants:    escrow.CheckInvariants,
			Query:         queryEscrow,
		},
		{
			Name: bank.ModuleName,
			Msgs: []MsgRoute{{types.MsgTypeBankSend, bank.DecodeMsgSend}},
			Handle: func(ctx *types.Context, msg types.Msg) error {
				m := msg.(*bank.MsgSend)
				auth.Ensure(ctx, m.To)
				return bank.HandleSend(ctx, m)
			},
			EndBlock: func(ctx *types.Context) []staking.Update {
				bank.DistributeFees(ctx, staking.OperatorOfProposer(ctx))
				return nil
			},
			Params:        func(g *GenesisParams) params.Validator { return &g.Bank },
			DefaultParams: func(g *GenesisParams) { g.Bank = bank.DefaultParams() },
			Accounts: []bank.ModuleAccount{
				// NB: no records: it only receives (fees and protocol fees), and nothing
				// spends it yet.
				{Name: "community_pool", Address: bank.CommunityPool},
				// NB: fees collected in a block are paid out at its end, so between
				// blocks it is empty.
				{Name: "fee_collector", Address: bank.FeeCollector, Owed: func(*types.Context) types.Coins { return types.Coins{} }},
			},
			Query: queryBank,
		},
		{
			Name: staking.ModuleName,
			Msgs: []MsgRoute{
				{types.MsgTypeStakingCreateValidator, staking.DecodeCreateValidator},
				{types.MsgTypeStakingDelegate, staking.DecodeDelegate},
				{types.MsgTypeStakingUndelegate, staking.DecodeUndelegate},
				{types.MsgTypeStakingUnjail, staking.DecodeUnjail},
			},
			Handle: staking.Handle,
			BeginBlock: func(ctx *types.Context, b BlockInfo) {
				for _, a := range b.DoubleSigners {
					staking.HandleDoubleSign(ctx, a)
				}
				for _, v := range b.Votes {
					staking.HandleVote(ctx, v.Address, v.Signed)
				}
			},
			EndBlock:      staking.EndBlock,
			Params:        func(g *GenesisParams) params.Validator { return &g.Staking },
			DefaultParams: func(g *GenesisParams) { g.Staking = staking.DefaultParams() },
			Accounts:      []bank.ModuleAccount{{Name: "bonded_pool", Address: staking.BondedPool, Owed: staking.Held}},
			Invariants:    staking.CheckInvariants,
			Query:         queryStaking,
		},
	}
}

// ledger is the module table with what the app derives from it once: message routes
// and query roots.
type ledger struct {
	modules  []Module
	handlers map[types.MsgType]func(*types.Context, types.Msg) error
	queries  map[string]func(*types.Context, string) (any, error)
	accounts []bank.ModuleAccount // every module account, in name order
}

// newLedger checks the table and indexes it. A message type or query root claimed
// twice, or a module with messages and no handler, is a programming error: it panics.
func newLedger(mods []Module) *ledger {
	l := &ledger{modules: mods, handlers: map[types.MsgType]func(*types.Context, types.Msg) error{},
		queries: map[string]func(*types.Context, string) (any, error){}}
	names := map[string]bool{}
	for _, m := range mods {
		if m.Name == "" || strings.Contains(m.Name, "/") || names[m.Name] {
			panic(fmt.Sprintf("app: module name %q is empty, has a slash or is taken", m.Name))
		}
		names[m.Name] = true
		if len(m.Msgs) > 0 && m.Handle == nil {
			panic(fmt.Sprintf("app: module %s has messages and no handler", m.Name))
		}
		for _, r := range m.Msgs {
			if _, dup := l.handlers[r.Type]; dup {
				panic(fmt.Sprintf("app: message type %d registered twice", r.Type))
			}
			l.handlers[r.Type] = m.Handle
		}
		if m.Query != nil {
			l.queries[m.Name] = m.Query
		}
		l.accounts = append(l.accounts, m.Accounts...)
	}
	sortAccounts(l.accounts)
	return l
}

// registry returns the decoders of every message type in the table.
func (l *ledger) registry() *tx.Registry {
	r := tx.NewRegistry()
	for _, m := range l.modules {
		for _, mr := range m.Msgs {
			r.Register(mr.Type, mr.Decode)
		}
	}
	return r
}

// route executes msg with the module that registered its type; an unknown type is
// refused deterministically.
func (l *ledger) route(ctx *types.Context, msg types.Msg) error {
	h, ok := l.handlers[msg.Type()]
	if !ok {
		return types.Wrapf(types.ErrUnknownMsgType, "type %d", msg.Type())
	}
	return h(ctx, msg)
}

// beginBlock runs every module's BeginBlock in table order.
func (l *ledger) beginBlock(ctx *types.Context, b BlockInfo) {
	for _, m := range l.modules {
		if m.BeginBlock != nil {
			m.BeginBlock(ctx, b)
		}
	}
}

// endBlock runs every module's EndBlock in table order and returns the validator
// updates.
func (l *ledger) endBlock(ctx *types.Context) []staking.Update {
	var ups []staking.Update
	for _, m := range l.modules {
		if m.EndBlock != nil {
			ups = append(ups, m.EndBlock(ctx)...)
		}
	}
	return ups
}

// checkInvariants runs the books and every module's own checks, in table order.
func (l *ledger) checkInvariants(ctx *types.Context) error {
	if a := bank.Audit(ctx, l.accounts); !a.Conserved {
		return fmt.Errorf("%s", a.Problems[0])
	}
	for _, m := range l.modules {
		if m.Invariants == nil {
			continue
		}
		if err := m.Invariants(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ModuleInfo describes one module of the table for /app/modules: what an explorer or
// a client needs to know of the chain's modules without a build of its own.
type ModuleInfo struct {
	Name string `json:"name"`
	// Query is true when the module answers /NAME/... queries.
	Query bool `json:"query"`
	// Msgs are the module's message types.
	Msgs []types.MsgType `json:"msgs"`
}

// describe returns the table's modules, in its order.
func (l *ledger) describe() []ModuleInfo {
	out := make([]ModuleInfo, 0, len(l.modules))
	for _, m := range l.modules {
		mi := ModuleInfo{Name: m.Name, Query: m.Query != nil, Msgs: []types.MsgType{}}
		for _, r := range m.Msgs {
			mi.Msgs = append(mi.Msgs, r.Type)
		}
		out = append(out, mi)
	}
	return out
}
