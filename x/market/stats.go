package market

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// Lease history for network statistics: every lease made leaves a small record for
// LeaseHistoryBlocks, so that prices over the last N blocks are a walk over what was
// made in them, never over all leases.
//
//	market/made/<height(8)><id(8)><attempt(4)> → madeRecord (codec binary)
var madePrefix = []byte("market/made/")

// LeaseHistoryBlocks is how long lease records stay for statistics: 24 hours of
// 1-second blocks, the range the networks Kiln is compared with publish.
const LeaseHistoryBlocks = 86_400

// madeRecord is what statistics need of a lease made: its price per block and its
// GPUs (none for a CPU-only lease).
type madeRecord struct {
	Price uint64
	GPUs  []GPUCount
}

func (r *madeRecord) marshal() []byte {
	w := codec.NewWriter(48)
	w.Uvarint(r.Price)
	w.Uvarint(uint64(len(r.GPUs)))
	for _, g := range r.GPUs {
		w.String(g.Model)
		w.Uvarint(g.Count)
	}
	return w.Bytes()
}

func decodeMade(v []byte) madeRecord {
	r := codec.NewReader(v)
	m := madeRecord{Price: r.Uvarint()}
	n := r.Uvarint()
	for i := uint64(0); i < n && i < 64 && r.Err() == nil; i++ {
		m.GPUs = append(m.GPUs, GPUCount{GPUSpec: GPUSpec{Model: r.String(64)}, Count: r.Uvarint()})
	}
	if err := r.Done(); err != nil {
		panic(fmt.Sprintf("market: corrupt lease history record: %v", err))
	}
	return m
}

// noteMade records lease l for statistics.
func noteMade(ctx *types.Context, l *Lease) {
	k := binary.BigEndian.AppendUint32(u64key(madePrefix, uint64(ctx.Height), l.ID), l.Attempt)
	ctx.Store.Set(k, (&madeRecord{Price: l.Price, GPUs: l.Usage.GPUs}).marshal())
}

// pruneMade drops lease records older than LeaseHistoryBlocks: O(records dropped).
func pruneMade(ctx *types.Context) {
	cut := ctx.Height - LeaseHistoryBlocks
	if cut <= 0 {
		return
	}
	var old [][]byte
	ctx.Store.Iterate(madePrefix, func(k, _ []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(madePrefix):])) > cut {
			return false
		}
		old = append(old, bytes.Clone(k))
		return true
	})
	for _, k := range old {
		ctx.Store.Delete(k)
	}
}

// Count is a number of GPUs or CPU cores, split by where the inventory came from.
type Count struct {
	Total uint64 `json:"total,string"`
	// Detected were measured by the provider daemon (NVML, nvidia-smi, the OS);
	// Declared were typed by an operator.
	Detected uint64 `json:"detected,string"`
	Declared uint64 `json:"declared,string"`
}

func (c *Count) add(n uint64, source string) {
	c.Total += n
	if strings.HasPrefix(source, "detected") {
		c.Detected += n
	} else {
		c.Declared += n
	}
}

// ModelPrice is a GPU model's price per GPU-hour: the median of the leases made in
// the window, in ukiln and in the reference currency.
type ModelPrice struct {
	Model string `json:"model"`
	GPUs  uint64 `json:"gpus,string"` // registered
	// Leases is how many single-model leases of it were made in the window.
	Leases int `json:"leases"`
	// LeaseMedianUkiln is their median price per GPU-hour (0: none).
	LeaseMedianUkiln uint64  `json:"lease_median_ukiln_per_gpu_hour,string"`
	LeaseMedianRef   float64 `json:"lease_median_ref_per_gpu_hour"`
	// Asks and AskMedian* are the order book's live asks of the model (per GPU, each
	// ask counted once whatever its units).
	Asks           int     `json:"asks"`
	AskMedianUkiln uint64  `json:"ask_median_ukiln_per_gpu_hour,string"`
	AskMedianRef   float64 `json:"ask_median_ref_per_gpu_hour"`
}

