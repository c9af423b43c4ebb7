package app

import (
	"errors"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/staking"
)

// moduleAccounts are every module account, in name order, with what each module's
// records say it holds.
var moduleAccounts = []bank.ModuleAccount{
	{Name: "bonded_pool", Address: staking.BondedPool, Owed: staking.Held},
	// NB: no records: it only receives (fees and protocol fees), and nothing spends it yet.
	{Name: "community_pool", Address: bank.CommunityPool},
	{Name: "escrow", Address: escrow.Account, Owed: escrow.Owed},
	// NB: fees collected in a block are paid out at its end, so between blocks it is empty.
	{Name: "fee_collector", Address: bank.FeeCollector, Owed: func(*types.Context) types.Coins { return types.Coins{} }},
	{Name: "market", Address: market.Account, Owed: market.BidDeposits},
}

// Accounting returns the chain's books at ctx: every balance summed against the supply
// records, and every module account against its module's records.
func Accounting(ctx *types.Context) bank.Accounting { return bank.Audit(ctx, moduleAccounts) }

// CheckInvariants runs every module's money and accounting checks: the books (supply,
// balances and module accounts), the bonded pool, escrow's accounts and held pay, and
// the market's capacity, indexes and bid deposits.
func CheckInvariants(ctx *types.Context) error {
	if a := Accounting(ctx); !a.Conserved {
		return errors.New(a.Problems[0])
	}
	for _, check := range []func(*types.Context) error{staking.CheckInvariants, escrow.CheckInvariants, market.CheckInvariants} {
		if err := check(ctx); err != nil {
			return err
		}
	}
	return nil
}
