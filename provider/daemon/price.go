package daemon

import (
	"fmt"
	"math/big"
	"time"

	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Price returns the per-block price of an order's groups placed on the GPUs chosen
// per group (market.Fit's choices): the sum over groups of count × (GPU units ×
// gpu_hour[model] + cores × cpu_core_hour + GiB of memory × memory_gib_hour + GiB of
// storage × storage_gib_hour), plus the margin, scaled from an hour to one block
// and rounded up, and at least MinPrice. It fails when a chosen GPU model has no
// price.
func (p Pricing) Price(groups []market.Group, gpus []market.GPUSpec) (uint64, error) {
	perHour := new(big.Rat)
	add := func(count, amount uint64, denom int64, price uint64) {
		x := new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(count), new(big.Int).SetUint64(amount)), big.NewInt(denom))
		perHour.Add(perHour, x.Mul(x, new(big.Rat).SetInt(new(big.Int).SetUint64(price))))
	}
	for i, g := range groups {
		n := uint64(g.Count)
		if g.GPU.Units > 0 {
			if i >= len(gpus) || gpus[i].Model == "" {
				return 0, fmt.Errorf("price group %s: no GPU chosen", g.Name)
			}
			gp, ok := p.GPUHour[gpus[i].Model]
			if !ok {
				return 0, fmt.Errorf("price group %s: no gpu_hour price for model %q", g.Name, gpus[i].Model)
			}
			add(n, uint64(g.GPU.Units), 1, gp)
		}
		add(n, g.CPUMilli, 1000, p.CPUCoreHour)
		add(n, g.MemoryBytes, int64(registry.Gi), p.MemoryGiBHour)
		add(n, g.StorageBytes, int64(registry.Gi), p.StorageGiBHour)
	}
	if p.MarginBps > 0 {
		perHour.Mul(perHour, big.NewRat(int64(10_000+p.MarginBps), 10_000))
	}
	perBlock := perHour.Mul(perHour, big.NewRat(int64(p.BlockTime), int64(time.Hour)))
	q, r := new(big.Int).QuoRem(perBlock.Num(), perBlock.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsUint64() {
		return 0, fmt.Errorf("price overflows: %s per block", q)
	}
	return max(q.Uint64(), p.MinPrice), nil
}