// Stats are the network's figures: the table people compare compute networks by.
type Stats struct {
	Height int64 `json:"height,string"`
	// Providers registered; ProvidersOnline is those with at least min_provider_stake
	// bonded, able to take leases.
	Providers       int    `json:"providers"`
	ProvidersOnline int    `json:"providers_online"`
	GPUs            Count  `json:"gpus"`
	CPUs            Count  `json:"cpu_cores"`
	H100            uint64 `json:"h100,string"`
	A100            uint64 `json:"a100,string"`
	ActiveLeases    int    `json:"active_leases"`
	LeasedGPUs      uint64 `json:"leased_gpus,string"`
	LeasedCPUMilli  uint64 `json:"leased_cpu_milli,string"`
	// Utilization is leased GPUs over registered GPUs (CPU: millicores), 0 to 1.
	Utilization    float64 `json:"gpu_utilization"`
	CPUUtilization float64 `json:"cpu_utilization"`
	// WindowBlocks is the window of lease prices; BlocksPerHour converts prices per
	// block to per hour.
	WindowBlocks  int64 `json:"window_blocks,string"`
	BlocksPerHour int64 `json:"blocks_per_hour,string"`
	// RefCurrency and RefPerKILN are the reference currency and the rate (units of
	// it per KILN) the *_ref figures use: configured by the asker, not on chain.
	RefCurrency string       `json:"ref_currency"`
	RefPerKILN  float64      `json:"ref_per_kiln"`
	Prices      []ModelPrice `json:"prices"`
}

// StatsOptions are the asker's choices.
type StatsOptions struct {
	// WindowBlocks: lease prices over the last this many blocks (1 to
	// LeaseHistoryBlocks).
	WindowBlocks int64
	// BlocksPerHour converts prices per block to per hour (3600 for 1-second
	// blocks).
	BlocksPerHour int64
	RefCurrency   string
	RefPerKILN    float64
}

// DefaultStatsOptions: the last hour of 1-second blocks, 1 KILN = 1 USD.
func DefaultStatsOptions() StatsOptions {
	return StatsOptions{WindowBlocks: 3600, BlocksPerHour: 3600, RefCurrency: "USD", RefPerKILN: 1}
}

// Validate checks the options, naming the one that is wrong.
func (o StatsOptions) Validate() error {
	switch {
	case o.WindowBlocks < 1 || o.WindowBlocks > LeaseHistoryBlocks:
		return types.InvalidField("blocks", o.WindowBlocks, fmt.Sprintf("must be 1 to %d", LeaseHistoryBlocks))
	case o.BlocksPerHour < 1 || o.BlocksPerHour > 3_600_000:
		return types.InvalidField("blocks_per_hour", o.BlocksPerHour, "must be 1 to 3600000")
	case len(o.RefCurrency) < 1 || len(o.RefCurrency) > 8 || strings.ToUpper(o.RefCurrency) != o.RefCurrency:
		return types.InvalidField("ref", o.RefCurrency, "must be 1-8 upper-case letters, like USD")
	case !(o.RefPerKILN > 0) || o.RefPerKILN > 1e9 || math.IsInf(o.RefPerKILN, 0):
		return types.InvalidField("ref_per_kiln", o.RefPerKILN, "must be above 0 and at most 1e9")
	}
	return nil
}

