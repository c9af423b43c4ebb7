package explorer

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// chartPoints is how many points a time chart has at most: one per bucket of heights.
const chartPoints = 120

// SourceDeclared is the inventory source of hardware typed by its operator.
const SourceDeclared = "declared"

// Overview is the network at a glance: the statistics table and the charts.
type Overview struct {
	ChainID         string  `json:"chain_id"`
	Height          int64   `json:"height,string"`
	BlocksPerSecond float64 `json:"blocks_per_second"`

	Providers       int `json:"providers"`
	ProvidersOnline int `json:"providers_online"`
	// ProvidersProbed is how many providers the explorer has probed at least once;
	// online counts only those that answered the last probe.
	ProvidersProbed int `json:"providers_probed"`

	GPUsDeclared int `json:"gpus_declared"`
	GPUsDetected int `json:"gpus_detected"`
	GPUsInUse    int `json:"gpus_in_use"`
	CPUsDeclared int `json:"cpu_cores_declared"`
	CPUsDetected int `json:"cpu_cores_detected"`
	// CPUsInUse is cores held by active leases (fractions of a core add up).
	CPUsInUse float64 `json:"cpu_cores_in_use"`
	// Utilization is the share of registered GPUs (CPU cores where there is no GPU)
	// that active leases hold, in percent.
	GPUUtilization float64 `json:"gpu_utilization_pct"`
	CPUUtilization float64 `json:"cpu_utilization_pct"`

	Models []ModelStat `json:"gpu_models"`

	Orders       int `json:"orders"`
	OpenOrders   int `json:"open_orders"`
	Leases       int `json:"leases"`
	ActiveLeases int `json:"active_leases"`

	// Escrow books summed over every order, in base units of Denom.
	Denom           string `json:"denom"`
	PaidToProviders uint64 `json:"paid_to_providers,string"`
	ProtocolFees    uint64 `json:"protocol_fees,string"`
	Refunded        uint64 `json:"refunded,string"`

	UtilizationSeries []SeriesData `json:"utilization_series"`
	PriceSeries       []SeriesData `json:"price_series"`
	Utilization       Chart        `json:"-"`
	Prices            Chart        `json:"-"`
}

// ModelStat is one GPU model across the network.
type ModelStat struct {
	Model     string `json:"model"`
	Declared  int    `json:"declared"`
	Detected  int    `json:"detected"`
	InUse     int    `json:"in_use"`
	Providers int    `json:"providers"`
	// PricePerGPUBlock is the median price per GPU per block of the model's active
	// leases (or, with none active, of its last 20 leases), in base units; 0: no lease
	// yet.
	PricePerGPUBlock float64 `json:"price_per_gpu_block"`
	// PricePerGPUHour is PricePerGPUBlock at the measured block rate, in whole coins
	// (KILN); 0 when there is no price or no block rate yet.
	PricePerGPUHour float64 `json:"price_per_gpu_hour"`
	PriceFrom       string  `json:"price_from,omitempty"` // "active leases" or "last leases"
}

// isDeclared says whether an inventory was typed by its operator, not measured.
func isDeclared(inv registry.Inventory) bool { return inv.Source == SourceDeclared }

// leaseGPUs returns how many GPUs lease l holds, and of which model (the first, for a
// lease across models).
func leaseGPUs(l market.LeaseView) (int, string) {
	n, model := 0, ""
	for _, g := range l.Usage.GPUs {
		n += int(g.Count)
		if model == "" {
			model = g.Model
		}
	}
	return n, model
}

// baseUnitsPerCoin: 1 KILN = 10^6 ukiln.
const baseUnitsPerCoin = 1e6

