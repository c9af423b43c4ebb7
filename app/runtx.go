package app

import (
	"fmt"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

// maxVerified bounds the signature cache; when full it is dropped and refilled.
const maxVerified = 1 << 17

// TxResult is the outcome of one transaction.
type TxResult struct {
	Code      uint32
	Log       string
	Codespace string
	Events    []abcitypes.Event
}

func fail(err error) TxResult {
	return TxResult{Code: types.CodeOf(err), Log: err.Error(), Codespace: types.Codespace}
}

// runTx checks and executes raw against ctx.Store, writing into it only what the
// contracts in the package doc allow.
func (a *App) runTx(ctx *types.Context, raw []byte) TxResult {
	t, msgs, err := a.decode(raw)
	if err != nil {
		return fail(err)
	}
	ante := store.NewCache(ctx.Store)
	actx := ctx.WithStore(ante)
	if err := a.ante(actx, t, raw); err != nil {
		return fail(err)
	}
	exec := store.NewCache(ante)
	ectx := ctx.WithStore(exec)
	for i, m := range msgs {
		if err := a.l.route(ectx, m); err != nil {
			if ctx.CheckTx {
				// NB: the mempool keeps only txs that would fully succeed now.
				return fail(err)
			}
			ante.Write()
			r := fail(fmt.Errorf("message %d: %w", i, err))
			r.Code = types.CodeOf(err)
			r.Events = toABCIEvents(actx.Events())
			return r
		}
	}
	exec.Write()
	ante.Write()
	if ctx.CheckTx {
		return TxResult{} // events are for blocks; CheckTx skips building them
	}
	evs := append(actx.Events(), ectx.Events()...)
	return TxResult{Events: toABCIEvents(evs)}
}

// decode parses the envelope and every message, and checks what needs no state.
func (a *App) decode(raw []byte) (*tx.Tx, []types.Msg, error) {
	t, err := tx.Decode(raw)
	if err != nil {
		return nil, nil, err
	}
	signer := t.Signer()
	msgs := make([]types.Msg, 0, len(t.Body.Msgs))
	for i, rm := range t.Body.Msgs {
		m, err := a.reg.DecodeMsg(rm)
		if err != nil {
			return nil, nil, err
		}
		if err := m.ValidateBasic(); err != nil {
			return nil, nil, fmt.Errorf("message %d: %w", i, err)
		}
		if m.Signer() != signer {
			return nil, nil, types.Wrapf(types.ErrWrongSigner, "message %d is from %s, the tx is signed by %s", i, m.Signer(), signer)
		}
		msgs = append(msgs, m)
	}
	return t, msgs, nil
}

// ante runs the checks every tx must pass before its messages run, then takes the fee
// and uses the sequence.
func (a *App) ante(ctx *types.Context, t *tx.Tx, raw []byte) error {
	if t.Body.ChainID != a.chainID {
		return types.Wrapf(types.ErrWrongChainID, "tx is for chain %q, this chain is %q", t.Body.ChainID, a.chainID)
	}
	signer := t.Signer()
	acc, ok := auth.Get(ctx, signer)
	if !ok {
		return types.Wrapf(types.ErrUnknownSigner, "account %s does not exist on chain (it has never received funds)", signer)
	}
	if !a.verifySig(t, raw) {
		return types.Wrapf(types.ErrBadSignature, "signature does not verify for %s over this tx", signer)
	}
	switch {
	case t.Body.Sequence < acc.Sequence:
		return types.Wrapf(types.ErrSequenceReplayed, "account %s is at sequence %d, tx has %d", signer, acc.Sequence, t.Body.Sequence)
	case t.Body.Sequence > acc.Sequence:
		return types.Wrapf(types.ErrSequenceOutOfOrder, "account %s is at sequence %d, tx has %d (an earlier tx is missing)", signer, acc.Sequence, t.Body.Sequence)
	}
	var ap auth.Params
	params.Get(ctx, auth.ModuleName, &ap)
	if t.Body.Fee.Denom != ap.FeeDenom {
		return types.Wrapf(types.ErrFeeTooLow, "fee must be paid in %s (got %q)", ap.FeeDenom, t.Body.Fee.Denom)
	}
	if min := ap.MinFee(len(raw)); t.Body.Fee.Amount < min {
		return types.Wrapf(types.ErrFeeTooLow, "fee %s is below the minimum %d%s for a %d-byte tx", t.Body.Fee, min, ap.FeeDenom, len(raw))
	}
	if err := bank.Send(ctx, signer, bank.FeeCollector, t.Body.Fee); err != nil {
		return types.Wrapf(types.ErrInsufficientFunds, "cannot pay fee %s: %v", t.Body.Fee, err)
	}
	acc.Sequence++
	auth.Set(ctx, acc)
	return nil
}

// preverify checks the signature of a well-formed tx and caches the result, so that
// the locked part of CheckTx finds it verified.
func (a *App) preverify(raw []byte) {
	if t, err := tx.Decode(raw); err == nil {
		a.verifySig(t, raw)
	}
}

// verifySig checks the signature, remembering txs already verified (CheckTx, recheck
// and FinalizeBlock see the same bytes). The result depends only on the bytes, so the
// cache cannot change any outcome.
func (a *App) verifySig(t *tx.Tx, raw []byte) bool {
	h := tx.Hash(raw)
	a.sigMu.Lock()
	_, ok := a.verified[h]
	a.sigMu.Unlock()
	if ok {
		return true
	}
	if !t.VerifySignature() {
		return false
	}
	a.sigMu.Lock()
	if len(a.verified) >= maxVerified {
		a.verified = map[[32]byte]struct{}{}
	}
	a.verified[h] = struct{}{}
	a.sigMu.Unlock()
	return true
}
