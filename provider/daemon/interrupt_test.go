package daemon_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// A deploy interrupted (Ctrl-C cancels its context) before the provider accepted
// the manifest closes its order: nothing is left open to be leased later, and the
// whole deposit comes back. A deploy whose manifest the provider cannot start
// closes the same way, with the provider's error named.
func TestDeployEndedBeforeRunningClosesOrder(t *testing.T) {
	n := startNet(t)
	n.startDaemon(t, filepath.Join(t.TempDir(), "provider"))
	svc := api.Service{Name: "job", Command: []string{"sleep", "30"}, Count: 1,
		Resources: api.ServiceResources{Unit: 1, CPUMilli: 1000, MemoryBytes: 512 << 20, GPUUnits: 1}}
	tests := []struct {
		name      string
		interrupt string // cancel the deploy when progress says this
		command   []string
		reason    string // the order's close reason
		errWant   string
	}{
		{"interrupted waiting for the lease", "placed at height", nil, market.ReasonTenantClosed, "context canceled"},
		{"interrupted before the manifest", "ukiln/block", nil, market.ReasonTenantClosed, "context canceled"},
		{"the provider cannot start it", "", []string{"/nonexistent/kiln-no-such-program"}, market.ReasonWorkloadFailed, api.CodeStartFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 30 s: an order, a lease, and the close, at 200 ms blocks.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dctx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			s := svc
			if tt.command != nil {
				s.Command = tt.command
			}
			plan := tenant.Plan{Name: "job", Kind: market.KindBatch, Groups: []market.Group{batchGroup}, MaxPrice: 5000,
				Deposit: types.NewCoin(types.NativeDenom, 5000*50), Manifest: api.Manifest{Services: []api.Service{s}}}
			var said []string
			opts := tenant.Options{CertDir: t.TempDir(), Progress: func(line string) {
				said = append(said, line)
				if tt.interrupt != "" && strings.Contains(line, tt.interrupt) {
					interrupt()
				}
			}}
			r, err := tenant.Deploy(dctx, n.c, n.tenantKey, plan, opts)
			if err == nil || !strings.Contains(err.Error(), tt.errWant) {
				t.Fatalf("Deploy() = %+v, %v; want an error naming %q", r, err, tt.errWant)
			}
			if tt.interrupt != "" && !errors.Is(err, context.Canceled) {
				t.Fatalf("Deploy() error %v does not wrap context.Canceled", err)
			}
			o, err := n.c.Order(ctx, r.OrderID)
			if err != nil || o.State != market.OrderClosed || o.CloseReason != tt.reason {
				t.Fatalf("order %d after the deploy ended = %+v, %v; want closed %s\nprogress: %q", r.OrderID, o, err, tt.reason, said)
			}
			acct, err := n.c.Escrow(ctx, r.OrderID)
			if err != nil || acct.Paid != 0 || acct.Fees != 0 || acct.Refunded != acct.Deposited {
				t.Fatalf("escrow = %+v, %v; want nothing paid, all refunded", acct, err)
			}
		})
	}
}