// buildOverview aggregates s. online says, per provider address, whether its last
// probe answered (absent: never probed). O(providers + orders + leases + escrow).
func buildOverview(s *Snapshot, online map[string]bool) *Overview {
	o := &Overview{ChainID: s.ChainID, Height: s.Height, BlocksPerSecond: s.BlocksPerSecond(), Providers: len(s.Providers),
		Orders: len(s.Orders), Leases: len(s.Leases), Denom: "ukiln"}
	models := map[string]*ModelStat{}
	model := func(m string) *ModelStat {
		if models[m] == nil {
			models[m] = &ModelStat{Model: m}
		}
		return models[m]
	}
	totalGPUs, totalCPU := 0, 0
	for _, p := range s.Providers {
		if up, probed := online[p.Owner.String()]; probed {
			o.ProvidersProbed++
			if up {
				o.ProvidersOnline++
			}
		}
		seen := map[string]bool{}
		for _, g := range p.Inventory.GPUs {
			ms := model(g.Model)
			if isDeclared(p.Inventory) {
				ms.Declared += int(g.Count)
				o.GPUsDeclared += int(g.Count)
			} else {
				ms.Detected += int(g.Count)
				o.GPUsDetected += int(g.Count)
			}
			if !seen[g.Model] {
				ms.Providers++
				seen[g.Model] = true
			}
			totalGPUs += int(g.Count)
		}
		if isDeclared(p.Inventory) {
			o.CPUsDeclared += int(p.Inventory.CPUCores)
		} else {
			o.CPUsDetected += int(p.Inventory.CPUCores)
		}
		totalCPU += int(p.Inventory.CPUCores)
	}
	for _, ord := range s.Orders {
		if ord.State == market.OrderOpen {
			o.OpenOrders++
		}
	}
	active := map[string][]float64{} // model -> price per GPU-block of active leases
	recent := map[string][]float64{} // model -> of every lease, oldest first
	for _, l := range s.Leases {
		n, m := leaseGPUs(l)
		if n > 0 {
			recent[m] = append(recent[m], float64(l.Price)/float64(n))
		}
		if l.State != market.LeaseActive {
			continue
		}
		o.ActiveLeases++
		o.GPUsInUse += n
		o.CPUsInUse += float64(l.Usage.CPUMilli) / 1000
		for _, g := range l.Usage.GPUs {
			model(g.Model).InUse += int(g.Count)
		}
		if n > 0 {
			active[m] = append(active[m], float64(l.Price)/float64(n))
		}
	}
	if totalGPUs > 0 {
		o.GPUUtilization = 100 * float64(o.GPUsInUse) / float64(totalGPUs)
	}
	if totalCPU > 0 {
		o.CPUUtilization = 100 * o.CPUsInUse / float64(totalCPU)
	}
	blocksPerHour := o.BlocksPerSecond * 3600
	for name, ms := range models {
		prices, from := active[name], "active leases"
		if len(prices) == 0 {
			prices, from = recent[name], "last leases"
			if len(prices) > 20 {
				prices = prices[len(prices)-20:]
			}
		}
		if len(prices) > 0 {
			ms.PricePerGPUBlock, ms.PriceFrom = median(prices), from
			ms.PricePerGPUHour = ms.PricePerGPUBlock * blocksPerHour / baseUnitsPerCoin
		}
		o.Models = append(o.Models, *ms)
	}
	sort.Slice(o.Models, func(i, j int) bool { return o.Models[i].Model < o.Models[j].Model })
	for _, a := range s.Escrow {
		o.PaidToProviders += a.Paid
		o.ProtocolFees += a.Fees
		o.Refunded += a.Refunded
	}
	o.UtilizationSeries, o.PriceSeries = utilizationSeries(s, totalGPUs, totalCPU), priceSeries(s, blocksPerHour)
	lo, hi := heightRange(s)
	o.Utilization = NewChartX("utilization", "Utilization", "height", "% in use", o.UtilizationSeries, "no provider registered yet", float64(lo), float64(hi))
	priceUnit := "KILN per GPU-hour"
	if blocksPerHour == 0 {
		priceUnit = "ukiln per GPU-block"
	}
	o.Prices = NewChartX("prices", "Price per GPU by model", "height", priceUnit, o.PriceSeries, "no GPU lease yet", float64(lo), float64(hi))
	return o
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// buckets splits heights lo..hi into at most chartPoints runs of equal width and
// returns the width and the count.
func buckets(lo, hi int64) (width int64, n int) {
	span := hi - lo + 1
	width = (span + chartPoints - 1) / chartPoints
	if width < 1 {
		width = 1
	}
	return width, int((span + width - 1) / width)
}

// heightRange is the span the time charts cover: from the first lease (or provider)
// to the snapshot's height.
func heightRange(s *Snapshot) (lo, hi int64) {
	hi, lo = s.Height, s.Height
	for _, l := range s.Leases {
		lo = min(lo, l.CreatedHeight)
	}
	for _, p := range s.Providers {
		lo = min(lo, p.CreatedHeight)
	}
	return max(lo, 1), max(hi, 1)
}

// utilizationSeries is, at the end of each bucket of heights, the share of the GPUs
// (and CPU cores) registered now that leases held then. A lease holds its resources
// from the height it was made to the height it closed. O(leases + chartPoints).
func utilizationSeries(s *Snapshot, totalGPUs, totalCPU int) []SeriesData {
	if totalGPUs == 0 && totalCPU == 0 {
		return nil
	}
	lo, hi := heightRange(s)
	width, n := buckets(lo, hi)
	gpu, cpu := make([]float64, n+1), make([]float64, n+1)
	// first bucket whose last height is >= h
	first := func(h int64) int {
		if h <= lo {
			return 0
		}
		i := int((h-lo+1+width-1)/width) - 1
		return min(max(i, 0), n)
	}
	for _, l := range s.Leases {
		g, _ := leaseGPUs(l)
		from, to := first(l.CreatedHeight), n
		if l.State == market.LeaseClosed && l.ClosedHeight > 0 {
			to = first(l.ClosedHeight)
		}
		if from >= to {
			continue
		}
		gpu[from] += float64(g)
		gpu[to] -= float64(g)
		cpu[from] += float64(l.Usage.CPUMilli) / 1000
		cpu[to] -= float64(l.Usage.CPUMilli) / 1000
	}
	var out []SeriesData
	add := func(name string, diff []float64, total int) {
		if total == 0 {
			return
		}
		sd := SeriesData{Name: name}
		run := 0.0
		for i := 0; i < n; i++ {
			run += diff[i]
			end := min(lo+int64(i+1)*width-1, hi)
			sd.Points = append(sd.Points, DataPoint{X: float64(end), Y: math.Round(1000*run/float64(total)) / 10})
		}
		out = append(out, sd)
	}
	add("GPUs", gpu, totalGPUs)
	add("CPU cores", cpu, totalCPU)
	return out
}

// priceSeries is, per GPU model, the mean price per GPU of the leases made in each
// bucket of heights: per hour at blocksPerHour, or per block when that is 0.
func priceSeries(s *Snapshot, blocksPerHour float64) []SeriesData {
	lo, hi := heightRange(s)
	width, _ := buckets(lo, hi)
	type acc struct{ sum, n float64 }
	per := map[string]map[int64]*acc{}
	for _, l := range s.Leases {
		n, m := leaseGPUs(l)
		if n == 0 {
			continue
		}
		b := (l.CreatedHeight - lo) / width
		if per[m] == nil {
			per[m] = map[int64]*acc{}
		}
		if per[m][b] == nil {
			per[m][b] = &acc{}
		}
		per[m][b].sum += float64(l.Price) / float64(n)
		per[m][b].n++
	}
	scale := 1.0
	if blocksPerHour > 0 {
		scale = blocksPerHour / baseUnitsPerCoin
	}
	var out []SeriesData
	for m, bs := range per {
		sd := SeriesData{Name: strings.ToUpper(m)}
		keys := make([]int64, 0, len(bs))
		for b := range bs {
			keys = append(keys, b)
		}
		slices.Sort(keys)
		for _, b := range keys {
			end := min(lo+(b+1)*width-1, hi)
			sd.Points = append(sd.Points, DataPoint{X: float64(end), Y: bs[b].sum / bs[b].n * scale})
		}
		out = append(out, sd)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
