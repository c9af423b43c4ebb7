package escrow

import (
	"bytes"
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

// testCtx has the default protocol fee and nothing held back (holdback_bps 0): the
// fee and pay arithmetic alone; hold_test.go covers holding back.
func testCtx(t *testing.T) *types.Context {
	t.Helper()
	ctx := &types.Context{Store: store.NewMem(), Height: 1}
	if err := params.Set(ctx, ModuleName, Params{ProtocolFeeBps: DefaultParams().ProtocolFeeBps}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// Pay splits each payment into fee and provider share, and a short account pays what
// it has and says so; Close refunds the rest. Money is conserved throughout.
func TestPayAndClose(t *testing.T) {
	ctx := testCtx(t)
	owner, prov := types.Address{1}, types.Address{2}
	if err := bank.Mint(ctx, owner, types.NewCoin("ukiln", 10_000)); err != nil {
		t.Fatal(err)
	}
	if err := Open(ctx, 7, owner, types.NewCoin("ukiln", 2_500)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		price, wantPaid uint64
		wantExhausted   bool
	}{{1000, 1000, false}, {1000, 1000, false}, {1000, 500, true}, {1000, 0, true}}
	for i, tt := range tests {
		paid, ex := Pay(ctx, 7, prov, tt.price)
		if paid != tt.wantPaid || ex != tt.wantExhausted {
			t.Fatalf("Pay #%d = %d, %v, want %d, %v", i, paid, ex, tt.wantPaid, tt.wantExhausted)
		}
		if err := CheckInvariants(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 0.5% of 1000 is 5; of 500 it is 2.5: 3 now, with half a ukiln credited.
	if got := bank.Balance(ctx, bank.CommunityPool, "ukiln"); got != 13 {
		t.Fatalf("community pool = %d, want 13", got)
	}
	if got := bank.Balance(ctx, prov, "ukiln"); got != 2500-13 {
		t.Fatalf("provider = %d, want %d", got, 2500-13)
	}
	if a, _ := Get(ctx, 7); a.FeeCredit != 5000 {
		t.Fatalf("fee credit = %d, want 5000 (half a ukiln)", a.FeeCredit)
	}
	if r := Close(ctx, 7); r != 0 {
		t.Fatalf("Close refunded %d of an empty account", r)
	}
	if err := Deposit(ctx, 7, owner, types.NewCoin("ukiln", 1)); !errors.Is(err, types.ErrOrderClosed) {
		t.Fatalf("Deposit on closed account = %v, want ErrOrderClosed", err)
	}
}

func TestDepositRefusals(t *testing.T) {
	ctx := testCtx(t)
	owner := types.Address{1}
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 100))
	bank.Mint(ctx, types.Address{9}, types.NewCoin("ukiln", 100))
	if err := Open(ctx, 1, owner, types.NewCoin("ukiln", 50)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		id   uint64
		from types.Address
		amt  types.Coin
		want *types.Error
	}{
		{"unknown order", 2, owner, types.NewCoin("ukiln", 1), types.ErrNotFound},
		{"not the owner", 1, types.Address{9}, types.NewCoin("ukiln", 1), types.ErrUnauthorized},
		{"wrong denom", 1, owner, types.NewCoin("uusd", 1), types.ErrInvalidMsg},
		{"overdraft", 1, owner, types.NewCoin("ukiln", 51), types.ErrInsufficientFunds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Deposit(ctx, tt.id, tt.from, tt.amt); !errors.Is(err, tt.want) {
				t.Fatalf("Deposit = %v, want code %d", err, tt.want.Code)
			}
		})
	}
	if err := Deposit(ctx, 1, owner, types.NewCoin("ukiln", 50)); err != nil {
		t.Fatal(err)
	}
	if a, _ := Get(ctx, 1); a.Balance != 100 || a.Deposited != 100 {
		t.Fatalf("account = %+v, want balance 100", a)
	}
	if err := CheckInvariants(ctx); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodeDeposit: whatever decodes re-encodes to the same bytes.
func FuzzDecodeDeposit(f *testing.F) {
	w := codec.NewWriter(64)
	(&MsgDeposit{Owner: types.Address{1}, OrderID: 3, Amount: types.NewCoin("ukiln", 5)}).MarshalTo(w)
	f.Add(w.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := codec.NewReader(b)
		m := DecodeDeposit(r)
		if r.Done() != nil {
			return
		}
		w := codec.NewWriter(len(b))
		m.MarshalTo(w)
		if !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("re-encoding %x gave %x", b, w.Bytes())
		}
		_ = m.ValidateBasic()
	})
}

// A lease paid 1 ukiln per block pays the rate like any other: 0.5% of 400
// blocks is 2 ukiln (1 at the first block, credited for 199 more), and its
// provider gets the other 398. A one-block lease still pays 1.
func TestFeeOfCheapLease(t *testing.T) {
	ctx := testCtx(t)
	owner, prov := types.Address{1}, types.Address{2}
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 1_000))
	if err := Open(ctx, 1, owner, types.NewCoin("ukiln", 1_000)); err != nil {
		t.Fatal(err)
	}
	for range 400 {
		Pay(ctx, 1, prov, 1)
	}
	a, _ := Get(ctx, 1)
	if a.Fees != 2 || a.Paid != 398 || bank.Balance(ctx, prov, "ukiln") != 398 {
		t.Fatalf("after 400 blocks at 1 ukiln: fees %d, paid %d, provider %d; want 2, 398, 398",
			a.Fees, a.Paid, bank.Balance(ctx, prov, "ukiln"))
	}
}

