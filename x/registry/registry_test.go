package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/staking"
)

func validInventory() Inventory {
	return Inventory{Source: "declared", Region: "eu-west", CPUCores: 64, MemoryBytes: 512 * Gi, StorageBytes: 4 * Ti,
		GPUs:       []GPU{{Model: "h100", MemoryBytes: 80 * Gi, Interface: "sxm", Count: 8}},
		Attributes: []Attribute{{"network", "100g"}, {"tier", "datacenter"}}, Runtime: DefaultRuntime()}
}

func TestInventoryValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Inventory)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Inventory) {}, ""},
		{"no source", func(i *Inventory) { i.Source = "" }, "inventory.source"},
		{"os-detected with GPUs", func(i *Inventory) { i.Source = "detected-os" }, "detected-os"},
		{"os-detected CPU-only", func(i *Inventory) { i.Source, i.GPUs = "detected-os", nil }, ""},
		{"zero cores", func(i *Inventory) { i.CPUCores = 0 }, "inventory.cpu_cores"},
		{"absurd cores", func(i *Inventory) { i.CPUCores = 1 << 20 }, "inventory.cpu_cores"},
		{"tiny memory", func(i *Inventory) { i.MemoryBytes = 1 }, "inventory.memory"},
		{"absurd storage", func(i *Inventory) { i.StorageBytes = 1 << 62 }, "inventory.storage"},
		{"bad region", func(i *Inventory) { i.Region = "EU West" }, "inventory.region"},
		{"gpu model uppercase", func(i *Inventory) { i.GPUs[0].Model = "H100" }, "inventory.gpus[0].model"},
		{"gpu interface", func(i *Inventory) { i.GPUs[0].Interface = "nvlink" }, "inventory.gpus[0].interface"},
		{"gpu count zero", func(i *Inventory) { i.GPUs[0].Count = 0 }, "inventory.gpus[0].count"},
		{"gpu count absurd", func(i *Inventory) { i.GPUs[0].Count = 1000 }, "inventory.gpus[0].count"},
		{"gpu memory absurd", func(i *Inventory) { i.GPUs[0].MemoryBytes = 4 * Ti }, "inventory.gpus[0].memory"},
		{"attributes unsorted", func(i *Inventory) { i.Attributes[0], i.Attributes[1] = i.Attributes[1], i.Attributes[0] }, "sorted"},
		{"attribute control char", func(i *Inventory) { i.Attributes[0].Value = "a\nb" }, "printable"},
		{"no executor", func(i *Inventory) { i.Runtime.Executor = "" }, "inventory.runtime.executor"},
		{"executor with a slash", func(i *Inventory) { i.Runtime.Executor = "../docker" }, "inventory.runtime.executor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := validInventory()
			tt.mutate(&inv)
			err := inv.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func testCert(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "provider"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestRegisterUpdateDeregister(t *testing.T) {
	ctx := &types.Context{Store: store.NewMem(), Height: 10}
	sp := staking.DefaultParams()
	sp.UnbondingBlocks = 3
	params.Set(ctx, staking.ModuleName, sp)
	params.Set(ctx, ModuleName, DefaultParams())
	owner := types.ModuleAddress("prov")
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 1_000_000_000))
	reg := &MsgRegisterProvider{Owner: owner, Endpoint: "https://127.0.0.1:8443", CertPEM: testCert(t), Inventory: validInventory(), Stake: types.NewCoin("ukiln", 100_000_000)}
	if err := reg.ValidateBasic(); err != nil {
		t.Fatal(err)
	}
	low := *reg
	low.Stake.Amount = 5
	if err := Handle(ctx, &low); !errors.Is(err, types.ErrInvalidMsg) {
		t.Fatalf("stake below minimum = %v", err)
	}
	if err := Handle(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if err := Handle(ctx, reg); !errors.Is(err, types.ErrAlreadyExists) {
		t.Fatalf("second register = %v", err)
	}
	p, ok := Get(ctx, owner)
	if !ok || p.Stake != 100_000_000 || p.Inventory.TotalGPUs() != 8 {
		t.Fatalf("provider = %+v", p)
	}
	inv := validInventory()
	inv.GPUs[0].Count = 4
	if err := Handle(ctx, &MsgUpdateProvider{Owner: owner, Inventory: &inv, AddStake: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	if p, _ = Get(ctx, owner); p.Stake != 101_000_000 || p.Inventory.TotalGPUs() != 4 {
		t.Fatalf("after update provider = %+v", p)
	}
	if err := Handle(ctx, &MsgDeregisterProvider{Owner: owner}); err != nil {
		t.Fatal(err)
	}
	if _, ok := Get(ctx, owner); ok {
		t.Fatal("provider still registered")
	}
	ctx.Height += 3
	staking.EndBlock(ctx)
	if got := bank.Balance(ctx, owner, "ukiln"); got != 1_000_000_000 {
		t.Fatalf("after unbonding the owner has %d, want all stake back", got)
	}
	bad := *reg
	bad.Endpoint = "http://insecure:80"
	if err := bad.ValidateBasic(); err == nil {
		t.Fatal("plain http endpoint accepted")
	}
	bad = *reg
	bad.CertPEM = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	if err := bad.ValidateBasic(); err == nil {
		t.Fatal("garbage certificate accepted")
	}
}

// A provider's stake is read from staking, never a copy: a slash (or any change to the
// bond outside the registry) shows at once in Get and List.
func TestProviderStakeIsLive(t *testing.T) {
	ctx := &types.Context{Store: store.NewMem(), Height: 10}
	params.Set(ctx, staking.ModuleName, staking.DefaultParams())
	params.Set(ctx, ModuleName, DefaultParams())
	owner := types.ModuleAddress("prov")
	bank.Mint(ctx, owner, types.NewCoin("ukiln", 1_000_000_000))
	if err := Handle(ctx, &MsgRegisterProvider{Owner: owner, Endpoint: "https://127.0.0.1:8443", CertPEM: testCert(t),
		Inventory: validInventory(), Stake: types.NewCoin("ukiln", 100_000_000)}); err != nil {
		t.Fatal(err)
	}
	ctx.Height = 20
	slashed, err := staking.SlashBond(ctx, BondPurpose, owner, 15, 2500, "test")
	if err != nil || slashed != 25_000_000 {
		t.Fatalf("SlashBond = %d, %v", slashed, err)
	}
	if p, _ := Get(ctx, owner); p.Stake != 75_000_000 {
		t.Fatalf("Get after a 25%% slash: stake %d, want 75000000", p.Stake)
	}
	if ps := List(ctx); len(ps) != 1 || ps[0].Stake != 75_000_000 {
		t.Fatalf("List after a 25%% slash = %+v, want stake 75000000", ps)
	}
}
