package app

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/infer"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/staking"
	"github.com/kiln-network/kiln/x/verify"
)

// corrupt commits a block that sets balances directly, as a bug bypassing bank would:
// each of addr's balance in denom becomes amount (0 deletes it).
func (h *harness) corrupt(t *testing.T, set map[types.Address]map[string]uint64) {
	t.Helper()
	c := store.NewCache(h.app.db)
	for addr, denoms := range set {
		for d, amt := range denoms {
			k := append(append([]byte("bank/bal/"), addr[:]...), d...) // NB: bank's balance key layout
			if amt == 0 {
				c.Delete(k)
				continue
			}
			c.Set(k, binary.BigEndian.AppendUint64(nil, amt))
		}
	}
	h.height++
	if err := h.app.db.Commit(h.app.db.Prepare(h.height, blockTime(h.height), c)); err != nil {
		t.Fatal(err)
	}
}

// /bank/accounting sums every balance (module accounts included) against the supply
// records and checks every module account against its module's records. It answers
// conserved on an honest chain with bonded stake, escrow and bid deposits, and turns
// false when money is created or lost outside Mint and Burn, or when a module account
// is drained while supply and balances still agree; the block after such a change
// halts the node.
func TestAccountingCatchesMoneyCreatedOrLost(t *testing.T) {
	setup := func(t *testing.T) (*harness, *account) {
		h, p1, _, tenant, _ := marketHarness(t, nil)
		manual := order(tenant, 1000, 100_000, gpuGroup("b", 1, 1, "rtx4090"))
		manual.Manual = true
		h.mustExec(step{tenant, order(tenant, 1000, 100_000, gpuGroup("a", 1, 1, "rtx4090"))}, step{tenant, manual})
		// NB: order 1 leases at once; the bid on manual order 2 stays open until the
		// tenant picks, so the market module account holds its deposit.
		h.mustExec(bid(p1, 1, 900), bid(p1, 2, 900))
		// An open inference request: the infer module account holds its fee.
		h.mustExec(step{tenant, &infer.MsgRegisterModel{Owner: tenant.addr, ID: "tiny", Hash: strings.Repeat("ab", 32)}})
		h.mustExec(step{tenant, &infer.MsgInferRequest{Requester: tenant.addr, Model: "tiny", Input: []byte("x"), MaxFee: 1000}})
		// NB: a tenant's dispute of lease 1's committed work, whose committee is drawn
		// at the end of the next block: until then its deposit sits in the verify
		// module account.
		h.mustExec(step{p1, &verify.MsgCommit{Provider: p1.addr, LeaseID: 1, Kind: "render", Root: make([]byte, 32), Units: 4}})
		h.mustExec(step{tenant, &verify.MsgDispute{Tenant: tenant.addr, CommitID: 1, Unit: 0}})
		return h, tenant
	}
	bal := func(h *harness, a types.Address, d string) uint64 { return bank.Balance(h.ctx(), a, d) }
	tests := []struct {
		name    string
		corrupt func(h *harness, tenant *account) map[types.Address]map[string]uint64
		want    string // in the first problem; "" when conserved
		heals   bool   // the next block's fee payout puts it right, so it does not halt
	}{
		{"honest chain", nil, "", false},
		{"money created in an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{tn.addr: {"ukiln": bal(h, tn.addr, "ukiln") + 1}}
		}, "supply of ukiln is", false},
		{"money lost from an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{tn.addr: {"uusd": 0}}
		}, "supply of uusd is", false},
		{"a denom nobody minted", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{tn.addr: {"ufake": 5}}
		}, "balances of ufake add up to 5 with no recorded supply", false},
		{"bonded stake moved to an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{
				staking.BondedPool: {"ukiln": bal(h, staking.BondedPool, "ukiln") - 7},
				tn.addr:            {"ukiln": bal(h, tn.addr, "ukiln") + 7}}
		}, "module account bonded_pool", false},
		{"escrow moved to an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{
				escrow.Account: {"ukiln": bal(h, escrow.Account, "ukiln") - 7},
				tn.addr:        {"ukiln": bal(h, tn.addr, "ukiln") + 7}}
		}, "module account escrow", false},
		{"bid deposit moved to an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{
				market.Account: {"ukiln": bal(h, market.Account, "ukiln") - 7},
				tn.addr:        {"ukiln": bal(h, tn.addr, "ukiln") + 7}}
		}, "module account market", false},
		{"inference fee moved to an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{
				infer.Account: {"ukiln": bal(h, infer.Account, "ukiln") - 7},
				tn.addr:       {"ukiln": bal(h, tn.addr, "ukiln") + 7}}
		}, "module account infer", false},
		{"dispute deposit moved to an account", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{
				verify.Account: {"ukiln": bal(h, verify.Account, "ukiln") - 7},
				tn.addr:        {"ukiln": bal(h, tn.addr, "ukiln") + 7}}
		}, "module account verify", false},
		{"fees left in the fee collector", func(h *harness, tn *account) map[types.Address]map[string]uint64 {
			return map[types.Address]map[string]uint64{
				bank.FeeCollector: {"ukiln": 7},
				tn.addr:           {"ukiln": bal(h, tn.addr, "ukiln") - 7}}
		}, "module account fee_collector", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, tenant := setup(t)
			if tt.corrupt != nil {
				h.corrupt(t, tt.corrupt(h, tenant))
			}
			var a bank.Accounting
			if code := h.query("/bank/accounting", &a); code != 0 {
				t.Fatalf("Query(/bank/accounting) code %d", code)
			}
			if a.Height != h.height || len(a.Modules) != len(ledgerTable.accounts) || len(a.Denoms) < 2 {
				t.Fatalf("accounting = %+v, want height %d, %d modules, ukiln and uusd", a, h.height, len(ledgerTable.accounts))
			}
			for _, m := range a.Modules {
				if len(m.Balance) == 0 && m.Name != "fee_collector" {
					t.Errorf("module %s holds nothing: the setup does not exercise it", m.Name)
				}
			}
			if tt.want == "" {
				if !a.Conserved || len(a.Problems) != 0 {
					t.Fatalf("accounting of an honest chain: conserved %v, problems %v", a.Conserved, a.Problems)
				}
				h.block() // the invariant check in FinalizeBlock agrees
				return
			}
			if a.Conserved || len(a.Problems) == 0 || !strings.Contains(a.Problems[0], tt.want) {
				t.Fatalf("accounting: conserved %v, problems %q, want false and %q", a.Conserved, a.Problems, tt.want)
			}
			t.Logf("problems: %q", a.Problems)
			if tt.heals {
				h.block()
				return
			}
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("FinalizeBlock after the change: panic %v, want an invariant naming %q", r, tt.want)
				}
			}()
			h.app.FinalizeBlock(context.Background(), h.finalizeReq(h.height+1))
		})
	}
}