// NetworkStats computes the network's figures. It walks every provider's index record
// and usage, the active leases, the lease records of the window and the order book's
// asks: a query, never run by the ledger itself.
func NetworkStats(ctx *types.Context, o StatsOptions) (Stats, error) {
	if err := o.Validate(); err != nil {
		return Stats{}, err
	}
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	s := Stats{Height: ctx.Height, WindowBlocks: o.WindowBlocks, BlocksPerHour: o.BlocksPerHour, RefCurrency: o.RefCurrency, RefPerKILN: o.RefPerKILN}
	perModel := map[string]*ModelPrice{}
	model := func(m string) *ModelPrice {
		if perModel[m] == nil {
			perModel[m] = &ModelPrice{Model: m}
		}
		return perModel[m]
	}
	ctx.Store.Iterate(freeOfPrefix, func(k, v []byte) bool {
		var p types.Address
		copy(p[:], k[len(freeOfPrefix):])
		f, _ := getFreeRecord(ctx, p)
		inv := f.Inventory
		s.Providers++
		if staking.Bonded(ctx, registry.BondPurpose, p) >= rp.MinProviderStake {
			s.ProvidersOnline++
		}
		s.CPUs.add(inv.CPUCores, inv.Source)
		for _, g := range inv.GPUs {
			s.GPUs.add(uint64(g.Count), inv.Source)
			model(g.Model).GPUs += uint64(g.Count)
		}
		return true
	})
	if m := perModel["h100"]; m != nil {
		s.H100 = m.GPUs
	}
	if m := perModel["a100"]; m != nil {
		s.A100 = m.GPUs
	}
	ctx.Store.Iterate(usedPrefix, func(_, v []byte) bool {
		var u Usage
		if err := json.Unmarshal(v, &u); err != nil {
			panic(fmt.Sprintf("market: corrupt usage record: %v", err))
		}
		s.LeasedCPUMilli += u.CPUMilli
		for _, g := range u.GPUs {
			s.LeasedGPUs += g.Count
		}
		return true
	})
	ctx.Store.Iterate(activePrefix, func(_, _ []byte) bool {
		s.ActiveLeases++
		return true
	})
	if s.GPUs.Total > 0 {
		s.Utilization = float64(s.LeasedGPUs) / float64(s.GPUs.Total)
	}
	if s.CPUs.Total > 0 {
		s.CPUUtilization = float64(s.LeasedCPUMilli) / float64(s.CPUs.Total*1000)
	}
	// Lease prices per GPU-hour, single-model leases of the window.
	leased := map[string][]uint64{}
	from := u64key(madePrefix, uint64(max(ctx.Height-o.WindowBlocks+1, 0)))
	ctx.Store.Iterate(madePrefix, func(k, v []byte) bool {
		if bytes.Compare(k, from) < 0 {
			return true // NB: older than the window; the store has no seek, and history is bounded by pruning
		}
		m := decodeMade(v)
		if len(m.GPUs) != 1 || m.GPUs[0].Count == 0 {
			return true
		}
		g := m.GPUs[0]
		leased[g.Model] = append(leased[g.Model], perHour(m.Price, g.Count, o.BlocksPerHour))
		return true
	})
	asks := askPrices(ctx)
	for m, ps := range leased {
		mp := model(m)
		mp.Leases, mp.LeaseMedianUkiln = len(ps), median(ps)
		mp.LeaseMedianRef = toRef(mp.LeaseMedianUkiln, o.RefPerKILN)
	}
	for m, ps := range asks {
		per := make([]uint64, len(ps))
		for i, p := range ps {
			per[i] = perHour(p, 1, o.BlocksPerHour)
		}
		mp := model(m)
		mp.Asks, mp.AskMedianUkiln = len(ps), median(per)
		mp.AskMedianRef = toRef(mp.AskMedianUkiln, o.RefPerKILN)
	}
	for _, mp := range perModel {
		s.Prices = append(s.Prices, *mp)
	}
	sort.Slice(s.Prices, func(i, j int) bool { return s.Prices[i].Model < s.Prices[j].Model })
	if s.Prices == nil {
		s.Prices = []ModelPrice{}
	}
	return s, nil
}

// askPrices returns each GPU model's live asks in the order book, as prices per GPU
// per block (CPU asks are not per GPU and are left out).
func askPrices(ctx *types.Context) map[string][]uint64 {
	out := map[string][]uint64{}
	ctx.Store.Iterate(askPrefix, func(_, v []byte) bool {
		var a Ask
		mustUnmarshal(v, &a)
		if a.Class != ClassCPU {
			out[a.Class] = append(out[a.Class], a.Price)
		}
		return true
	})
	return out
}

func perHour(pricePerBlock, units uint64, blocksPerHour int64) uint64 {
	return types.MulDiv(pricePerBlock, uint64(blocksPerHour), max(units, 1))
}

func toRef(ukiln uint64, refPerKILN float64) float64 {
	return math.Round(float64(ukiln)/1e6*refPerKILN*10000) / 10000
}

func median(xs []uint64) uint64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1]/2 + s[n/2]/2 + (s[n/2-1]%2+s[n/2]%2)/2
}
