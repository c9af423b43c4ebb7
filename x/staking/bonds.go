package staking

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

// SlashBond punishes a fault that owner committed at infractionHeight with the stake it
// bonded for purpose (a provider's or verifier's bond): it takes bps basis points
// (rounded down) of what is bonded now, and of each of owner's unbonding entries for
// purpose that began at or after infractionHeight: stake that was still bonded when the
// fault happened, as Cosmos slashes unbonding delegations. Entries that left the bond
// before the fault are untouched.
//
// The slashed stake moves from the bonded pool to the community pool (supply is
// unchanged), where the verify module pays reporters and compensates tenants from it.
// It returns the total taken: 0, and no error, when nothing bonded at the fault is left
// to take. It refuses, changing nothing, an empty purpose or reason, bps over 10000, or
// an infractionHeight that is not a past or current height (ErrInvalidRequest): those
// are the caller's bugs, reported as errors so a module can surface them.
func SlashBond(ctx *types.Context, purpose string, owner types.Address, infractionHeight int64, bps uint32, reason string) (uint64, error) {
	switch {
	case purpose == "":
		return 0, types.Wrapf(types.ErrInvalidRequest, "slash bond of %s: purpose is empty", owner)
	case reason == "":
		return 0, types.Wrapf(types.ErrInvalidRequest, "slash %s bond of %s: reason is empty", purpose, owner)
	case bps > 10000:
		return 0, types.Wrapf(types.ErrInvalidRequest, "slash %s bond of %s: %d bps is over 10000", purpose, owner, bps)
	case infractionHeight < 1 || infractionHeight > ctx.Height:
		return 0, types.Wrapf(types.ErrInvalidRequest, "slash %s bond of %s: infraction height %d is not in 1..%d", purpose, owner, infractionHeight, ctx.Height)
	}
	var p Params
	params.Get(ctx, ModuleName, &p)
	var total, fromUnbonding uint64
	if have := Bonded(ctx, purpose, owner); have > 0 {
		cut := types.MulDiv(have, uint64(bps), 10000)
		setBond(ctx, purpose, owner, have-cut)
		total += cut
	}
	// NB: collect first; the entries are rewritten below.
	prefix := ubdOwnerPrefixOf(purpose, owner)
	var keys [][]byte
	ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
		keys = append(keys, append(append([]byte{}, ubdPrefix...), k[len(prefix):]...))
		return true
	})
	for _, k := range keys {
		u, ok := getUnbonding(ctx, k)
		if !ok {
			panic(fmt.Sprintf("staking: unbonding index of %s names missing entry %x", owner, k))
		}
		if u.CreationHeight < infractionHeight {
			continue
		}
		cut := types.MulDiv(u.Amount, uint64(bps), 10000)
		if cut == 0 {
			continue
		}
		u.Amount -= cut
		u.Slashed += cut
		if u.Amount == 0 {
			deleteUnbonding(ctx, k, u)
		} else {
			setUnbonding(ctx, k, u)
		}
		total += cut
		fromUnbonding += cut
	}
	if total > 0 {
		if err := bank.Send(ctx, BondedPool, bank.CommunityPool, types.NewCoin(p.BondDenom, total)); err != nil {
			panic(fmt.Sprintf("staking: bonded pool cannot pay a slash of %d: %v", total, err))
		}
	}
	ctx.Emit("slash_bond", "owner", owner.String(), "purpose", purpose, "reason", reason,
		"infraction_height", strconv.FormatInt(infractionHeight, 10), "bps", strconv.FormatUint(uint64(bps), 10),
		"slashed", strconv.FormatUint(total, 10), "from_unbonding", strconv.FormatUint(fromUnbonding, 10))
	return total, nil
}

func setBond(ctx *types.Context, purpose string, owner types.Address, amount uint64) {
	if amount == 0 {
		ctx.Store.Delete(bondKey(purpose, owner))
		return
	}
	ctx.Store.Set(bondKey(purpose, owner), b64(amount))
}

// UnbondGuard may hold owner's bond: Unbond calls it with what would stay bonded after
// the unbonding asked for, and refuses the unbonding with the guard's error. A guard
// MUST return ErrBondLocked (wrapped with the reason: the lease, dispute or deadline
// that holds the bond and when it lets go) and MUST NOT write state.
type UnbondGuard func(ctx *types.Context, owner types.Address, remaining uint64) error

