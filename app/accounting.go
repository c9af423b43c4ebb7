package app

import (
	"sort"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
)

// ledgerTable is the module table the app runs, indexed once. It holds no state: hooks
// are per app (App.hooks).
var ledgerTable *ledger

// NB: in init, not the declaration: the table's query functions read the books
// through ledgerTable, a cycle Go refuses in a package-level initializer.
func init() { ledgerTable = newLedger(Modules()) }

// sortAccounts puts module accounts in name order, the order the books report them in.
func sortAccounts(a []bank.ModuleAccount) {
	sort.Slice(a, func(i, j int) bool { return a[i].Name < a[j].Name })
}

// Accounting returns the chain's books at ctx: every balance summed against the supply
// records, and every module account against its module's records.
func Accounting(ctx *types.Context) bank.Accounting { return bank.Audit(ctx, ledgerTable.accounts) }

// CheckInvariants runs every module's money and accounting checks: the books (supply,
// balances and module accounts), then each module's own checks in table order (the
// bonded pool, escrow's accounts and held pay, the market's capacity, indexes and bid
// deposits).
func CheckInvariants(ctx *types.Context) error { return ledgerTable.checkInvariants(ctx) }
