package staking

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

func addr(i int) types.Address { return types.ModuleAddress(fmt.Sprint("acct", i)) }

func consKey(i int) []byte {
	s := sha256.Sum256([]byte(fmt.Sprint("cons", i)))
	return ed25519.NewKeyFromSeed(s[:]).Public().(ed25519.PublicKey)
}

func setup(t *testing.T, p Params) *types.Context {
	t.Helper()
	ctx := &types.Context{Store: store.NewMem(), Height: 1}
	if err := params.Set(ctx, ModuleName, p); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if err := bank.Mint(ctx, addr(i), types.NewCoin("ukiln", 100_000_000)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if err := CreateValidator(ctx, addr(i), consKey(i), fmt.Sprint("v", i), 10_000_000); err != nil {
			t.Fatal(err)
		}
	}
	if ups := EndBlock(ctx); len(ups) != 3 {
		t.Fatalf("initial updates = %v, want 3", ups)
	}
	return ctx
}

func power(ups []Update, pub []byte) (int64, bool) {
	for _, u := range ups {
		if string(u.PubKey) == string(pub) {
			return u.Power, true
		}
	}
	return 0, false
}

func TestDelegateUndelegateUnbonds(t *testing.T) {
	p := DefaultParams()
	p.UnbondingBlocks = 5
	ctx := setup(t, p)
	if err := Delegate(ctx, addr(0), addr(3), 5_000_000); err != nil {
		t.Fatal(err)
	}
	if pw, ok := power(EndBlock(ctx), consKey(0)); !ok || pw != 15 {
		t.Fatalf("power after delegation = %d, %v; want 15", pw, ok)
	}
	if err := Undelegate(ctx, addr(0), addr(3), 6_000_000); !errors.Is(err, types.ErrInsufficientFunds) {
		t.Fatalf("undelegating more than bonded = %v", err)
	}
	if err := Undelegate(ctx, addr(0), addr(3), 5_000_000); err != nil {
		t.Fatal(err)
	}
	before := bank.Balance(ctx, addr(3), "ukiln")
	for h := int64(2); h < 1+5; h++ {
		ctx.Height = h
		EndBlock(ctx)
		if bank.Balance(ctx, addr(3), "ukiln") != before {
			t.Fatalf("unbonded stake paid early at height %d", h)
		}
	}
	ctx.Height = 6
	EndBlock(ctx)
	if got := bank.Balance(ctx, addr(3), "ukiln"); got != before+5_000_000 {
		t.Fatalf("after the unbonding period balance = %d, want %d", got, before+5_000_000)
	}
	if err := bank.CheckInvariants(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDoubleSignSlashesBurnsAndTombstones(t *testing.T) {
	ctx := setup(t, DefaultParams())
	supply := bank.SupplyOf(ctx, "ukiln")
	HandleDoubleSign(ctx, ConsAddr(consKey(1)))
	v, _ := GetValidator(ctx, addr(1))
	if !v.Jailed || !v.Tombstoned || v.Tokens != 9_500_000 {
		t.Fatalf("after double-sign validator = %+v", v)
	}
	if got := bank.SupplyOf(ctx, "ukiln"); got != supply-500_000 {
		t.Fatalf("supply = %d, want %d (5%% burned)", got, supply-500_000)
	}
	if pw, ok := power(EndBlock(ctx), consKey(1)); !ok || pw != 0 {
		t.Fatalf("double-signer still has power %d", pw)
	}
	ctx.Height = 1 << 40
	if err := Unjail(ctx, addr(1)); !errors.Is(err, types.ErrUnauthorized) {
		t.Fatalf("Unjail of a tombstoned validator = %v", err)
	}
	HandleDoubleSign(ctx, ConsAddr(consKey(1))) // evidence seen twice slashes once
	if v2, _ := GetValidator(ctx, addr(1)); v2.Tokens != v.Tokens {
		t.Fatal("second evidence slashed again")
	}
	if err := bank.CheckInvariants(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDowntimeJailsAndUnjails(t *testing.T) {
	p := DefaultParams()
	p.SignedBlocksWindow, p.MinSignedBps, p.DowntimeJailBlocks = 10, 5000, 20
	ctx := setup(t, p)
	cons := ConsAddr(consKey(2))
	jailedAt := int64(0)
	for h := int64(2); h < 30 && jailedAt == 0; h++ {
		ctx.Height = h
		HandleVote(ctx, cons, false) // misses every block
		HandleVote(ctx, ConsAddr(consKey(0)), true)
		if v, _ := GetValidator(ctx, addr(2)); v.Jailed {
			jailedAt = h
		}
	}
	// window 10, at least 5 signed: jailed once the window is full with > 5 missed.
	if jailedAt != 11 {
		t.Fatalf("jailed at height %d, want 11", jailedAt)
	}
	v, _ := GetValidator(ctx, addr(2))
	if v.Tokens != 9_900_000 || v.JailedUntil != 31 {
		t.Fatalf("after downtime validator = %+v, want 1%% slashed and jailed until 31", v)
	}
	if v0, _ := GetValidator(ctx, addr(0)); v0.Jailed {
		t.Fatal("a validator that signed was jailed")
	}
	if pw, _ := power(EndBlock(ctx), consKey(2)); pw != 0 {
		t.Fatal("jailed validator kept its power")
	}
	if err := Unjail(ctx, addr(2)); !errors.Is(err, types.ErrUnauthorized) {
		t.Fatalf("early Unjail = %v", err)
	}
	ctx.Height = 31
	if err := Unjail(ctx, addr(2)); err != nil {
		t.Fatal(err)
	}
	if pw, ok := power(EndBlock(ctx), consKey(2)); !ok || pw != 9 {
		t.Fatalf("power after unjail = %d, %v; want 9", pw, ok)
	}
}

func TestCreateValidatorRefusals(t *testing.T) {
	ctx := setup(t, DefaultParams())
	tests := []struct {
		name string
		op   types.Address
		key  []byte
		amt  uint64
		want *types.Error
	}{
		{"operator exists", addr(0), consKey(9), 2_000_000, types.ErrAlreadyExists},
		{"consensus key taken", addr(3), consKey(1), 2_000_000, types.ErrAlreadyExists},
		{"below min self-bond", addr(3), consKey(9), 10, types.ErrInvalidMsg},
		{"cannot afford", addr(3), consKey(9), 1 << 40, types.ErrInsufficientFunds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CreateValidator(ctx, tt.op, tt.key, "x", tt.amt); !errors.Is(err, tt.want) {
				t.Fatalf("CreateValidator = %v, want %v", err, tt.want)
			}
		})
	}
}
