package verify

import (
	"encoding/binary"
	"fmt"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// Wire registers what verify adds to other modules at app start: its market hooks
// (what each lease paid, for refunds), the fraud close reason (held pay back to the
// tenant at once, no redeploy to the cheat), and the guard that locks a provider's
// bond while work it committed is being checked or challenged; and the chain's own
// check of matmul units.
func Wire(h *types.Hooks) {
	market.RegisterHooks(h, ModuleName, hooks{})
	market.RegisterReason(h, market.Reason{Name: ReasonFraud, RefundHeld: true})
	staking.RegisterUnbondGuard(h, registry.BondPurpose, ModuleName, providerGuard)
	RegisterDirect(h, matmul.Kind, matmulCheck)
}

type hooks struct{ market.BaseHooks }

// PaymentMade adds p to what l has paid.
func (hooks) PaymentMade(ctx *types.Context, l market.Lease, p escrow.Payment) {
	pd := getPaid(ctx, l.ID, l.Attempt)
	pd.Gross += p.Gross
	pd.Fees += p.Fee
	setJSON(ctx, paidKey(l.ID, l.Attempt), pd)
}

// providerGuard refuses any unbonding of a provider's stake while a commitment of its
// awaits its verdict or a challenge of it is open: the stake a fraud verdict slashes
// must still be bonded.
func providerGuard(ctx *types.Context, owner types.Address, _ uint64) error {
	prefix := append(append([]byte{}, openPrefix...), owner[:]...)
	var id uint64
	ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
		id = binary.BigEndian.Uint64(k[len(prefix):])
		return false
	})
	if id == 0 {
		return nil
	}
	c, _ := GetCommitment(ctx, id)
	return types.Wrapf(types.ErrBondLocked, "provider %s's commitment %d (lease %d) is %s: its bond cannot be unbonded until it is verified or its challenge decided",
		owner, id, c.LeaseID, c.State)
}

// Deposits returns the tenants' dispute deposits the verify account holds: those of
// challenges a committee has not yet decided.
func Deposits(ctx *types.Context) types.Coins {
	p := GetParams(ctx)
	var sum uint64
	ctx.Store.Iterate(openChPrefix, func(k, _ []byte) bool {
		ch := mustChallenge(ctx, binary.BigEndian.Uint64(k[len(openChPrefix):]))
		sum += ch.Deposit
		return true
	})
	if sum == 0 {
		return types.Coins{}
	}
	return types.Coins{types.NewCoin(p.Denom, sum)}
}

// CheckInvariants returns an error unless every due-queue entry and open index names a
// record in the state it says, and every open challenge is still undecided.
func CheckInvariants(ctx *types.Context) error {
	var err error
	ctx.Store.Iterate(duePrefix, func(k, _ []byte) bool {
		kind := k[len(duePrefix)+8]
		id := binary.BigEndian.Uint64(k[len(duePrefix)+9:])
		switch kind {
		case dueSample, dueVerdict:
			if _, ok := GetCommitment(ctx, id); !ok {
				err = fmt.Errorf("verify: due queue names missing commitment %d", id)
			}
		case dueDraw, dueVote:
			if _, ok := GetChallenge(ctx, id); !ok {
				err = fmt.Errorf("verify: due queue names missing challenge %d", id)
			}
		default:
			err = fmt.Errorf("verify: due queue entry %x of unknown kind %d", k, kind)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	ctx.Store.Iterate(openChPrefix, func(k, _ []byte) bool {
		id := binary.BigEndian.Uint64(k[len(openChPrefix):])
		ch, ok := GetChallenge(ctx, id)
		switch {
		case !ok:
			err = fmt.Errorf("verify: open challenge %d is missing", id)
		case ch.State != ChallengeDrawing && ch.State != ChallengeVoting:
			err = fmt.Errorf("verify: challenge %d is indexed open but %s", id, ch.State)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	ctx.Store.Iterate(openPrefix, func(k, _ []byte) bool {
		id := binary.BigEndian.Uint64(k[len(openPrefix)+types.AddressLen:])
		c, ok := GetCommitment(ctx, id)
		switch {
		case !ok:
			err = fmt.Errorf("verify: open index names missing commitment %d", id)
		case c.State != CommitPending && c.State != CommitAssigned && c.State != CommitDisputed:
			err = fmt.Errorf("verify: commitment %d is indexed open but %s", id, c.State)
		}
		return err == nil
	})
	return err
}
