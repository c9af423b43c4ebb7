package market

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// The free-capacity index: which providers have free resources of a class, most free
// first, across all regions and per region, so that finding the providers that can
// take an order is a seek in an ordered store, not a walk over every provider.
//
//	market/free/a/<class>/<^free(8)><provider>           every region
//	market/free/r/<region>/<class>/<^free(8)><provider>  one region
//	market/free/p/a/<class>/<provider> → free(8)         the same, by address (the pool)
//	market/free/p/r/<region>/<class>/<provider> → free(8)
//	market/freeof/<provider> → freeRecord: the provider's index keys (to replace
//	                           them) and its inventory (to check an order against)
//
// The pool entries order the same providers by address instead, for draws that must
// not favour the most free: stake-pool assignment walks them from a random address
// (stakeCandidates).
//
// A class is "cpu" (free CPU in millicores), "gpu/*" (the most free GPUs of any one
// spec) or "gpu/<model>" (the most free GPUs of one spec of that model). ^free is the
// free amount's bitwise complement, big-endian, so keys sort most free first. A
// provider has an entry only where its free amount is above zero. The index is
// rewritten whenever a provider's free capacity changes: a lease made or closed, an
// inventory registered, updated or removed (registry's change hook, wired by Wire).
var (
	freePrefix   = []byte("market/free/")
	freeOfPrefix = []byte("market/freeof/")
)

const (
	classCPU    = "cpu"
	classAnyGPU = "gpu/*"
)

func classGPU(model string) string { return "gpu/" + model }

func freeScopeAll(class string) []byte {
	return append(append(append([]byte{}, freePrefix...), "a/"...), class+"/"...)
}

func freeScopeRegion(region, class string) []byte {
	return append(append(append([]byte{}, freePrefix...), "r/"...), region+"/"+class+"/"...)
}

func poolScopeAll(class string) []byte {
	return append(append(append([]byte{}, freePrefix...), "p/a/"...), class+"/"...)
}

func poolScopeRegion(region, class string) []byte {
	return append(append(append([]byte{}, freePrefix...), "p/r/"...), region+"/"+class+"/"...)
}

func freeKey(scope []byte, free uint64, p types.Address) []byte {
	k := binary.BigEndian.AppendUint64(bytes.Clone(scope), ^free)
	return append(k, p[:]...)
}

// freeAmounts returns a provider's free amount per class (only those above zero), in
// class order.
func freeAmounts(free Usage) [][2]any {
	var out [][2]any
	if free.CPUMilli > 0 {
		out = append(out, [2]any{classCPU, free.CPUMilli})
	}
	perModel := map[string]uint64{}
	var most uint64
	for _, g := range free.GPUs {
		perModel[g.Model] = max(perModel[g.Model], g.Count)
		most = max(most, g.Count)
	}
	if most > 0 {
		out = append(out, [2]any{classAnyGPU, most})
	}
	// NB: sorted, so every node writes the same keys in the same order.
	models := make([]string, 0, len(perModel))
	for m := range perModel {
		models = append(models, m)
	}
	slices.Sort(models)
	for _, m := range models {
		out = append(out, [2]any{classGPU(m), perModel[m]})
	}
	return out
}

// indexEntries returns provider p's index entries for its inventory and usage: keys
// and their values (present, or the free amount for a pool entry), in step.
func indexEntries(p types.Address, inv registry.Inventory, used Usage) (keys, vals [][]byte) {
	for _, c := range freeAmounts(Free(Total(inv), used)) {
		class, n := c[0].(string), c[1].(uint64)
		amount := binary.BigEndian.AppendUint64(nil, n)
		keys = append(keys, freeKey(freeScopeAll(class), n, p), freeKey(freeScopeRegion(inv.Region, class), n, p),
			append(poolScopeAll(class), p[:]...), append(poolScopeRegion(inv.Region, class), p[:]...))
		vals = append(vals, present, present, amount, amount)
	}
	return keys, vals
}

func freeOfKey(p types.Address) []byte { return append(bytes.Clone(freeOfPrefix), p[:]...) }

// freeRecord is what the index keeps per provider, in the codec's binary encoding: its
// index keys, and a copy of its inventory so that checking a candidate against an
// order reads one small record instead of decoding the registry's (with its
// certificate).
type freeRecord struct {
	Keys      [][]byte
	Inventory registry.Inventory
}

