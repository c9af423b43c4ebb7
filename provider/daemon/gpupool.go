package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kiln-network/kiln/x/registry"
)

// gpuPool hands out GPU ids (detected UUIDs; "declared-MODEL-N" for a declared inventory) to
// tasks. The daemon persists the assignments (persisted.GPUs) and restores them on
// start, so recovered tasks keep their GPUs to themselves.
type gpuPool struct {
	mu    sync.Mutex
	free  map[string][]string // by model
	owner map[uint64][]gpuTaken
}

type gpuTaken = GPUAssignment

// restore marks GPUs as taken by the leases that held them before a restart.
func (p *gpuPool) restore(held map[uint64][]GPUAssignment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for lease, gs := range held {
		for _, g := range gs {
			free := p.free[g.Model]
			if i := slices.Index(free, g.ID); i >= 0 {
				p.free[g.Model] = slices.Delete(free, i, i+1)
				p.owner[lease] = append(p.owner[lease], g)
			}
		}
	}
}

// held returns a copy of the current assignments.
func (p *gpuPool) held() map[uint64][]GPUAssignment {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint64][]GPUAssignment, len(p.owner))
	for l, gs := range p.owner {
		out[l] = append([]GPUAssignment(nil), gs...)
	}
	return out
}

func newGPUPool(inv registry.Inventory, uuids map[string][]string) *gpuPool {
	p := &gpuPool{free: map[string][]string{}, owner: map[uint64][]gpuTaken{}}
	if uuids != nil {
		for m, ids := range uuids {
			p.free[m] = append([]string(nil), ids...)
		}
		return p
	}
	for _, g := range inv.GPUs {
		for i := 0; i < int(g.Count); i++ {
			p.free[g.Model] = append(p.free[g.Model], fmt.Sprintf("%s-%s-%d", inv.Source, g.Model, len(p.free[g.Model])))
		}
	}
	return p
}

func (p *gpuPool) take(leaseID uint64, model string, n uint32) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if model == "" {
		for m, ids := range p.free {
			if len(ids) >= int(n) {
				model = m
				break
			}
		}
	}
	if len(p.free[model]) < int(n) {
		return nil, fmt.Errorf("%d %s GPUs asked, %d free", n, model, len(p.free[model]))
	}
	ids := p.free[model][:n]
	p.free[model] = p.free[model][n:]
	for _, id := range ids {
		p.owner[leaseID] = append(p.owner[leaseID], gpuTaken{Model: model, ID: id})
	}
	return append([]string(nil), ids...), nil
}

func (p *gpuPool) release(leaseID uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.owner[leaseID] {
		p.free[t.Model] = append(p.free[t.Model], t.ID)
	}
	delete(p.owner, leaseID)
}

// assignGPUs is the lease manager's AssignGPUs: GPUs of the model the lease won.
func (d *Daemon) assignGPUs(leaseID uint64, _ string, units uint32) ([]string, error) {
	model := ""
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if l, err := d.deps.Client.Lease(ctx, leaseID); err == nil {
		for _, g := range l.GPUs {
			if g.Model != "" {
				model = g.Model
				break
			}
		}
	}
	ids, err := d.gpus.take(leaseID, model, units)
	if err == nil {
		d.mu.Lock()
		d.st.GPUs = d.gpus.held()
		d.mu.Unlock()
		d.save()
	}
	return ids, err
}