// guards is staking's table in types.Hooks: per purpose, the guards in the order they
// were registered.
type guards struct {
	byPurpose map[string][]namedGuard
}

type namedGuard struct {
	name  string
	guard UnbondGuard
}

const guardsTable = ModuleName + "/unbond_guards"

// RegisterUnbondGuard adds g, named name (for errors and duplicates), to the guards
// that Unbond asks for bonds of purpose. Guards of one purpose run in registration
// order and the first refusal wins. It panics if h is sealed or name is already
// registered for purpose: both are wiring bugs.
func RegisterUnbondGuard(h *types.Hooks, purpose, name string, g UnbondGuard) {
	h.MustBeOpen("unbond guard " + name)
	t := h.Table(guardsTable, func() any { return &guards{byPurpose: map[string][]namedGuard{}} }).(*guards)
	for _, x := range t.byPurpose[purpose] {
		if x.name == name {
			panic(fmt.Sprintf("staking: unbond guard %q registered twice for %s", name, purpose))
		}
	}
	t.byPurpose[purpose] = append(t.byPurpose[purpose], namedGuard{name, g})
}

func checkGuards(ctx *types.Context, purpose string, owner types.Address, remaining uint64) error {
	t, ok := ctx.Hooks.Lookup(guardsTable)
	if !ok {
		return nil
	}
	for _, g := range t.(*guards).byPurpose[purpose] {
		if err := g.guard(ctx, owner, remaining); err != nil {
			return err
		}
	}
	return nil
}

// CheckInvariants returns an error unless the bonded pool holds exactly the validators'
// tokens, the generic bonds and the unbonding entries; each validator's tokens equal
// its delegations; and the unbonding queue and its owner index name the same entries.
// O(validators + bonds + unbondings): for tests and audits.
func CheckInvariants(ctx *types.Context) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	var want uint64
	add := func(v uint64) error {
		s, ok := types.AddUint64(want, v)
		if !ok {
			return fmt.Errorf("staking: bonded stake overflows")
		}
		want = s
		return nil
	}
	delegated := map[types.Address]uint64{}
	for _, d := range Delegations(ctx) {
		delegated[d.Validator] += d.Amount
	}
	for _, v := range Validators(ctx) {
		if v.Tokens != delegated[v.Operator] {
			return fmt.Errorf("staking: validator %s has %d tokens, its delegations add up to %d", v.Operator, v.Tokens, delegated[v.Operator])
		}
		if err := add(v.Tokens); err != nil {
			return err
		}
	}
	var err error
	ctx.Store.Iterate(bondPrefix, func(_, v []byte) bool {
		err = add(u64(v))
		return err == nil
	})
	if err != nil {
		return err
	}
	indexed := 0
	ctx.Store.Iterate(ubdOwnerPrefix, func(_, _ []byte) bool { indexed++; return true })
	queued := 0
	ctx.Store.Iterate(ubdPrefix, func(k, v []byte) bool {
		var u Unbonding
		if err = json.Unmarshal(v, &u); err != nil {
			err = fmt.Errorf("staking: corrupt unbonding at %x: %v", k, err)
			return false
		}
		if u.Denom != p.BondDenom {
			err = fmt.Errorf("staking: unbonding of %s in %s, bond denom is %s", u.Owner, u.Denom, p.BondDenom)
			return false
		}
		if _, ok := ctx.Store.Get(append(ubdOwnerPrefixOf(u.Purpose, u.Owner), k[len(ubdPrefix):]...)); !ok {
			err = fmt.Errorf("staking: unbonding of %s (%s) at %x is missing from the owner index", u.Owner, u.Purpose, k)
			return false
		}
		queued++
		err = add(u.Amount)
		return err == nil
	})
	if err != nil {
		return err
	}
	if indexed != queued {
		return fmt.Errorf("staking: owner index names %d unbondings, the queue holds %d", indexed, queued)
	}
	if got := bank.Balance(ctx, BondedPool, p.BondDenom); got != want {
		return fmt.Errorf("staking: bonded pool holds %d%s, bonds and unbondings add up to %d", got, p.BondDenom, want)
	}
	return nil
}
