package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/staking"
)

const testChain = "kiln-test"

type account struct {
	key  ed25519.PrivateKey
	addr types.Address
	seq  uint64
}

func newAccount(i int) *account {
	seed := sha256.Sum256([]byte(fmt.Sprint("account", i)))
	k := ed25519.NewKeyFromSeed(seed[:])
	return &account{key: k, addr: types.AddressFromPubKey(k.Public().(ed25519.PublicKey))}
}

// harness drives an App through ABCI without CometBFT.
type harness struct {
	t      testing.TB
	app    *App
	height int64
	accs   []*account
	valKey ed25519.PrivateKey
}

// testGenesis is the default genesis with nothing held back (holdback_bps 0, no
// dispute window): the market's and ledger's own arithmetic, which the tests here pin
// to the unit. Holding back and verification have their own tests (seams_test.go,
// verify_test.go), on the default parameters.
func testGenesis(accs []*account, valKey ed25519.PrivateKey, funds uint64) GenesisState {
	g := DefaultGenesis()
	// NB: these tests drive the market without provider daemons to answer challenges;
	// liveness_test.go turns them on.
	g.Params.Liveness = g.Params.Liveness.Off()
	g.Params.Escrow.HoldbackBps, g.Params.Escrow.DisputeWindowBlocks = 0, 0
	for _, a := range accs {
		g.Bank.Balances = append(g.Bank.Balances, bank.GenesisBalance{Address: a.addr, Coins: types.Coins{types.NewCoin("ukiln", funds), types.NewCoin("uusd", funds)}})
	}
	g.Staking.Validators = []staking.GenesisValidator{{Operator: accs[0].addr, ConsPubKey: valKey.Public().(ed25519.PublicKey), Moniker: "v0", Tokens: 10_000_000}}
	return g
}

func newHarness(t testing.TB, nAccounts int) *harness {
	t.Helper()
	return newHarnessWith(t, nAccounts, nil)
}

// newHarnessWith is newHarness with edit applied to the genesis state first.
func newHarnessWith(t testing.TB, nAccounts int, edit func(*GenesisState)) *harness {
	t.Helper()
	return newHarnessOpts(t, nAccounts, Options{CheckInvariants: true}, edit)
}

// newHarnessOpts is newHarnessWith with the app's options.
func newHarnessOpts(t testing.TB, nAccounts int, opts Options, edit func(*GenesisState)) *harness {
	t.Helper()
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, app: New(db, opts)}
	t.Cleanup(func() { h.app.db.Close() }) // NB: the app's db, which restart replaces
	for i := 0; i < nAccounts; i++ {
		h.accs = append(h.accs, newAccount(i))
	}
	seed := sha256.Sum256([]byte("validator"))
	h.valKey = ed25519.NewKeyFromSeed(seed[:])
	g := testGenesis(h.accs, h.valKey, 1_000_000_000)
	if edit != nil {
		edit(&g)
	}
	gb, _ := json.Marshal(g)
	res, err := h.app.InitChain(context.Background(), &abcitypes.RequestInitChain{ChainId: testChain, AppStateBytes: gb, InitialHeight: 1, Time: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Validators) != 1 || res.Validators[0].Power != 10 {
		t.Fatalf("InitChain validators = %v", res.Validators)
	}
	h.block() // commit genesis
	return h
}

func (h *harness) sign(a *account, seq uint64, fee uint64, msgs ...types.Msg) []byte {
	t, err := tx.Sign(a.key, testChain, seq, types.NewCoin("ukiln", fee), "", msgs...)
	if err != nil {
		h.t.Fatal(err)
	}
	return t.Encode()
}

func (h *harness) send(from, to *account, amount uint64) []byte {
	raw := h.sign(from, from.seq, 2000, &bank.MsgSend{From: from.addr, To: to.addr, Amount: types.Coins{types.NewCoin("ukiln", amount)}})
	return raw
}

// blockTime is the harness's time of block height: one second per block from 1970.
func blockTime(height int64) time.Time { return time.Unix(height, 0) }

// valAddr is the consensus address of the harness's only validator.
func (h *harness) valAddr() []byte { return staking.ConsAddr(h.valKey.Public().(ed25519.PublicKey)) }

