package market

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// indexWorld is a bare market with the app's wiring of the market's hooks (so the
// registry's change hook keeps the index), on an in-memory store.
func indexWorld(t *testing.T) *types.Context {
	t.Helper()
	h := types.NewHooks()
	Wire(h)
	h.Seal()
	ctx := &types.Context{Store: store.NewMem(), Height: 10, Hooks: h}
	for name, p := range map[string]params.Validator{staking.ModuleName: staking.DefaultParams(), registry.ModuleName: registry.DefaultParams(),
		ModuleName: DefaultParams(), escrow.ModuleName: escrow.DefaultParams(), bank.ModuleName: bank.DefaultParams()} {
		if err := params.Set(ctx, name, p); err != nil {
			t.Fatal(err)
		}
	}
	return ctx
}

var (
	testModels  = []registry.GPU{{Model: "h100", MemoryBytes: 80 * registry.Gi, Interface: "sxm"}, {Model: "a100", MemoryBytes: 40 * registry.Gi, Interface: "pcie"}, {Model: "a100", MemoryBytes: 80 * registry.Gi, Interface: "sxm"}, {Model: "rtx4090", MemoryBytes: 24 * registry.Gi, Interface: "pcie"}}
	testRegions = []string{"eu-west", "us-east", "ap-south"}
)

func randomInventory(r *rand.Rand) registry.Inventory {
	inv := registry.Inventory{Source: "declared", Region: testRegions[r.Intn(len(testRegions))], CPUCores: uint64(1 + r.Intn(64)),
		MemoryBytes: uint64(1+r.Intn(512)) * registry.Gi, StorageBytes: uint64(1+r.Intn(2000)) * registry.Gi, Runtime: registry.DefaultRuntime()}
	for _, i := range r.Perm(len(testModels))[:r.Intn(3)] {
		g := testModels[i]
		g.Count = uint32(1 + r.Intn(8))
		inv.GPUs = append(inv.GPUs, g)
	}
	if r.Intn(4) == 0 {
		inv.Attributes = []registry.Attribute{{Key: "tier", Value: "1"}}
	}
	if r.Intn(8) == 0 {
		inv.Runtime.GPUs = false
	}
	return inv
}

func randomGroups(r *rand.Rand) []Group {
	g := Group{Name: "g", Count: uint32(1 + r.Intn(2)), CPUMilli: uint64(100 * (1 + r.Intn(40))), MemoryBytes: uint64(1+r.Intn(16)) * registry.Gi,
		StorageBytes: registry.Gi}
	if r.Intn(4) > 0 {
		g.GPU.Units = uint32(1 + r.Intn(4))
		switch r.Intn(4) {
		case 0:
		case 1:
			g.GPU.Models = []GPUFilter{{Model: "*"}}
		case 2:
			g.GPU.Models = []GPUFilter{{Model: testModels[r.Intn(len(testModels))].Model}}
		case 3:
			g.GPU.Models = []GPUFilter{{Model: "h100"}, {Model: "a100", MemoryBytes: 80 * registry.Gi}}
		}
	}
	if r.Intn(3) == 0 {
		g.Region = testRegions[r.Intn(len(testRegions))]
	}
	if r.Intn(6) == 0 {
		g.Attributes = []registry.Attribute{{Key: "tier", Value: "*"}}
	}
	groups := []Group{g}
	if r.Intn(5) == 0 {
		groups = append(groups, Group{Name: "side", Count: 1, CPUMilli: 500, MemoryBytes: registry.Gi})
	}
	return groups
}

