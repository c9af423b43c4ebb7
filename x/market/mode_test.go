package market

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
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

// instant is a test pricing mode, a sibling of the auction added without touching the
// core: the first fitting bid wins in the block it is placed; nobody picks; an order
// nobody bids on closes after 5 blocks.
type instant struct{}

func (instant) Name() string { return "instant" }
func (instant) Open(ctx *types.Context, _ Params, o *Order) {
	o.BidOpenHeight, o.BidCloseHeight, o.ExpireHeight = ctx.Height, ctx.Height, ctx.Height+5
	schedule(ctx, o, o.ExpireHeight)
}
func (instant) Bid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) error {
	b, err := placeBid(ctx, p, o, m)
	if err != nil {
		return err
	}
	makeLease(ctx, p, o, b)
	return nil
}
func (instant) Pick(*types.Context, Params, *Order, *MsgCreateLease) error {
	return types.Wrapf(types.ErrInvalidRequest, "instant orders take the first bid")
}
func (instant) Check(ctx *types.Context, _ Params, o *Order) { closeOrder(ctx, o, ReasonNoBids) }

func selfSignedPEM(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "provider"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// A pricing mode is a sibling behind Mode: the core routes an order's bids, picks and
// checks to the mode it names, keeps capacity, escrow and leases itself, and refuses a
// mode nobody registered.
func TestModeIsASibling(t *testing.T) {
	modes["instant"] = instant{}
	defer delete(modes, "instant")

	ctx := &types.Context{Store: store.NewMem(), Height: 10}
	for name, p := range map[string]params.Validator{staking.ModuleName: staking.DefaultParams(), registry.ModuleName: registry.DefaultParams(),
		ModuleName: DefaultParams(), escrow.ModuleName: escrow.DefaultParams(), bank.ModuleName: bank.DefaultParams()} {
		if err := params.Set(ctx, name, p); err != nil {
			t.Fatal(err)
		}
	}
	prov, tenant := types.ModuleAddress("test-provider"), types.ModuleAddress("test-tenant")
	for _, a := range []types.Address{prov, tenant} {
		bank.Mint(ctx, a, types.NewCoin(types.NativeDenom, 1_000_000_000))
	}
	inv := registry.Inventory{Source: "declared", Region: "eu-west", CPUCores: 8, MemoryBytes: 32 * registry.Gi, StorageBytes: 100 * registry.Gi,
		Runtime: registry.DefaultRuntime()}
	if err := registry.Handle(ctx, &registry.MsgRegisterProvider{Owner: prov, Endpoint: "https://127.0.0.1:8443", CertPEM: selfSignedPEM(t),
		Inventory: inv, Stake: types.NewCoin(types.NativeDenom, 100_000_000)}); err != nil {
		t.Fatal(err)
	}
	g := Group{Name: "main", Count: 1, CPUMilli: 1000, MemoryBytes: registry.Gi}
	bad := &MsgCreateOrder{Owner: tenant, Kind: KindBatch, Groups: []Group{g}, MaxPrice: 100, Deposit: types.NewCoin(types.NativeDenom, 10_000), Mode: "sealed-later"}
	if err := bad.ValidateBasic(); err == nil {
		t.Fatal("an order naming an unregistered mode passed ValidateBasic")
	}
	for _, mode := range []string{"instant", ""} {
		o := &MsgCreateOrder{Owner: tenant, Kind: KindBatch, Groups: []Group{g}, MaxPrice: 100, Deposit: types.NewCoin(types.NativeDenom, 10_000), Mode: mode}
		if err := o.ValidateBasic(); err != nil {
			t.Fatalf("mode %q: %v", mode, err)
		}
		if err := Handle(ctx, o); err != nil {
			t.Fatalf("create order (mode %q): %v", mode, err)
		}
	}
	// The instant order takes a bid in its own block and leases at once; the auction's
	// refuses it before its window opens.
	if err := Handle(ctx, &MsgCreateBid{Provider: prov, OrderID: 1, Price: 90}); err != nil {
		t.Fatalf("bid on the instant order: %v", err)
	}
	if l, ok := GetLease(ctx, 1); !ok || l.Provider != prov || l.Price != 90 || l.CreatedHeight != 10 {
		t.Fatalf("instant order's lease = %+v, %v; want p at 90 made at 10", l, ok)
	}
	if o, _ := GetOrder(ctx, 1); o.Mode != "instant" || o.State != OrderActive {
		t.Fatalf("instant order = %+v", o)
	}
	if o, _ := GetOrder(ctx, 2); o.Mode != ModeAuction {
		t.Fatalf("an order without a mode has mode %q, want %q", o.Mode, ModeAuction)
	}
	if err := Handle(ctx, &MsgCreateBid{Provider: prov, OrderID: 2, Price: 90}); err == nil {
		t.Fatal("the auction order took a bid in the block it was placed")
	}
	if err := Handle(ctx, &MsgCreateLease{Owner: tenant, OrderID: 1, Provider: prov}); err == nil {
		t.Fatal("the instant mode's Pick was not consulted")
	}
	if err := CheckInvariants(ctx); err != nil {
		t.Fatal(err)
	}
}