// finalizeReq is the harness's FinalizeBlock request for height.
func (h *harness) finalizeReq(height int64, txs ...[]byte) *abcitypes.RequestFinalizeBlock {
	return &abcitypes.RequestFinalizeBlock{Height: height, Time: blockTime(height), Txs: txs, ProposerAddress: h.valAddr()}
}

func (h *harness) block(txs ...[]byte) *abcitypes.ResponseFinalizeBlock {
	h.t.Helper()
	h.height++
	res, err := h.app.FinalizeBlock(context.Background(), h.finalizeReq(h.height, txs...))
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.app.Commit(context.Background(), &abcitypes.RequestCommit{}); err != nil {
		h.t.Fatal(err)
	}
	return res
}

// restart closes the app's database and opens a new App on it, as a node restart does.
func (h *harness) restart() {
	h.t.Helper()
	dir := h.app.db.Dir()
	if err := h.app.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	db, err := store.Open(dir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.app = New(db, h.app.opts)
}

func (h *harness) checkTx(raw []byte) *abcitypes.ResponseCheckTx {
	res, _ := h.app.CheckTx(context.Background(), &abcitypes.RequestCheckTx{Tx: raw})
	return res
}

func (h *harness) ctx() *types.Context {
	return &types.Context{Store: h.app.db, Height: h.app.db.Height()}
}

func TestTransferCommits(t *testing.T) {
	h := newHarness(t, 2)
	a, b := h.accs[0], h.accs[1]
	before := bank.Balance(h.ctx(), b.addr, "ukiln")
	res := h.block(h.send(a, b, 12345))
	if res.TxResults[0].Code != 0 {
		t.Fatalf("transfer failed: %s", res.TxResults[0].Log)
	}
	if got := bank.Balance(h.ctx(), b.addr, "ukiln"); got != before+12345 {
		t.Fatalf("balance = %d, want %d", got, before+12345)
	}
	acc, _ := auth.Get(h.ctx(), a.addr)
	if acc.Sequence != 1 {
		t.Fatalf("sequence = %d, want 1", acc.Sequence)
	}
	// Fees: half to the proposer's operator (a), half to the community pool.
	if got := bank.Balance(h.ctx(), bank.CommunityPool, "ukiln"); got != 1000 {
		t.Fatalf("community pool = %d, want 1000", got)
	}
}

// Every refusal has its own code, and a refused tx changes nothing stored.
func TestRefusals(t *testing.T) {
	h := newHarness(t, 3)
	a, b := h.accs[0], h.accs[1]
	stranger := newAccount(999)
	good := func() []byte { return h.send(a, b, 10) }
	sendMsg := &bank.MsgSend{From: a.addr, To: b.addr, Amount: types.Coins{types.NewCoin("ukiln", 10)}}
	badSig := func() []byte {
		raw := good()
		raw[len(raw)-1] ^= 1
		return raw
	}
	wrongChain := func() []byte {
		t2, _ := tx.Sign(a.key, "other-chain", a.seq, types.NewCoin("ukiln", 2000), "", sendMsg)
		return t2.Encode()
	}
	unknownType := func() []byte {
		tr, _ := tx.Sign(a.key, testChain, a.seq, types.NewCoin("ukiln", 2000), "", sendMsg)
		tr.Body.Msgs[0].Type = 9999
		tr.Signature = ed25519.Sign(a.key, tr.Body.SignBytes())
		return tr.Encode()
	}
	tests := []struct {
		name string
		raw  func() []byte
		want *types.Error
	}{
		{"malformed", func() []byte { return []byte{1, 2, 3} }, types.ErrMalformedTx},
		{"oversized", func() []byte { return make([]byte, tx.MaxTxBytes+1) }, types.ErrTxTooLarge},
		{"bad signature", badSig, types.ErrBadSignature},
		{"wrong chain-id", wrongChain, types.ErrWrongChainID},
		{"unknown signer", func() []byte {
			return h.sign(stranger, 0, 2000, &bank.MsgSend{From: stranger.addr, To: b.addr, Amount: types.Coins{types.NewCoin("ukiln", 1)}})
		}, types.ErrUnknownSigner},
		{"replayed sequence", func() []byte { return h.sign(a, a.seq-1, 2000, sendMsg) }, types.ErrSequenceReplayed},
		{"out-of-order sequence", func() []byte { return h.sign(a, a.seq+5, 2000, sendMsg) }, types.ErrSequenceOutOfOrder},
		{"fee too low", func() []byte { return h.sign(a, a.seq, 1, sendMsg) }, types.ErrFeeTooLow},
		{"fee in wrong denom", func() []byte {
			t2, _ := tx.Sign(a.key, testChain, a.seq, types.NewCoin("uusd", 5000), "", sendMsg)
			return t2.Encode()
		}, types.ErrFeeTooLow},
		{"insufficient funds", func() []byte {
			return h.sign(a, a.seq, 2000, &bank.MsgSend{From: a.addr, To: b.addr, Amount: types.Coins{types.NewCoin("ukiln", 1<<62)}})
		}, types.ErrInsufficientFunds},
		{"unknown message type", unknownType, types.ErrUnknownMsgType},
		{"invalid message", func() []byte {
			return h.sign(a, a.seq, 2000, &bank.MsgSend{From: a.addr, To: b.addr, Amount: types.Coins{types.NewCoin("ukiln", 0)}})
		}, types.ErrInvalidMsg},
		{"message signed by someone else", func() []byte {
			return h.sign(b, b.seq, 2000, sendMsg)
		}, types.ErrWrongSigner},
	}
	// Use up sequence 0 so that "replayed" has something to replay.
	if r := h.block(good()); r.TxResults[0].Code != 0 {
		t.Fatal(r.TxResults[0].Log)
	}
	a.seq++
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.raw()
			if c := h.checkTx(raw); c.Code != tt.want.Code {
				t.Fatalf("CheckTx code = %d (%s), want %d", c.Code, c.Log, tt.want.Code)
			}
			hashBefore := h.app.AppHash()
			supply := bank.Supply(h.ctx())
			balA := bank.Balances(h.ctx(), a.addr)
			res := h.block(raw)
			r := res.TxResults[0]
			if r.Code != tt.want.Code || r.Codespace != types.Codespace || r.Log == "" {
				t.Fatalf("FinalizeBlock code = %d (%q), want %d", r.Code, r.Log, tt.want.Code)
			}
			if tt.want != types.ErrInsufficientFunds {
				// nothing stored changed but the empty block's bookkeeping
				if fmt.Sprint(bank.Balances(h.ctx(), a.addr)) != fmt.Sprint(balA) {
					t.Fatalf("refused tx changed the signer's balances")
				}
			}
			if fmt.Sprint(bank.Supply(h.ctx())) != fmt.Sprint(supply) {
				t.Fatal("refused tx changed supply")
			}
			_ = hashBefore
			acc, _ := auth.Get(h.ctx(), a.addr)
			a.seq = acc.Sequence
			b2, _ := auth.Get(h.ctx(), b.addr)
			b.seq = b2.Sequence
		})
	}
}

