package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Asked about a lease another provider runs, the daemon's tenant API says which
// provider runs it (from the chain), not that the lease does not exist.
func TestLeaseOfAnotherProvider(t *testing.T) {
	n := startNet(t)
	n.startDaemon(t, filepath.Join(t.TempDir(), "provider"))
	// 30 s: a registration, an order and its auction at 200 ms blocks.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A second provider, registered by hand in a region the daemon does not serve,
	// bids on an order only it can take.
	key2, addr2 := newKey(t)
	if _, err := n.c.Send(ctx, n.tenantKey, client.SignOptions{}, &bank.MsgSend{From: n.tenant, To: addr2,
		Amount: types.Coins{types.NewCoin(types.NativeDenom, 300_000_000)}}); err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := tenant.GenerateClientCert(addr2.String(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.c.Send(ctx, key2, client.SignOptions{}, &registry.MsgRegisterProvider{Owner: addr2, Endpoint: "https://127.0.0.1:1",
		CertPEM: certPEM, Stake: types.NewCoin(types.NativeDenom, 100_000_000),
		Inventory: registry.Inventory{Source: "declared", Region: "elsewhere-1", CPUCores: 4, MemoryBytes: 8 * registry.Gi, StorageBytes: 50 * registry.Gi,
			Runtime: registry.DefaultRuntime()}}); err != nil {
		t.Fatalf("register the second provider: %v", err)
	}
	g := market.Group{Name: "cpu", Count: 1, CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, StorageBytes: registry.Gi, Region: "elsewhere-1"}
	id, _, _ := n.createOrder(t, ctx, market.KindBatch, g, 1000)
	if _, err := n.c.Send(ctx, key2, client.SignOptions{}, &market.MsgCreateBid{Provider: addr2, OrderID: id, Price: 10}); err != nil {
		t.Fatalf("bid: %v", err)
	}
	out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil)
	if err != nil || out.Lease == nil || out.Lease.Provider != addr2 {
		t.Fatalf("order %d: lease %+v, %v; want one with %s", id, out.Lease, err, addr2)
	}

	_, err = n.providerClient(t, ctx).Status(ctx, id)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeLeaseElsewhere || e.Status != http.StatusMisdirectedRequest || !strings.Contains(e.Message, addr2.String()) {
		t.Fatalf("Status(%d) from the daemon that does not run it = %v; want %s (HTTP 421) naming %s", id, err, api.CodeLeaseElsewhere, addr2)
	}
}