// Property: over random payments, with the rate changed between them, an
// account's fees are the exact sum of what each payment owes at its rate,
// rounded up once; no payment's fee exceeds it; money is conserved.
func TestFeesExactProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 200 {
		ctx := testCtx(t)
		owner, prov := types.Address{1}, types.Address{2}
		const deposit = 1 << 40
		bank.Mint(ctx, owner, types.NewCoin("ukiln", deposit))
		if err := Open(ctx, 1, owner, types.NewCoin("ukiln", deposit)); err != nil {
			t.Fatal(err)
		}
		owed := new(big.Int) // Σ paid × bps, in 1/10000 ukiln
		for range 1 + rng.IntN(60) {
			p := Params{ProtocolFeeBps: uint32(rng.IntN(10_001))}
			if rng.IntN(4) == 0 {
				p.ProtocolFeeBps = uint32(rng.IntN(3))
			}
			if err := params.Set(ctx, ModuleName, p); err != nil {
				t.Fatal(err)
			}
			price := uint64(1 + rng.IntN(3))
			if rng.IntN(3) == 0 {
				price = rng.Uint64N(1 << 30)
			}
			before, _ := Get(ctx, 1)
			paid, _ := Pay(ctx, 1, prov, price)
			after, _ := Get(ctx, 1)
			if fee := after.Fees - before.Fees; fee > paid {
				t.Fatalf("trial %d: fee %d on a payment of %d", trial, fee, paid)
			}
			owed.Add(owed, new(big.Int).Mul(new(big.Int).SetUint64(paid), big.NewInt(int64(p.ProtocolFeeBps))))
			want := new(big.Int).Quo(new(big.Int).Add(owed, big.NewInt(9_999)), big.NewInt(10_000))
			if after.Fees != want.Uint64() {
				t.Fatalf("trial %d: fees %d, want ceil(%s / 10000) = %s", trial, after.Fees, owed, want)
			}
			if after.Paid+after.Fees+after.Balance != deposit {
				t.Fatalf("trial %d: paid %d + fees %d + balance %d != deposit %d", trial, after.Paid, after.Fees, after.Balance, uint64(deposit))
			}
			if err := CheckInvariants(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestFeeOfExtremes(t *testing.T) {
	const max = ^uint64(0)
	tests := []struct {
		paid, credit uint64
		bps          uint32
		fee, left    uint64
	}{
		{0, 0, 50, 0, 0},
		{0, 9999, 50, 0, 9999},
		{1, 0, 50, 1, 9950},
		{1, 50, 50, 0, 0},
		{1, 49, 50, 1, 9999},
		{199, 9950, 50, 0, 0},
		{200, 0, 50, 1, 0},
		{1, 0, 10_000, 1, 0},
		{max, 0, 10_000, max, 0},
		{max, 9999, 10_000, max, 9999},
		{max, 0, 1, max/10_000 + 1, 10_000 - max%10_000},
	}
	for _, tt := range tests {
		fee, left := feeOf(tt.paid, tt.bps, tt.credit)
		if fee != tt.fee || left != tt.left {
			t.Errorf("feeOf(%d, %d bps, credit %d) = %d, %d; want %d, %d", tt.paid, tt.bps, tt.credit, fee, left, tt.fee, tt.left)
		}
	}
}

// CheckInvariants reports the same broken denom on every run: which of several is named
// must not depend on map iteration order.
func TestCheckInvariantsReportsDenomsInOrder(t *testing.T) {
	const want = "escrow: accounts hold 5uaaa the module account does not have"
	for run := 0; run < 50; run++ {
		ctx := testCtx(t)
		for i, d := range []string{"uccc", "uaaa", "ubbb", "uddd"} {
			set(ctx, EscrowAccount{OrderID: uint64(i + 1), Owner: types.Address{1}, Denom: d, State: StateOpen, Balance: 5, Deposited: 5})
		}
		if err := CheckInvariants(ctx); err == nil || err.Error() != want {
			t.Fatalf("run %d: CheckInvariants = %v, want %q", run, err, want)
		}
	}
}