func TestCheckTxPipelinesSequences(t *testing.T) {
	h := newHarness(t, 2)
	a, b := h.accs[0], h.accs[1]
	var txs [][]byte
	for i := 0; i < 5; i++ {
		raw := h.send(a, b, 1)
		a.seq++
		if c := h.checkTx(raw); c.Code != 0 {
			t.Fatalf("CheckTx #%d: %s", i, c.Log)
		}
		txs = append(txs, raw)
	}
	res := h.block(txs...)
	for i, r := range res.TxResults {
		if r.Code != 0 {
			t.Fatalf("tx %d: %s", i, r.Log)
		}
	}
	// After Commit the check state is the committed state: seq 5 is next.
	if c := h.checkTx(h.send(a, b, 1)); c.Code != 0 {
		t.Fatalf("CheckTx after commit: %s", c.Log)
	}
}

func TestFailedMessageStillPaysFee(t *testing.T) {
	h := newHarness(t, 2)
	a, b := h.accs[0], h.accs[1]
	before := bank.Balance(h.ctx(), a.addr, "ukiln")
	raw := h.sign(a, 0, 3000, &bank.MsgSend{From: a.addr, To: b.addr, Amount: types.Coins{types.NewCoin("ukiln", 1<<62)}})
	res := h.block(raw)
	if res.TxResults[0].Code != types.CodeInsufficientFunds {
		t.Fatalf("code = %d", res.TxResults[0].Code)
	}
	acc, _ := auth.Get(h.ctx(), a.addr)
	if acc.Sequence != 1 {
		t.Fatalf("sequence = %d, want 1 (used by the failed tx)", acc.Sequence)
	}
	// a is also the proposer's operator and gets half the fee back.
	if got := bank.Balance(h.ctx(), a.addr, "ukiln"); got != before-1500 {
		t.Fatalf("balance = %d, want %d", got, before-1500)
	}
}