// Property: on random networks (inventories, leases, deregistrations, updates), the
// indexed search finds exactly the providers an exhaustive check of every provider
// finds, and the index always equals what providers' free capacity gives.
func TestCandidatesEqualExhaustiveMatch(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		r := rand.New(rand.NewSource(seed))
		ctx := indexWorld(t)
		cert := selfSignedPEM(t)
		var provs []types.Address
		for i := 0; i < 40; i++ {
			p := types.ModuleAddress(fmt.Sprintf("prov-%d-%d", seed, i))
			bank.Mint(ctx, p, types.NewCoin(types.NativeDenom, 1_000_000_000))
			if err := registry.Handle(ctx, &registry.MsgRegisterProvider{Owner: p, Endpoint: "https://127.0.0.1:8443", CertPEM: cert,
				Inventory: randomInventory(r), Stake: types.NewCoin(types.NativeDenom, 100_000_000)}); err != nil {
				t.Fatal(err)
			}
			provs = append(provs, p)
		}
		tenant := types.ModuleAddress("tenant")
		bank.Mint(ctx, tenant, types.NewCoin(types.NativeDenom, 1_000_000_000_000))
		for step := 0; step < 40; step++ {
			ctx.Height++
			mo := &MsgCreateOrder{Owner: tenant, Kind: KindBatch, Groups: randomGroups(r), MaxPrice: 100, Deposit: types.NewCoin(types.NativeDenom, 10_000)}
			if err := Handle(ctx, mo); err != nil {
				t.Fatalf("seed %d step %d: create order: %v", seed, step, err)
			}
			id := nextSeqPeek(ctx)
			o, _ := GetOrder(ctx, id)
			got, err := Candidates(ctx, id, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var rp registry.Params
			params.Get(ctx, registry.ModuleName, &rp)
			var want, gotP []string
			// NB: exhaustive from the registry's own records, not the index's copy.
			for _, prov := range registry.List(ctx) {
				_, dup := GetBid(ctx, o.ID, prov.Owner)
				_, _, static, inUse := Fit(o.Groups, nil, prov.Inventory, Used(ctx, prov.Owner))
				if prov.Stake >= rp.MinProviderStake && !slices.Contains(o.Excluded, prov.Owner) && !dup && len(static)+len(inUse) == 0 &&
					len(checkProvider(ctx, o, prov)) == 0 {
					want = append(want, prov.Owner.String())
				}
			}
			for _, c := range got {
				gotP = append(gotP, c.Provider.String())
			}
			slices.Sort(gotP)
			slices.Sort(want)
			if fmt.Sprint(gotP) != fmt.Sprint(want) {
				t.Fatalf("seed %d step %d: order groups %+v:\nindexed    %v\nexhaustive %v", seed, step, o.Groups, gotP, want)
			}
			// Lease the order to a random fitting provider (through the real bid
			// path), so usage and the index move; now and then a provider updates its
			// inventory or leaves, or a lease closes.
			if len(got) > 0 {
				c := got[r.Intn(len(got))]
				ctx.Height++
				if err := Handle(ctx, &MsgCreateBid{Provider: c.Provider, OrderID: id, Price: 50}); err != nil {
					t.Fatalf("seed %d step %d: candidate %s refused: %v", seed, step, c.Provider, err)
				}
				EndBlock(ctx)
			}
			switch r.Intn(6) {
			case 0:
				p := provs[r.Intn(len(provs))]
				inv := randomInventory(r)
				_ = registry.Handle(ctx, &registry.MsgUpdateProvider{Owner: p, Inventory: &inv})
			case 1:
				if ls := Leases(ctx, LeaseFilter{State: LeaseActive}); len(ls) > 0 {
					l := ls[r.Intn(len(ls))]
					if err := Handle(ctx, &MsgCloseLease{Sender: l.Owner, LeaseID: l.ID}); err != nil {
						t.Fatal(err)
					}
				}
			case 2:
				p := provs[r.Intn(len(provs))]
				_ = registry.Handle(ctx, &registry.MsgDeregisterProvider{Owner: p}) // refused while it holds leases
			}
			if err := CheckInvariants(ctx); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
		}
	}
}

func nextSeqPeek(ctx *types.Context) uint64 {
	v, _ := ctx.Store.Get(orderSeqKey)
	var n uint64
	for _, b := range v {
		n = n<<8 | uint64(b)
	}
	return n
}
