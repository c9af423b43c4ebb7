package staking

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

const prov = "provider"

// bondSetup bonds 1000 for addr(3) as a provider at height 1, unbonds 100 at height 10
// and 200 at height 20, and leaves the context at height 25.
func bondSetup(t *testing.T) *types.Context {
	t.Helper()
	p := DefaultParams()
	p.UnbondingBlocks = 100
	ctx := setup(t, p)
	if err := Bond(ctx, prov, addr(3), 1000); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		h   int64
		amt uint64
	}{{10, 100}, {20, 200}} {
		ctx.Height = u.h
		if err := Unbond(ctx, prov, addr(3), u.amt); err != nil {
			t.Fatal(err)
		}
	}
	ctx.Height = 25
	mustInvariants(t, ctx)
	return ctx
}

func mustInvariants(t *testing.T, ctx *types.Context) {
	t.Helper()
	for _, check := range []func(*types.Context) error{CheckInvariants, bank.CheckInvariants} {
		if err := check(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// unbondingAmounts lists addr(3)'s provider unbondings as (creation height, amount,
// slashed) triples, in completion order.
func unbondingAmounts(ctx *types.Context) [][3]uint64 {
	var out [][3]uint64
	for _, u := range Unbondings(ctx) {
		if u.Owner == addr(3) && u.Purpose == prov {
			out = append(out, [3]uint64{uint64(u.CreationHeight), u.Amount, u.Slashed})
		}
	}
	return out
}

// SlashBond takes its share of the bond and of every unbonding entry that began at or
// after the fault, leaves older entries alone, moves the stake to the community pool
// with supply unchanged, and what matures afterwards is the slashed amount.
func TestSlashBond(t *testing.T) {
	tests := []struct {
		name       string
		infraction int64
		bps        uint32
		want       uint64      // slashed in total
		bonded     uint64      // left bonded
		unbonding  [][3]uint64 // (creation height, amount, slashed) after
	}{
		{"fault before both unbondings", 5, 1000, 70 + 10 + 20, 630, [][3]uint64{{10, 90, 10}, {20, 180, 20}}},
		{"fault between them", 15, 1000, 70 + 20, 630, [][3]uint64{{10, 100, 0}, {20, 180, 20}}},
		{"fault at the second's height", 20, 1000, 70 + 20, 630, [][3]uint64{{10, 100, 0}, {20, 180, 20}}},
		{"fault after both", 21, 1000, 70, 630, [][3]uint64{{10, 100, 0}, {20, 200, 0}}},
		{"everything", 1, 10000, 1000, 0, nil},
		{"nothing", 1, 0, 0, 700, [][3]uint64{{10, 100, 0}, {20, 200, 0}}},
		{"rounds down", 21, 1, 0, 700, [][3]uint64{{10, 100, 0}, {20, 200, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := bondSetup(t)
			supply, pool := bank.SupplyOf(ctx, "ukiln"), bank.Balance(ctx, bank.CommunityPool, "ukiln")
			got, err := SlashBond(ctx, prov, addr(3), tt.infraction, tt.bps, "test_fault")
			if err != nil || got != tt.want {
				t.Fatalf("SlashBond(infraction %d, %d bps) = %d, %v; want %d", tt.infraction, tt.bps, got, err, tt.want)
			}
			if b := Bonded(ctx, prov, addr(3)); b != tt.bonded {
				t.Fatalf("bonded after = %d, want %d", b, tt.bonded)
			}
			if u := unbondingAmounts(ctx); len(u) != len(tt.unbonding) || len(u) > 0 && !equal(u, tt.unbonding) {
				t.Fatalf("unbondings after = %v, want %v", u, tt.unbonding)
			}
			if s := bank.SupplyOf(ctx, "ukiln"); s != supply {
				t.Fatalf("supply %d, want %d unchanged", s, supply)
			}
			if p := bank.Balance(ctx, bank.CommunityPool, "ukiln"); p != pool+tt.want {
				t.Fatalf("community pool %d, want %d", p, pool+tt.want)
			}
			mustInvariants(t, ctx)
			// What matures is what is left.
			before := bank.Balance(ctx, addr(3), "ukiln")
			ctx.Height = 120
			EndBlock(ctx)
			var left uint64
			for _, u := range tt.unbonding {
				left += u[1]
			}
			if got := bank.Balance(ctx, addr(3), "ukiln"); got != before+left {
				t.Fatalf("matured unbondings paid %d, want %d", got-before, left)
			}
			mustInvariants(t, ctx)
		})
	}
}

func equal(a, b [][3]uint64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A bad slash request names what is wrong and changes nothing.
func TestSlashBondRefusals(t *testing.T) {
	tests := []struct {
		name       string
		purpose    string
		infraction int64
		bps        uint32
		reason     string
		wantErr    string
	}{
		{"no purpose", "", 5, 100, "x", "purpose is empty"},
		{"no reason", prov, 5, 100, "", "reason is empty"},
		{"over 100%", prov, 5, 10001, "x", "10001 bps"},
		{"infraction at 0", prov, 0, 100, "x", "infraction height 0"},
		{"infraction in the future", prov, 26, 100, "x", "infraction height 26 is not in 1..25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := bondSetup(t)
			n, err := SlashBond(ctx, tt.purpose, addr(3), tt.infraction, tt.bps, tt.reason)
			if !errors.Is(err, types.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) || n != 0 {
				t.Fatalf("SlashBond = %d, %v; want ErrInvalidRequest naming %q", n, err, tt.wantErr)
			}
			if b, u := Bonded(ctx, prov, addr(3)), unbondingAmounts(ctx); b != 700 || !equal(u, [][3]uint64{{10, 100, 0}, {20, 200, 0}}) {
				t.Fatalf("refused slash changed state: bonded %d, unbondings %v", b, u)
			}
		})
	}
	ctx := bondSetup(t)
	if n, err := SlashBond(ctx, "verifier", addr(3), 5, 100, "x"); n != 0 || err != nil {
		t.Fatalf("slashing a purpose with nothing bonded = %d, %v; want 0, nil", n, err)
	}
}

// Guards run in registration order, the first refusal wins, and a refused Unbond
// changes nothing; guards of other purposes are not asked.
func TestUnbondGuards(t *testing.T) {
	ctx := bondSetup(t)
	h := types.NewHooks()
	var calls []string
	lockBelow := func(name string, min uint64) UnbondGuard {
		return func(_ *types.Context, owner types.Address, remaining uint64) error {
			calls = append(calls, name)
			if remaining < min {
				return types.Wrapf(types.ErrBondLocked, "%s holds %s above %d", name, owner, min)
			}
			return nil
		}
	}
	RegisterUnbondGuard(h, prov, "first", lockBelow("first", 300))
	RegisterUnbondGuard(h, prov, "second", lockBelow("second", 600))
	RegisterUnbondGuard(h, "verifier", "other", lockBelow("other", 1<<60))
	h.Seal()
	ctx.Hooks = h
	tests := []struct {
		amount    uint64
		wantErr   string // "" for allowed
		wantCalls []string
	}{
		{500, "first holds", []string{"first"}},            // 200 left
		{200, "second holds", []string{"first", "second"}}, // 500 left
		{100, "", []string{"first", "second"}},             // 600 left
	}
	for _, tt := range tests {
		calls = nil
		before := Bonded(ctx, prov, addr(3))
		err := Unbond(ctx, prov, addr(3), tt.amount)
		switch {
		case tt.wantErr == "" && err != nil, tt.wantErr != "" && (!errors.Is(err, types.ErrBondLocked) || !strings.Contains(err.Error(), tt.wantErr)):
			t.Fatalf("Unbond(%d) = %v, want %q", tt.amount, err, tt.wantErr)
		case strings.Join(calls, ",") != strings.Join(tt.wantCalls, ","):
			t.Fatalf("Unbond(%d) asked %v, want %v", tt.amount, calls, tt.wantCalls)
		case err != nil && Bonded(ctx, prov, addr(3)) != before:
			t.Fatalf("refused Unbond(%d) changed the bond", tt.amount)
		}
	}
	mustInvariants(t, ctx)
	for _, f := range []func(){
		func() {
			RegisterUnbondGuard(types.NewHooks(), prov, "a", nil)
			RegisterUnbondGuard(h, prov, "late", nil)
		},
		func() {
			h2 := types.NewHooks()
			RegisterUnbondGuard(h2, prov, "a", nil)
			RegisterUnbondGuard(h2, prov, "a", nil)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("registering after Seal, or twice, did not panic")
				}
			}()
			f()
		}()
	}
}

// The invariant catches stake the bonds do not account for, and an unbonding missing
// from its owner index.
func TestStakingInvariantsCatchDrift(t *testing.T) {
	ctx := bondSetup(t)
	if err := bank.Mint(ctx, BondedPool, types.NewCoin("ukiln", 1)); err != nil {
		t.Fatal(err)
	}
	if err := CheckInvariants(ctx); err == nil || !strings.Contains(err.Error(), "bonded pool holds") {
		t.Fatalf("CheckInvariants with 1 ukiln too many = %v", err)
	}
	ctx = bondSetup(t)
	var first []byte
	ctx.Store.Iterate(ubdOwnerPrefix, func(k, _ []byte) bool { first = k; return false })
	ctx.Store.Delete(first)
	if err := CheckInvariants(ctx); err == nil || !strings.Contains(err.Error(), "owner index") {
		t.Fatalf("CheckInvariants with an index entry gone = %v", err)
	}
}