// randomBlocks returns blocks of random transactions, valid and invalid, over accs.
func randomBlocks(h *harness, r *rand.Rand, nTx, perBlock int) [][][]byte {
	var blocks [][][]byte
	var cur [][]byte
	for i := 0; i < nTx; i++ {
		from := h.accs[r.Intn(len(h.accs))]
		to := h.accs[r.Intn(len(h.accs))]
		denom := []string{"ukiln", "uusd"}[r.Intn(2)]
		amt := uint64(r.Int63n(200_000_000)) // sometimes more than the balance
		seq := from.seq
		if r.Intn(20) == 0 {
			seq += uint64(r.Intn(3)) // sometimes out of order
		}
		fee := uint64(2000)
		if r.Intn(30) == 0 {
			fee = 10
		}
		raw := h.sign(from, seq, fee, &bank.MsgSend{From: from.addr, To: to.addr, Amount: types.Coins{types.NewCoin(denom, amt)}})
		if seq == from.seq && fee >= 2000 {
			from.seq++ // the ante passes whenever the fee is payable, which it always is here
		}
		cur = append(cur, raw)
		if len(cur) == perBlock {
			blocks = append(blocks, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	return blocks
}

// Property: over 10,000 random transactions, supply per denom is conserved after every
// block, no balance goes negative (balances are unsigned and Send refuses overdrafts;
// the invariant walk checks they add up), and two apps fed the same blocks agree on
// every app hash.
func TestRandomTransfersConserveSupplyAndAgree(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 2_000
	}
	h1 := newHarness(t, 50)
	h2 := newHarness(t, 50)
	r := rand.New(rand.NewSource(42))
	blocks := randomBlocks(h1, r, n, 100)
	supply0 := fmt.Sprint(bank.Supply(h1.ctx()))
	okCount := 0
	for i, blk := range blocks {
		r1 := h1.block(blk...)
		r2 := h2.block(blk...)
		if !bytes.Equal(r1.AppHash, r2.AppHash) {
			t.Fatalf("block %d: app hashes differ: %x vs %x", i+1, r1.AppHash, r2.AppHash)
		}
		for j := range r1.TxResults {
			if r1.TxResults[j].Code != r2.TxResults[j].Code {
				t.Fatalf("block %d tx %d: codes differ", i+1, j)
			}
			if r1.TxResults[j].Code == 0 {
				okCount++
			}
		}
		if got := fmt.Sprint(bank.Supply(h1.ctx())); got != supply0 {
			t.Fatalf("block %d: supply %s, want %s", i+1, got, supply0)
		}
		if err := bank.CheckInvariants(h1.ctx()); err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
	}
	if okCount < n/4 {
		t.Fatalf("only %d of %d txs succeeded; the generator is too hostile to test transfers", okCount, n)
	}
	if got := h1.app.db.Recompute(); !bytes.Equal(got, h1.app.AppHash()) {
		t.Fatalf("incremental app hash %x differs from a full recomputation %x", h1.app.AppHash(), got)
	}
}

func TestGenesisRefusesUnknownField(t *testing.T) {
	_, err := ParseGenesis([]byte(`{"params":{"bank":{"fee_proposer_bp":1}}}`))
	if err == nil {
		t.Fatal("ParseGenesis accepted a misspelt parameter")
	}
}

func TestQueries(t *testing.T) {
	h := newHarness(t, 2)
	h.block()
	for _, path := range []string{"/bank/balances/" + h.accs[0].addr.String(), "/bank/supply", "/staking/validators", "/params", "/registry/providers", "/auth/account/" + h.accs[1].addr.String()} {
		res, _ := h.app.Query(context.Background(), &abcitypes.RequestQuery{Path: path})
		if res.Code != 0 || !json.Valid(res.Value) {
			t.Fatalf("Query(%s) = %d %s", path, res.Code, res.Log)
		}
	}
	for _, path := range []string{"/bank/balances/notanaddress", "/nope"} {
		res, _ := h.app.Query(context.Background(), &abcitypes.RequestQuery{Path: path})
		if res.Code != types.CodeInvalidRequest {
			t.Fatalf("Query(%s) code = %d, want %d", path, res.Code, types.CodeInvalidRequest)
		}
	}
	_ = errors.New
}
