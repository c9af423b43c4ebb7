// Package auth holds accounts (their sequence numbers) and the fee parameters every
// transaction is checked against.
package auth

import (
	"encoding/json"
	"fmt"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
)

// ModuleName is auth's name in params and state.
const ModuleName = "auth"

var accountPrefix = []byte("auth/acc/")

// Params are auth's on-chain parameters.
type Params struct {
	// FeeDenom is the only denom fees are paid in.
	FeeDenom string `json:"fee_denom"`
	// TxFeeBase is the minimum fee of any transaction.
	TxFeeBase uint64 `json:"tx_fee_base,string"`
	// TxFeePerByte is added to the minimum for each byte of the encoded tx, so that
	// large transactions pay for the block space they take.
	TxFeePerByte uint64 `json:"tx_fee_per_byte,string"`
}

// DefaultParams: 0.0005 KILN per tx plus 1 ukiln per byte (a transfer costs ~700 ukiln).
func DefaultParams() Params {
	return Params{FeeDenom: types.NativeDenom, TxFeeBase: 500, TxFeePerByte: 1}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	if err := types.ValidateDenom(p.FeeDenom); err != nil {
		return fmt.Errorf("fee_denom: %w", err)
	}
	if p.TxFeePerByte > 1<<20 || p.TxFeeBase > 1<<50 {
		return fmt.Errorf("fee parameters absurdly high (base %d, per byte %d)", p.TxFeeBase, p.TxFeePerByte)
	}
	return nil
}

// MinFee returns the minimum fee for a tx of n bytes.
func (p Params) MinFee(n int) uint64 { return p.TxFeeBase + p.TxFeePerByte*uint64(n) }

// Account is an on-chain account.
type Account struct {
	Address  types.Address `json:"address"`
	Sequence uint64        `json:"sequence,string"`
}

func key(a types.Address) []byte { return append(append([]byte{}, accountPrefix...), a[:]...) }

// Get returns the account, or false if a has never received funds.
func Get(ctx *types.Context, a types.Address) (Account, bool) {
	v, ok := ctx.Store.Get(key(a))
	if !ok {
		return Account{}, false
	}
	r := codec.NewReader(v)
	acc := Account{Address: a, Sequence: r.Uvarint()}
	if err := r.Done(); err != nil {
		panic(fmt.Sprintf("auth: corrupt account %s: %v", a, err))
	}
	return acc, true
}

// Set stores the account.
func Set(ctx *types.Context, acc Account) {
	w := codec.NewWriter(10)
	w.Uvarint(acc.Sequence)
	ctx.Store.Set(key(acc.Address), w.Bytes())
}

// Ensure creates the account with sequence 0 if it does not exist.
func Ensure(ctx *types.Context, a types.Address) {
	if _, ok := Get(ctx, a); !ok {
		Set(ctx, Account{Address: a})
	}
}

// MarshalJSON keeps the account's JSON stable for queries.
func (a Account) String() string {
	b, _ := json.Marshal(a)
	return string(b)
}
