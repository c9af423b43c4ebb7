package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// A completed batch lease's outputs stay downloadable for output_retention by the
// daemon's clock, and are erased once it has passed: the test moves a fake clock
// rather than waiting an hour.
func TestOutputRetentionByClock(t *testing.T) {
	n := startNet(t)
	var skew atomic.Int64 // added to the real time by the daemon's clock
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	cfg := testConfig(filepath.Join(t.TempDir(), "provider"))
	cfg.OutputRetention = daemon.Duration(time.Hour)
	n.startDaemonDeps(t, cfg, daemon.Deps{Clock: clock})

	// 30 s: an order, a lease, a job of milliseconds and the completion, at 200 ms blocks.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, _, _ := n.createOrder(t, ctx, market.KindBatch, batchGroup, 5000)
	if out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil); err != nil || out.Lease == nil {
		t.Fatalf("no lease for order %d: %v", id, err)
	}
	pc := n.providerClient(t, ctx)
	if _, err := pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{{
		Name: "job", Count: 1, Command: []string{"sh", "-c", `echo kept > "$KILN_OUT/out.txt"`},
		Resources: api.ServiceResources{CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, GPUUnits: 1},
	}}}); err != nil {
		t.Fatal(err)
	}
	if l := n.waitLease(t, ctx, id, "closed", closed); l.CloseReason != market.ReasonCompleted {
		t.Fatalf("lease closed %s, want completed", l.CloseReason)
	}
	// Blocks go by with the clock inside the retention: the outputs stay.
	h, _ := n.c.AppHeight(ctx)
	if err := n.c.WaitHeight(ctx, h+3); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := pc.DownloadOutput(ctx, id, "out.txt", &got); err != nil || got.String() != "kept\n" {
		t.Fatalf("download within retention = %q, %v", got.String(), err)
	}
	skew.Store(int64(time.Hour + time.Minute))
	poll.WaitFor(t, timeLeft(ctx), func() error {
		got.Reset()
		_, err := pc.DownloadOutput(ctx, id, "out.txt", &got)
		var ae *api.Error
		if errors.As(err, &ae) {
			return nil // erased: the provider answers with a named error
		}
		return fmt.Errorf("outputs still served after the retention passed by the daemon's clock: %q, %v", got.String(), err)
	})
}
