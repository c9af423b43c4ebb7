package daemon_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// A finished batch job gives its GPUs back at once, though its outputs stay for
// output_retention: the chain frees the lease's capacity when it closes, so the next
// lease on those GPUs must start, not fail to find them.
func TestGPUsFreedWhenBatchEnds(t *testing.T) {
	n := startNet(t)
	n.startDaemon(t, filepath.Join(t.TempDir(), "provider")) // 8 H100, retention 1 min
	all := batchGroup
	all.Name, all.GPU.Units = "all", 8
	for i := 0; i < 2; i++ {
		// 30 s: an order, a lease, a job of milliseconds and the completion, at 200 ms blocks.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		id, _, _ := n.createOrder(t, ctx, market.KindBatch, all, 50_000)
		if out, err := n.c.WaitLease(ctx, id, 20*time.Millisecond, nil); err != nil || out.Lease == nil {
			cancel()
			t.Fatalf("job %d: no lease for order %d: %v", i, id, err)
		}
		pc := n.providerClient(t, ctx)
		if _, err := pc.SendManifest(ctx, id, api.Manifest{Services: []api.Service{{
			Name: "job", Count: 1, Command: []string{"sh", "-c", `echo "$CUDA_VISIBLE_DEVICES" > "$KILN_OUT/gpus"`},
			Resources: api.ServiceResources{CPUMilli: 1000, MemoryBytes: 512 * registry.Mi, GPUUnits: 8},
		}}}); err != nil {
			cancel()
			t.Fatalf("job %d on all 8 GPUs: %v", i, err)
		}
		if l := n.waitLease(t, ctx, id, "closed", closed); l.CloseReason != market.ReasonCompleted {
			cancel()
			t.Fatalf("job %d closed %s, want completed", i, l.CloseReason)
		}
		cancel()
	}
}
