package daemon

import (
	"testing"

	"github.com/kiln-network/kiln/x/registry"
)

// GPUs given out before a restart stay taken after it: the restored pool never hands
// a running task's GPU to another lease.
func TestGPUPoolRestore(t *testing.T) {
	inv := registry.Inventory{Source: "declared", GPUs: []registry.GPU{{Model: "h100", Count: 4}}}
	p := newGPUPool(inv, nil)
	first, err := p.take(1, "h100", 2)
	if err != nil {
		t.Fatal(err)
	}
	restarted := newGPUPool(inv, nil)
	restarted.restore(p.held())
	if _, err := restarted.take(2, "h100", 3); err == nil {
		t.Fatal("the restored pool gave out GPUs still held by lease 1")
	}
	second, err := restarted.take(2, "h100", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range first {
		for _, b := range second {
			if a == b {
				t.Fatalf("GPU %s given to both leases", a)
			}
		}
	}
	restarted.release(1)
	if _, err := restarted.take(3, "h100", 2); err != nil {
		t.Fatalf("after lease 1 ended its GPUs are not free: %v", err)
	}
}
