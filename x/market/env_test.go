package market

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// env is a bare ledger of the market and the modules it builds on, for the pricing
// modes' tests: providers, a tenant, and a block clock.
type env struct {
	t      *testing.T
	ctx    *types.Context
	tenant types.Address
	provs  []types.Address
	supply uint64
}

const envFunds = 1_000_000_000_000

func newEnv(t *testing.T) *env {
	t.Helper()
	// NB: the market's own wiring (the registry change hook that keeps its
	// free-capacity index), as the app wires it; left open so a test can add score
	// sources.
	h := types.NewHooks()
	Wire(h)
	ctx := &types.Context{Store: store.NewMem(), Height: 10, Time: time.Unix(1_700_000_000, 0), BlockRand: types.BlockRand{1}, Hooks: h}
	// NB: no held-back pay: these tests check the modes' arithmetic, paid in full.
	ep := escrow.DefaultParams()
	ep.HoldbackBps, ep.DisputeWindowBlocks = 0, 0
	for name, p := range map[string]params.Validator{staking.ModuleName: staking.DefaultParams(), registry.ModuleName: registry.DefaultParams(),
		ModuleName: DefaultParams(), escrow.ModuleName: ep, bank.ModuleName: bank.DefaultParams()} {
		if err := params.Set(ctx, name, p); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, ctx: ctx, tenant: types.ModuleAddress("test-tenant")}
	bank.Mint(ctx, e.tenant, types.NewCoin(types.NativeDenom, envFunds))
	e.supply = envFunds
	return e
}

// provider registers a provider in region with gpus (model → count, 80 GiB SXM each)
// and cores CPU cores.
func (e *env) provider(name, region string, cores uint64, gpus map[string]uint32) types.Address {
	e.t.Helper()
	return e.providerStake(name, region, cores, gpus, 100_000_000)
}

// providerStake is provider with a bond of stake.
func (e *env) providerStake(name, region string, cores uint64, gpus map[string]uint32, stake uint64) types.Address {
	e.t.Helper()
	a := types.ModuleAddress("test-provider-" + name)
	bank.Mint(e.ctx, a, types.NewCoin(types.NativeDenom, envFunds))
	e.supply += envFunds
	inv := registry.Inventory{Source: "declared", Region: region, CPUCores: cores, MemoryBytes: 512 * registry.Gi, StorageBytes: 1000 * registry.Gi,
		Runtime: registry.DefaultRuntime()}
	for _, m := range sortedKeys(gpus) {
		inv.GPUs = append(inv.GPUs, registry.GPU{Model: m, MemoryBytes: 80 * registry.Gi, Interface: "sxm", Count: gpus[m]})
	}
	if err := registry.Handle(e.ctx, &registry.MsgRegisterProvider{Owner: a, Endpoint: "https://127.0.0.1:8443", CertPEM: selfSignedPEM(e.t),
		Inventory: inv, Stake: types.NewCoin(types.NativeDenom, stake)}); err != nil {
		e.t.Fatal(err)
	}
	e.provs = append(e.provs, a)
	return a
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// do runs msg after ValidateBasic, as a transaction would (its writes are kept
// only if it succeeds).
func (e *env) do(msg types.Msg) error {
	e.t.Helper()
	if err := msg.ValidateBasic(); err != nil {
		return err
	}
	c := store.NewCache(e.ctx.Store)
	ctx := e.ctx.WithStore(c)
	if err := Handle(ctx, msg); err != nil {
		return err
	}
	c.Write()
	return nil
}

func (e *env) must(msg types.Msg) {
	e.t.Helper()
	if err := e.do(msg); err != nil {
		e.t.Fatalf("%T: %v", msg, err)
	}
}

// next ends the current block (the market's and escrow's end-block, then the
// invariants) and starts the next.
func (e *env) next() {
	e.t.Helper()
	EndBlock(e.ctx)
	escrow.EndBlock(e.ctx)
	e.check()
	e.ctx.Height++
	e.ctx.Time = e.ctx.Time.Add(time.Second)
	e.ctx.BlockRand = types.BlockRand(sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(e.ctx.Height))))
}

// check fails the test unless money is conserved and every module's books balance.
func (e *env) check() {
	e.t.Helper()
	if err := CheckInvariants(e.ctx); err != nil {
		e.t.Fatalf("height %d: %v", e.ctx.Height, err)
	}
	if err := escrow.CheckInvariants(e.ctx); err != nil {
		e.t.Fatalf("height %d: %v", e.ctx.Height, err)
	}
	if got := bank.SupplyOf(e.ctx, types.NativeDenom); got != e.supply {
		e.t.Fatalf("height %d: supply %d, want %d", e.ctx.Height, got, e.supply)
	}
	var sum uint64
	for _, a := range append([]types.Address{e.tenant, Account, escrow.Account, bank.CommunityPool, staking.BondedPool}, e.provs...) {
		sum += bank.Balance(e.ctx, a, types.NativeDenom)
	}
	if sum != e.supply {
		e.t.Fatalf("height %d: balances add up to %d, supply is %d", e.ctx.Height, sum, e.supply)
	}
}

// order places an order of count instances of one group asking for gpus GPUs of model
// each (model "": CPU only), in mode, and returns its ID.
func (e *env) order(mode, fill string, count uint32, model string, gpus uint32, maxPrice uint64) uint64 {
	e.t.Helper()
	g := Group{Name: "main", Count: count, CPUMilli: 1000, MemoryBytes: registry.Gi}
	if model != "" {
		g.GPU = GPURequest{Units: gpus, Models: []GPUFilter{{Model: model}}}
	}
	m := &MsgCreateOrder{Owner: e.tenant, Kind: KindService, Groups: []Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, maxPrice*1000), Mode: mode, Fill: fill}
	var id uint64 = 1
	if v, ok := e.ctx.Store.Get(orderSeqKey); ok {
		id = binary.BigEndian.Uint64(v) + 1
	}
	e.must(m)
	o, ok := GetOrder(e.ctx, id)
	if !ok || o.Owner != e.tenant || o.Mode != mode {
		e.t.Fatalf("order %d after create = %+v", id, o)
	}
	return id
}

// leasesOf returns the active leases of order id and of the orders split off it.
func (e *env) leasesOf(id uint64) []Lease {
	var out []Lease
	for _, l := range Leases(e.ctx, LeaseFilter{State: LeaseActive}) {
		o, _ := GetOrder(e.ctx, l.ID)
		if l.ID == id || o.Parent == id {
			out = append(out, l)
		}
	}
	return out
}

func describe(ls []Lease) string {
	s := ""
	for _, l := range ls {
		s += fmt.Sprintf("[%d %s %d %v] ", l.ID, l.Provider.String()[:10], l.Price, describeGPUs(l.Usage))
	}
	return s
}
