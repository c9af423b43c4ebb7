package demo

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// conserved turns false when money is created or lost between the two accountings,
// including when the supply record is unchanged (which is all the demo used to
// compare) but balances no longer add up to it.
func TestConserved(t *testing.T) {
	alice, bob := types.Address{1}, types.Address{2}
	pool := bank.ModuleAccount{Name: "pool", Address: types.Address{9}, Owed: func(*types.Context) types.Coins {
		return types.Coins{types.NewCoin("ukiln", 100)}
	}}
	// setBalance writes a balance directly, as a bug that bypasses bank would.
	setBalance := func(ctx *types.Context, a types.Address, amt uint64) {
		k := append(append([]byte("bank/bal/"), a[:]...), "ukiln"...) // NB: bank's balance key layout
		ctx.Store.Set(k, binary.BigEndian.AppendUint64(nil, amt))
	}
	tests := []struct {
		name   string
		change func(*types.Context) error
		want   string // in the problems; "" when conserved
	}{
		{"a transfer", func(ctx *types.Context) error { return bank.Send(ctx, alice, bob, types.NewCoin("ukiln", 40)) }, ""},
		{"money created in an account", func(ctx *types.Context) error { setBalance(ctx, bob, 1); return nil }, "after: supply of ukiln is 1100 but balances add up to 1101"},
		{"money lost from an account", func(ctx *types.Context) error { setBalance(ctx, alice, 999); return nil }, "after: supply of ukiln is 1100 but balances add up to 1099"},
		{"money taken from a module account", func(ctx *types.Context) error {
			return bank.Send(ctx, pool.Address, bob, types.NewCoin("ukiln", 1))
		}, "after: module account pool"},
		{"money minted", func(ctx *types.Context) error { return bank.Mint(ctx, bob, types.NewCoin("ukiln", 5)) }, "supply of ukiln went from 1100 to 1105"},
		{"a new denom minted", func(ctx *types.Context) error { return bank.Mint(ctx, bob, types.NewCoin("uusd", 5)) }, "uusd appeared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := &types.Context{Store: store.NewMem(), Height: 1}
			for _, m := range []struct {
				to  types.Address
				amt uint64
			}{{alice, 1000}, {pool.Address, 100}} {
				if err := bank.Mint(ctx, m.to, types.NewCoin("ukiln", m.amt)); err != nil {
					t.Fatal(err)
				}
			}
			before := bank.Audit(ctx, []bank.ModuleAccount{pool})
			if err := tt.change(ctx); err != nil {
				t.Fatal(err)
			}
			after := bank.Audit(ctx, []bank.ModuleAccount{pool})
			ok, problems := conserved(before, after)
			if tt.want == "" {
				if !ok || len(problems) != 0 {
					t.Fatalf("conserved = %v %q, want true", ok, problems)
				}
				return
			}
			if ok || !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Fatalf("conserved = %v %q, want false naming %q", ok, problems, tt.want)
			}
		})
	}
}
