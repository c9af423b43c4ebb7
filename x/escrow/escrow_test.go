package escrow

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

func testCtx(t *testing.T) *types.Context {
	t.Helper()
	ctx := &types.Context{Store: store.NewMem(), Height: 1}
	if err := params.Set(ctx, ModuleName, DefaultParams()); err != nil {
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
	// 0.5% of 1000 is 5; of 500 it is 2.5, rounded up to 3 so that small payments
	// cannot escape the fee.
	if got := bank.Balance(ctx, bank.CommunityPool, "ukiln"); got != 13 {
		t.Fatalf("community pool = %d, want 13", got)
	}
	if got := bank.Balance(ctx, prov, "ukiln"); got != 2500-13 {
		t.Fatalf("provider = %d, want %d", got, 2500-13)
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
