package app

import (
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
)

// /escrow/accounts lists every escrow account and /escrow/totals sums them per denom:
// after a lease ran and closed, the totals are what each account's books say.
func TestEscrowTotalsQuery(t *testing.T) {
	h, p1, _, tenant, _ := marketHarness(t, nil)
	h.mustExec(step{tenant, order(tenant, 100, 5_000, gpuGroup("a", 1, 0))})
	h.mustExec(bid(p1, 1, 100))
	h.mustExec(start(p1, 1))
	h.mustExec(step{tenant, order(tenant, 100, 3_000, gpuGroup("a", 1, 0))})
	h.block()
	h.block()
	h.mustExec(step{tenant, &market.MsgCloseLease{Sender: tenant.addr, LeaseID: 1}})
	var accts struct{ Accounts []escrow.EscrowAccount }
	if c := h.query("/escrow/accounts", &accts); c != 0 || len(accts.Accounts) != 2 {
		t.Fatalf("/escrow/accounts = %d, %d accounts; want both orders'", c, len(accts.Accounts))
	}
	var want EscrowTotal
	for _, a := range accts.Accounts {
		want.Deposited += a.Deposited
		want.Balance += a.Balance
		want.Paid += a.Paid
		want.Fees += a.Fees
		want.Refunded += a.Refunded
		want.Held += a.Held
	}
	want.Denom = "ukiln"
	var tot struct{ Totals []EscrowTotal }
	if c := h.query("/escrow/totals", &tot); c != 0 || len(tot.Totals) != 1 {
		t.Fatalf("/escrow/totals = %d %+v", c, tot)
	}
	if got := tot.Totals[0]; got != want || got.Paid == 0 || got.Refunded == 0 || got.Deposited != 8_000 {
		t.Fatalf("/escrow/totals = %+v, want %+v (with pay, a refund, and 8000 deposited)", got, want)
	}
	if got := tot.Totals[0]; got.Deposited != got.Balance+got.Paid+got.Fees+got.Refunded+got.Held {
		t.Errorf("totals do not balance: %+v", got)
	}
}

// /app/modules is the module table, in its order, with who answers queries.
func TestModulesQuery(t *testing.T) {
	h, _, _, _, _ := marketHarness(t, nil)
	var out struct{ Modules []ModuleInfo }
	if c := h.query("/app/modules", &out); c != 0 {
		t.Fatalf("/app/modules code %d", c)
	}
	table := Modules()
	if len(out.Modules) != len(table) {
		t.Fatalf("/app/modules has %d modules, the table %d", len(out.Modules), len(table))
	}
	for i, m := range table {
		got := out.Modules[i]
		if got.Name != m.Name || got.Query != (m.Query != nil) || len(got.Msgs) != len(m.Msgs) {
			t.Errorf("module %d = %+v, want %s (query %v, %d msgs)", i, got, m.Name, m.Query != nil, len(m.Msgs))
		}
	}
	found := false
	for _, m := range out.Modules {
		if m.Name == market.ModuleName {
			found = true
			if m.Msgs[0] != types.MsgTypeMarketCreateOrder {
				t.Errorf("market entry = %+v", m)
			}
		}
	}
	if !found {
		t.Errorf("/app/modules has no %s entry", market.ModuleName)
	}
}