func (f *freeRecord) marshal() []byte {
	w := codec.NewWriter(256)
	w.Uvarint(uint64(len(f.Keys)))
	for _, k := range f.Keys {
		w.WriteBytes(k)
	}
	f.Inventory.MarshalTo(w)
	return w.Bytes()
}

func getFreeRecord(ctx *types.Context, p types.Address) (freeRecord, bool) {
	v, ok := ctx.Store.Get(freeOfKey(p))
	if !ok {
		return freeRecord{}, false
	}
	r := codec.NewReader(v)
	var f freeRecord
	n := r.Uvarint()
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		f.Keys = append(f.Keys, r.Bytes(256))
	}
	f.Inventory = registry.UnmarshalInventory(r)
	if err := r.Done(); err != nil {
		panic(fmt.Sprintf("market: corrupt free-capacity record of %s: %v", p, err))
	}
	return f, true
}

// reindex rewrites provider p's entries in the free-capacity index from its current
// inventory and usage (none once it is deregistered).
func reindex(ctx *types.Context, p types.Address) {
	if old, ok := getFreeRecord(ctx, p); ok {
		for _, k := range old.Keys {
			ctx.Store.Delete(k)
		}
	}
	prov, ok := registry.Get(ctx, p)
	if !ok {
		ctx.Store.Delete(freeOfKey(p))
		return
	}
	keys, vals := indexEntries(p, prov.Inventory, Used(ctx, p))
	f := freeRecord{Keys: keys, Inventory: prov.Inventory}
	for i, k := range keys {
		ctx.Store.Set(k, vals[i])
	}
	// NB: kept even with no free capacity, so that a provider's inventory is at hand
	// when its capacity frees up.
	ctx.Store.Set(freeOfKey(p), f.marshal())
}

// checkIndex returns an error unless the free-capacity index holds exactly what every
// registered provider's inventory and usage say. O(providers): for tests and audits.
// Where the registry's change hook is not wired (bare unit tests of one module), the
// index is not kept and not checked; the app always wires it (Wire).
func checkIndex(ctx *types.Context) error {
	if !registry.ChangeHooksWired(ctx.Hooks) {
		return nil
	}
	want := map[string][]byte{}
	for _, prov := range registry.List(ctx) {
		keys, vals := indexEntries(prov.Owner, prov.Inventory, Used(ctx, prov.Owner))
		for i, k := range keys {
			want[string(k)] = vals[i]
		}
		f, ok := getFreeRecord(ctx, prov.Owner)
		if got, wantRec := f.marshal(), (&freeRecord{Keys: keys, Inventory: prov.Inventory}).marshal(); !ok || !bytes.Equal(got, wantRec) {
			return fmt.Errorf("market: free-capacity record of provider %s is %+v (present %v), its registry record and usage give %+v", prov.Owner, f, ok, keys)
		}
	}
	n := 0
	var bad error
	ctx.Store.Iterate(freePrefix, func(k, v []byte) bool {
		if w, ok := want[string(k)]; !ok || !bytes.Equal(v, w) {
			bad = fmt.Errorf("market: free-capacity index has %q = %x, which no provider's free capacity gives (want %x, %v)", k, v, w, ok)
			return false
		}
		n++
		return true
	})
	if bad != nil {
		return bad
	}
	if n != len(want) {
		return fmt.Errorf("market: free-capacity index has %d entries, providers' free capacity gives %d", n, len(want))
	}
	return nil
}

// Candidate is a provider that can take an order now, with what it would reserve.
type Candidate struct {
	Provider types.Address `json:"provider"`
	// Free is the provider's free amount of the class the search went by (GPUs of
	// the order's largest GPU group, or CPU millicores for a CPU-only order).
	Free  uint64    `json:"free,string"`
	Usage Usage     `json:"usage"`
	GPUs  ShownGPUs `json:"gpus,omitempty"`

	choices []GPUSpec // the GPU each group gets, as a bid carries them
	stake   uint64    // bonded
}

// maxExamined bounds one search: entries the index offers that then fail an order's
// other requirements (attributes, memory, runtime, a bid already placed) are skipped,
// at most this many per candidate sought plus a floor, so one order's search costs
// O(limit) seeks whatever the network's size.
const (
	examinedPerCandidate = 16
	examinedFloor        = 64
)

