package escrow

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

func holdCtx(t *testing.T, p Params) *types.Context {
	t.Helper()
	ctx := testCtx(t)
	if err := params.Set(ctx, ModuleName, p); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func mustInvariants(t *testing.T, ctx *types.Context) {
	t.Helper()
	for _, check := range []func(*types.Context) error{CheckInvariants, bank.CheckInvariants} {
		if err := check(ctx); err != nil {
			t.Fatalf("height %d: %v", ctx.Height, err)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		p    Params
		want string // "" for valid
	}{
		{DefaultParams(), ""},
		{Params{ProtocolFeeBps: 50, HoldbackBps: 1000, DisputeWindowBlocks: 10}, ""},
		{Params{DisputeWindowBlocks: 10}, ""},
		{Params{HoldbackBps: 10000, DisputeWindowBlocks: 1}, ""},
		{Params{HoldbackBps: 1000}, "holdback_bps: 1000 needs dispute_window_blocks > 0"},
		{Params{HoldbackBps: 10001, DisputeWindowBlocks: 1}, "holdback_bps: must be <= 10000 (got 10001)"},
		{Params{DisputeWindowBlocks: -1}, "dispute_window_blocks: must be 0 to 1000000 (got -1)"},
		{Params{ProtocolFeeBps: 10001}, "protocol_fee_bps"},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v.Validate() = %v, want %q", tt.p, err, tt.want)
		}
	}
}

// The defaults hold back 20% of the provider's share for a 100-block dispute window
// (the verify module's checks fit in it).
func TestDefaultsHoldBack(t *testing.T) {
	p := DefaultParams()
	if p.HoldbackBps != 2000 || p.DisputeWindowBlocks != 100 || p.Validate() != nil {
		t.Fatalf("DefaultParams() = %+v (valid: %v), want 20%% held for 100 blocks", p, p.Validate())
	}
}

// With holdback_bps 0 nothing is held: every payment reaches the provider at once and
// no hold is recorded.
func TestNoHoldbackHoldsNothing(t *testing.T) {
	ctx := testCtx(t)
	owner, prov := types.Address{1}, types.Address{2}
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 10_000))
	if err := Open(ctx, 1, owner, types.NewCoin("ukiln", 10_000)); err != nil {
		t.Fatal(err)
	}
	r := Settle(ctx, 1, prov, 1000)
	if r != (Payment{OrderID: 1, Provider: prov, Denom: "ukiln", Gross: 1000, Fee: 5, ToProvider: 995}) {
		t.Fatalf("Settle = %+v", r)
	}
	if end := OpenDisputeWindow(ctx, 1, prov); end != ctx.Height {
		t.Fatalf("OpenDisputeWindow = %d, want this height %d (no window)", end, ctx.Height)
	}
	if hs := Holds(ctx, 0); len(hs) != 0 {
		t.Fatalf("holds with holdback_bps 0: %+v", hs)
	}
	if a, _ := Get(ctx, 1); a.Held != 0 || a.Paid != 995 {
		t.Fatalf("account = %+v", a)
	}
	if err := ClawBack(ctx, 1, prov, 1, owner); !errors.Is(err, types.ErrNotFound) {
		t.Fatalf("ClawBack with nothing held = %v, want ErrNotFound", err)
	}
	mustInvariants(t, ctx)
}

// Held pay waits out the window after the lease closes and is released at the end of
// its last height, never before.
func TestHoldReleasedAfterWindow(t *testing.T) {
	ctx := holdCtx(t, Params{ProtocolFeeBps: 50, HoldbackBps: 1000, DisputeWindowBlocks: 5})
	owner, prov := types.Address{1}, types.Address{2}
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 100_000))
	if err := Open(ctx, 1, owner, types.NewCoin("ukiln", 100_000)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ctx.Height++
		// 1000 less a 5 fee is 995 net; 10% of it is 99.5: 99, 100, 99 (298 = floor(298.5)).
		Settle(ctx, 1, prov, 1000)
		EndBlock(ctx)
		mustInvariants(t, ctx)
	}
	if got := bank.Balance(ctx, prov, "ukiln"); got != 3*995-298 {
		t.Fatalf("provider got %d while the lease ran, want %d", got, 3*995-298)
	}
	h, _ := GetHold(ctx, 1, prov)
	if h.Amount != 298 || h.Total != 298 || h.Rem != 5000 || h.State != HoldRunning {
		t.Fatalf("hold while running = %+v", h)
	}
	closed := ctx.Height
	if end := OpenDisputeWindow(ctx, 1, prov); end != closed+5 {
		t.Fatalf("window ends at %d, want %d", end, closed+5)
	}
	Close(ctx, 1)
	for ctx.Height < closed+5 {
		EndBlock(ctx)
		mustInvariants(t, ctx)
		if got := bank.Balance(ctx, prov, "ukiln"); got != 3*995-298 {
			t.Fatalf("held pay released at height %d, before the window's end %d", ctx.Height, closed+5)
		}
		ctx.Height++
	}
	EndBlock(ctx)
	mustInvariants(t, ctx)
	if got := bank.Balance(ctx, prov, "ukiln"); got != 3*995 {
		t.Fatalf("provider after the window = %d, want %d", got, 3*995)
	}
	a, _ := Get(ctx, 1)
	if a.Held != 0 || a.Released != 298 || a.Paid != 3*995 || a.Refunded != 100_000-3000 {
		t.Fatalf("account after release = %+v", a)
	}
	if err := ClawBack(ctx, 1, prov, 1, owner); !errors.Is(err, types.ErrInvalidRequest) || !strings.Contains(err.Error(), "closed at height") {
		t.Fatalf("ClawBack after release = %v, want ErrInvalidRequest naming the window's end", err)
	}
}

