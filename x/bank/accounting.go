package bank

import (
	"encoding/binary"
	"fmt"

	"github.com/kiln-network/kiln/types"
)

// ModuleAccount is a module account and what its module's records say it holds.
type ModuleAccount struct {
	Name    string
	Address types.Address
	// Owed returns what the module's records say the account holds, sorted by denom.
	// Nil means the module keeps no records of it (the community pool): its balance is
	// counted in the totals but not checked.
	Owed func(*types.Context) types.Coins
}

// Accounting is the chain's books at one height, computed from every balance rather
// than from the supply record (which only Mint and Burn change), so money created or
// lost by any other path shows: its balances no longer add up to the supply, or a
// module account no longer holds what its module's records say.
type Accounting struct {
	Height int64 `json:"height,string"`
	// Conserved is true when every denom's balances add up to its supply and every
	// checked module account holds exactly what its records say.
	Conserved bool `json:"conserved"`
	// Problems says what is off, one line each, in denom then module order.
	Problems []string      `json:"problems"`
	Denoms   []DenomTotals `json:"denoms"`
	Modules  []ModuleBooks `json:"modules"`
}

// DenomTotals are one denom's totals.
type DenomTotals struct {
	Denom string `json:"denom"`
	// Supply is the supply record.
	Supply uint64 `json:"supply,string"`
	// Balances is every account's balance summed, module accounts included.
	Balances uint64 `json:"balances,string"`
	// Modules is the part of Balances held by the module accounts audited.
	Modules uint64 `json:"modules,string"`
}

// ModuleBooks is one module account's balance beside what its module's records say.
type ModuleBooks struct {
	Name    string        `json:"name"`
	Address types.Address `json:"address"`
	Balance types.Coins   `json:"balance"`
	// Owed is what the module's records say the account holds (absent when unchecked).
	Owed    types.Coins `json:"owed,omitempty"`
	Checked bool        `json:"checked"`
}

// Audit walks every balance and the supply records and checks each module account in
// modules against its records. O(accounts + module records): for invariant checks,
// audits and the /bank/accounting query, not for every transaction.
func Audit(ctx *types.Context, modules []ModuleAccount) Accounting {
	a := Accounting{Height: ctx.Height, Problems: []string{}, Denoms: []DenomTotals{}, Modules: []ModuleBooks{}}
	// NB: balance keys are prefix|address|denom, so the walk is by address; totals go
	// in a map and come out sorted by denom.
	sums := map[string]uint64{}
	overflow := map[string]bool{}
	ctx.Store.Iterate(balancePrefix, func(k, v []byte) bool {
		d := string(k[len(balancePrefix)+types.AddressLen:])
		if len(v) != 8 {
			panic(fmt.Sprintf("bank: corrupt amount at %q", k))
		}
		s, ok := types.AddUint64(sums[d], binary.BigEndian.Uint64(v))
		overflow[d] = overflow[d] || !ok
		sums[d] = s
		return true
	})
	supply := map[string]uint64{}
	for _, c := range Supply(ctx) {
		supply[c.Denom] = c.Amount
	}
	moduleSums := map[string]uint64{}
	for _, m := range modules {
		b := ModuleBooks{Name: m.Name, Address: m.Address, Balance: Balances(ctx, m.Address), Checked: m.Owed != nil}
		if b.Balance == nil {
			b.Balance = types.Coins{}
		}
		for _, c := range b.Balance {
			moduleSums[c.Denom] += c.Amount // NB: a part of sums, so it cannot overflow where sums did not
		}
		if b.Checked {
			b.Owed = m.Owed(ctx)
			if b.Owed == nil {
				b.Owed = types.Coins{}
			}
		}
		a.Modules = append(a.Modules, b)
	}
	denoms := types.SortedCoins(sums) // every denom with a balance...
	for d := range supply {
		if _, ok := sums[d]; !ok {
			denoms = append(denoms, types.NewCoin(d, 0)) // ...or a supply record
		}
	}
	types.SortCoins(denoms)
	for _, c := range denoms {
		t := DenomTotals{Denom: c.Denom, Supply: supply[c.Denom], Balances: sums[c.Denom], Modules: moduleSums[c.Denom]}
		a.Denoms = append(a.Denoms, t)
		_, recorded := supply[c.Denom]
		switch {
		case overflow[c.Denom]:
			a.Problems = append(a.Problems, fmt.Sprintf("balances of %s add up to more than 2^64", c.Denom))
		case !recorded:
			a.Problems = append(a.Problems, fmt.Sprintf("balances of %s add up to %d with no recorded supply", c.Denom, t.Balances))
		case t.Balances != t.Supply:
			a.Problems = append(a.Problems, fmt.Sprintf("supply of %s is %d but balances add up to %d", c.Denom, t.Supply, t.Balances))
		}
	}
	for _, b := range a.Modules {
		if b.Checked && b.Balance.String() != b.Owed.String() {
			a.Problems = append(a.Problems, fmt.Sprintf("module account %s (%s) holds %s, its records say %s", b.Name, b.Address, amounts(b.Balance), amounts(b.Owed)))
		}
	}
	a.Conserved = len(a.Problems) == 0
	return a
}

func amounts(cs types.Coins) string {
	if len(cs) == 0 {
		return "nothing"
	}
	return cs.String()
}