// searchClass picks what the index is searched by for groups: the class and free
// amount the most demanding group needs, and its region ("" for any).
func searchClass(groups []Group) (classes []string, want uint64, region string) {
	best := -1
	for i, g := range groups {
		if n := uint64(g.Count) * uint64(g.GPU.Units); n > 0 && (best < 0 || n > want) {
			best, want = i, n
		}
	}
	if best < 0 {
		var cpu uint64
		for _, g := range groups {
			cpu += uint64(g.Count) * g.CPUMilli
			if g.Region != "" {
				region = g.Region
			}
		}
		return []string{classCPU}, max(cpu, 1), region
	}
	g := groups[best]
	for _, f := range g.GPU.Models {
		if f.Model == "" || f.Model == "*" {
			return []string{classAnyGPU}, want, g.Region
		}
		if !slices.Contains(classes, classGPU(f.Model)) {
			classes = append(classes, classGPU(f.Model))
		}
	}
	if len(classes) == 0 {
		classes = []string{classAnyGPU}
	}
	return classes, want, g.Region
}

// Candidates returns up to limit providers that could bid on open order id now and
// have the bid accepted (registered with the minimum stake, not excluded, no bid yet,
// its inventory, runtime and free capacity fit), most free capacity first. It reads
// the free-capacity index: its cost is a seek per class of the order's GPU filters
// plus the entries examined (bounded by examinedPerCandidate x limit), not the number
// of providers. It may miss a fitting provider when more than that many entries
// before it fail the order's other requirements (attributes, memory, runtime).
func Candidates(ctx *types.Context, id uint64, limit int) ([]Candidate, error) {
	o, ok := GetOrder(ctx, id)
	if !ok {
		return nil, types.Wrapf(types.ErrNotFound, "order %d", id)
	}
	if o.State != OrderOpen {
		return nil, types.Wrapf(types.ErrOrderClosed, "order %d is %s, not open for bids", o.ID, o.State)
	}
	if limit < 1 || limit > 1000 {
		return nil, types.InvalidField("limit", limit, "must be 1 to 1000")
	}
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	classes, want, region := searchClass(o.Groups)
	budget := examinedFloor + examinedPerCandidate*limit
	out := []Candidate{}
	seen := map[types.Address]bool{}
	for _, class := range classes {
		scope := freeScopeAll(class)
		if region != "" {
			scope = freeScopeRegion(region, class)
		}
		ctx.Store.Iterate(scope, func(k, _ []byte) bool {
			free := ^binary.BigEndian.Uint64(k[len(scope):])
			if free < want || budget == 0 || len(out) == limit {
				return false // NB: most free first: nothing after this fits either
			}
			budget--
			var p types.Address
			copy(p[:], k[len(scope)+8:])
			if seen[p] {
				return true
			}
			seen[p] = true
			if c, ok := eligible(ctx, rp, &o, p); ok {
				c.Free = free
				out = append(out, c)
			}
			return true
		})
	}
	return out, nil
}

// eligible reports whether provider p could place a bid on o that placeBid accepts
// (price aside), and what it would reserve. It checks what placeBid checks, from the
// index's copy of p's inventory.
func eligible(ctx *types.Context, rp registry.Params, o *Order, p types.Address) (Candidate, bool) {
	f, ok := getFreeRecord(ctx, p)
	if !ok {
		return Candidate{}, false
	}
	stake := staking.Bonded(ctx, registry.BondPurpose, p)
	if stake < rp.MinProviderStake || slices.Contains(o.Excluded, p) {
		return Candidate{}, false
	}
	if _, dup := ctx.Store.Get(bidKey(o.ID, p)); dup {
		return Candidate{}, false
	}
	need, choices, static, inUse := Fit(o.Groups, nil, f.Inventory, Used(ctx, p))
	if len(static) > 0 || len(inUse) > 0 {
		return Candidate{}, false
	}
	// NB: the checks other modules register (liveness: flagged hardware) see the
	// provider as placeBid does, with the index's copy of its inventory.
	if len(checkProvider(ctx, *o, registry.Provider{Owner: p, Inventory: f.Inventory, Stake: stake})) > 0 {
		return Candidate{}, false
	}
	return Candidate{Provider: p, Usage: need, GPUs: showGPUs(choices), choices: choices, stake: stake}, true
}