// ClawBack takes held pay to the tenant or the community pool while the window is
// open, and refuses what it cannot do, changing nothing.
func TestClawBack(t *testing.T) {
	ctx := holdCtx(t, Params{HoldbackBps: 5000, DisputeWindowBlocks: 10})
	owner, prov := types.Address{1}, types.Address{2}
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 10_000))
	if err := Open(ctx, 1, owner, types.NewCoin("ukiln", 10_000)); err != nil {
		t.Fatal(err)
	}
	Settle(ctx, 1, prov, 1000) // 500 held
	if err := ClawBack(ctx, 1, prov, 100, owner); err != nil {
		t.Fatal(err) // while the lease still runs
	}
	ctx.Height++
	OpenDisputeWindow(ctx, 1, prov)
	Close(ctx, 1)
	tests := []struct {
		name   string
		amount uint64
		to     types.Address
		want   *types.Error
	}{
		{"more than held", 401, owner, types.ErrInsufficientFunds},
		{"nothing", 0, owner, types.ErrInvalidMsg},
		{"to no one", 1, types.Address{}, types.ErrInvalidMsg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ClawBack(ctx, 1, prov, tt.amount, tt.to); !errors.Is(err, tt.want) {
				t.Fatalf("ClawBack(%d) = %v, want code %d", tt.amount, err, tt.want.Code)
			}
			if h, _ := GetHold(ctx, 1, prov); h.Amount != 400 {
				t.Fatalf("refused ClawBack left %d held, want 400", h.Amount)
			}
		})
	}
	if err := ClawBack(ctx, 2, prov, 1, owner); !errors.Is(err, types.ErrNotFound) {
		t.Fatalf("ClawBack on an unknown order = %v", err)
	}
	pool := bank.Balance(ctx, bank.CommunityPool, "ukiln")
	if err := ClawBack(ctx, 1, prov, 150, bank.CommunityPool); err != nil {
		t.Fatal(err)
	}
	if got := bank.Balance(ctx, bank.CommunityPool, "ukiln"); got != pool+150 {
		t.Fatalf("community pool %d, want %d", got, pool+150)
	}
	mustInvariants(t, ctx)
	ctx.Height += 10
	EndBlock(ctx)
	mustInvariants(t, ctx)
	a, _ := Get(ctx, 1)
	// 1000 paid: 500 at once, 500 held; 100 back to the tenant, 150 to the pool, 250 released.
	if a.ClawedBack != 250 || a.Released != 250 || a.Paid != 750 || bank.Balance(ctx, prov, "ukiln") != 750 ||
		bank.Balance(ctx, owner, "ukiln") != 9000+100 {
		t.Fatalf("account after window = %+v, provider %d, tenant %d", a, bank.Balance(ctx, prov, "ukiln"), bank.Balance(ctx, owner, "ukiln"))
	}
}

// Property: over random parameters, payments, clawbacks and closes, each lease's hold
// is the exact holdback share of its payments' provider part (each at its own rate),
// rounded down once; what the provider finally gets is that part less what was clawed
// back; every unit deposited is accounted for, and the invariants hold after every
// step.
func TestHoldbackProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 150 {
		ctx := testCtx(t)
		window := int64(1 + rng.IntN(8))
		setRates := func() {
			p := Params{ProtocolFeeBps: uint32(rng.IntN(2001)), HoldbackBps: uint32(rng.IntN(10_001)), DisputeWindowBlocks: window}
			if rng.IntN(4) == 0 {
				p.HoldbackBps = uint32(rng.IntN(3))
			}
			if err := params.Set(ctx, ModuleName, p); err != nil {
				t.Fatal(err)
			}
		}
		owner := types.Address{1}
		provs := []types.Address{{2}, {3}, {4}}
		const deposit = 1 << 40
		bank.Mint(ctx, owner, types.NewCoin("ukiln", 2*deposit))
		type lease struct {
			id        uint64
			prov      types.Address
			owed      *big.Int // Σ net × bps, in 1/10000 ukiln
			net, claw uint64
			closed    bool
		}
		var leases []*lease
		for i, p := range provs {
			id := uint64(i + 1)
			if err := Open(ctx, id, owner, types.NewCoin("ukiln", deposit/4)); err != nil {
				t.Fatal(err)
			}
			leases = append(leases, &lease{id: id, prov: p, owed: new(big.Int)})
		}
		for range 20 + rng.IntN(40) {
			ctx.Height++
			setRates()
			bps := GetParams(ctx).HoldbackBps
			for _, l := range leases {
				switch {
				case l.closed:
				case rng.IntN(12) == 0:
					OpenDisputeWindow(ctx, l.id, l.prov)
					Close(ctx, l.id)
					l.closed = true
				default:
					price := uint64(1 + rng.IntN(5))
					if rng.IntN(3) == 0 {
						price = rng.Uint64N(1 << 30)
					}
					r := Settle(ctx, l.id, l.prov, price)
					if r.Fee+r.Held+r.ToProvider != r.Gross {
						t.Fatalf("trial %d: payment %+v does not add up", trial, r)
					}
					l.net += r.Gross - r.Fee
					l.owed.Add(l.owed, new(big.Int).Mul(new(big.Int).SetUint64(r.Gross-r.Fee), big.NewInt(int64(bps))))
				}
				if h, ok := GetHold(ctx, l.id, l.prov); ok && h.State != HoldReleased && h.Amount > 0 && rng.IntN(10) == 0 {
					amt := 1 + rng.Uint64N(h.Amount)
					if err := ClawBack(ctx, l.id, l.prov, amt, owner); err != nil {
						t.Fatal(err)
					}
					l.claw += amt
				}
			}
			EndBlock(ctx)
			mustInvariants(t, ctx)
			for _, l := range leases {
				h, _ := GetHold(ctx, l.id, l.prov)
				want := new(big.Int).Quo(l.owed, big.NewInt(10_000))
				if h.Total != want.Uint64() {
					t.Fatalf("trial %d: lease %d held %d in all, want floor(%s / 10000) = %s", trial, l.id, h.Total, l.owed, want)
				}
			}
		}
		for _, l := range leases {
			if !l.closed {
				OpenDisputeWindow(ctx, l.id, l.prov)
				Close(ctx, l.id)
			}
		}
		ctx.Height += window
		EndBlock(ctx)
		mustInvariants(t, ctx)
		for _, l := range leases {
			if got := bank.Balance(ctx, l.prov, "ukiln"); got != l.net-l.claw {
				t.Fatalf("trial %d: provider of lease %d got %d, want its net %d less %d clawed back", trial, l.id, got, l.net, l.claw)
			}
		}
		if got := bank.Balance(ctx, Account, "ukiln"); got != 0 {
			t.Fatalf("trial %d: escrow module keeps %d after every account closed and every window ended", trial, got)
		}
	}
}

// KeepHeld keeps held pay past its window while a check is pending: a running lease's
// window then ends no earlier than asked, an open window is moved later (never
// earlier), and the pay is released only at the new end.
func TestKeepHeld(t *testing.T) {
	ctx := holdCtx(t, Params{ProtocolFeeBps: 50, HoldbackBps: 2000, DisputeWindowBlocks: 10})
	owner, prov := types.Address{1}, types.Address{2}
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 10_000))
	if err := Open(ctx, 1, owner, types.NewCoin("ukiln", 10_000)); err != nil {
		t.Fatal(err)
	}
	Settle(ctx, 1, prov, 1000)
	KeepHeld(ctx, 1, prov, 30)
	if end := OpenDisputeWindow(ctx, 1, prov); end != 30 {
		t.Fatalf("window of a lease kept until 30 ends at %d, want 30 (not %d)", end, ctx.Height+10)
	}
	KeepHeld(ctx, 1, prov, 20) // never shortens
	KeepHeld(ctx, 1, prov, 40)
	KeepHeld(ctx, 9, prov, 50) // no hold: nothing
	for ctx.Height = 2; ctx.Height <= 40; ctx.Height++ {
		EndBlock(ctx)
		mustInvariants(t, ctx)
		h, _ := GetHold(ctx, 1, prov)
		if released := h.State == HoldReleased; released != (ctx.Height >= 40) {
			t.Fatalf("height %d: hold %+v, want released only at 40", ctx.Height, h)
		}
	}
}
