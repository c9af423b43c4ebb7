package market

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"time"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// book is the order book (ModeMarket), as io.net and Gensyn price compute: providers
// post standing asks per resource class (a GPU model, or "cpu"); an order fills from
// the cheapest fitting asks IN THE BLOCK IT IS PLACED, without a bid window. Asks are
// walked in (price, post sequence) order, so ties go to the earlier ask. An ask offers
// up to Units of its class; what the provider has leased of that class (in any mode)
// counts against it, and the core's capacity check still guards every lease, so
// capacity is never sold twice.
//
// Fill policies (Order.Fill): FillAll wants one provider for the whole order and waits
// for one; FillPartial takes what fits now across providers (one lease per provider's
// part: each part but the last becomes an order of its own, split off this one with
// its share of the deposit) and the rest waits; FillAllNow and FillPartialNow do the
// same but close the rest (reason unfilled, refunded) instead of waiting. A waiting
// order is matched again every book_retry_blocks and when an ask of its class is
// posted, until order_ttl_blocks after it was placed.
type book struct{}

// Fill policies of an order-book order.
const (
	FillAll        = "all"         // one provider takes the whole order; it waits for one
	FillPartial    = "partial"     // parts across providers; the rest waits
	FillAllNow     = "all_now"     // one provider now, or the order closes unfilled
	FillPartialNow = "partial_now" // parts across providers now; the rest closes unfilled
)

// ClassCPU is the resource class of orders and asks without GPUs.
const ClassCPU = "cpu"

// Book state. Asks are keyed by class, price and sequence, so the cheapest ask of a
// class is the first key under its prefix and a fill walks only the asks it can take.
var (
	askSeqKey     = []byte("market/seq/ask")
	askPrefix     = []byte("market/ask/")      // class|0|price|seq → Ask
	openAskPrefix = []byte("market/askopen/")  // class|0|price|seq → {}: the asks with units left, what a fill walks
	askByPrefix   = []byte("market/askby/")    // provider|class → ask key
	classPrefix   = []byte("market/class/")    // class → {} for every class with asks or trades
	tradePrefix   = []byte("market/trade/")    // class|0|unix nanos|seq → Trade
	lastPrefix    = []byte("market/last/")     // class → last Trade
	waitPrefix    = []byte("market/bookwait/") // class|0|order id → {}: orders whose rest waits
	tradeSeqKey   = []byte("market/seq/trade")
	tradeHistory  = 24 * time.Hour
)

// Ask is a provider's standing offer in the order book: up to Units of Class (GPUs of
// a model, or CPU cores) at Price per unit per block.
type Ask struct {
	Provider      types.Address `json:"provider"`
	Class         string        `json:"class"`
	Price         uint64        `json:"price,string"`
	Units         uint64        `json:"units,string"`
	Seq           uint64        `json:"seq,string"`
	CreatedHeight int64         `json:"created_height,string"`
	UpdatedHeight int64         `json:"updated_height,string"`
}

// Trade is one fill from the book: a lease made at an ask's price.
type Trade struct {
	Class  string `json:"class"`
	Price  uint64 `json:"price,string"` // per unit per block
	Units  uint64 `json:"units,string"`
	Order  uint64 `json:"order,string"`
	Height int64  `json:"height,string"`
	Time   int64  `json:"time_unix_nano,string"`
}

func classKey(prefix []byte, class string) []byte {
	k := append(append([]byte{}, prefix...), class...)
	return append(k, 0)
}

func askKey(class string, price, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(classKey(askPrefix, class), price), seq)
}

// openAskKey is ask a's entry among the open asks: its book key under the open
// prefix, so open asks walk in the book's (price, sequence) order.
func openAskKey(a Ask) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(classKey(openAskPrefix, a.Class), a.Price), a.Seq)
}

// unitsLeft is what ask a still offers: its units less what its provider has leased
// of its class (in any mode).
func unitsLeft(a Ask, used Usage) uint64 { return a.Units - min(a.Units, classUsed(used, a.Class)) }

// fileAsk puts ask a among the open asks if it has units left given its provider's
// usage, and takes it out otherwise.
func fileAsk(ctx *types.Context, a Ask, used Usage) {
	if unitsLeft(a, used) > 0 {
		ctx.Store.Set(openAskKey(a), present)
	} else {
		ctx.Store.Delete(openAskKey(a))
	}
}

// refileAsks re-files provider p's asks after its usage changed to used: a lease
// made or closed. O(the provider's asks).
func refileAsks(ctx *types.Context, p types.Address, used Usage) {
	var asks []Ask
	ctx.Store.Iterate(append(append([]byte{}, askByPrefix...), p[:]...), func(_, k []byte) bool {
		var a Ask
		if !getJSON(ctx, k, &a) {
			panic(fmt.Sprintf("market: ask index of %s names a missing ask", p))
		}
		asks = append(asks, a)
		return true
	})
	for _, a := range asks {
		fileAsk(ctx, a, used)
	}
}

func waitKey(class string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(classKey(waitPrefix, class), id)
}

func mustUnmarshal(v []byte, out any) {
	if err := json.Unmarshal(v, out); err != nil {
		panic(fmt.Sprintf("market: corrupt record: %v", err))
	}
}

func askByKey(p types.Address, class string) []byte {
	return append(append(append([]byte{}, askByPrefix...), p[:]...), class...)
}

// GetAsk returns provider p's ask in class.
func GetAsk(ctx *types.Context, p types.Address, class string) (Ask, bool) {
	k, ok := ctx.Store.Get(askByKey(p, class))
	if !ok {
		return Ask{}, false
	}
	var a Ask
	if !getJSON(ctx, k, &a) {
		panic(fmt.Sprintf("market: ask index of %s/%s names a missing ask", p, class))
	}
	return a, true
}

// Asks returns the asks of class, cheapest first (ties: earlier first), at most limit
// of them (0: all).
func Asks(ctx *types.Context, class string, limit int) []Ask {
	var out []Ask
	ctx.Store.Iterate(classKey(askPrefix, class), func(_, v []byte) bool {
		var a Ask
		mustUnmarshal(v, &a)
		out = append(out, a)
		return limit == 0 || len(out) < limit
	})
	return out
}

func deleteAsk(ctx *types.Context, a Ask) {
	ctx.Store.Delete(askKey(a.Class, a.Price, a.Seq))
	ctx.Store.Delete(openAskKey(a))
	ctx.Store.Delete(askByKey(a.Provider, a.Class))
}

// classOf returns the resource class of an order's groups and the units of it one
// instance of each group takes (GPUs, or whole CPU cores), or an error naming the
// group that does not fit the book: every group must ask for the same one GPU model,
// or all for no GPU.
func classOf(groups []Group) (class string, units []uint64, err error) {
	for i, g := range groups {
		c, u := ClassCPU, (g.CPUMilli+999)/1000
		if g.GPU.Units > 0 {
			if len(g.GPU.Models) != 1 || g.GPU.Models[0].Model == "" || g.GPU.Models[0].Model == "*" {
				return "", nil, types.InvalidField(fmt.Sprintf("groups[%d].gpu.models", i), len(g.GPU.Models),
					"an order-book order names exactly one GPU model per group: asks are per model")
			}
			c, u = g.GPU.Models[0].Model, uint64(g.GPU.Units)
		}
		if i > 0 && c != class {
			return "", nil, types.InvalidField(fmt.Sprintf("groups[%d]", i), c, "an order-book order is of one resource class (first group: "+class+")")
		}
		class = c
		units = append(units, u)
	}
	return class, units, nil
}

func (book) validateOrder(m *MsgCreateOrder) error {
	switch m.Fill {
	case "", FillAll, FillAllNow:
	case FillPartial, FillPartialNow:
		if len(m.Groups) != 1 {
			return types.InvalidField("fill", m.Fill, fmt.Sprintf("a partial fill splits one group's instances across providers; the order has %d groups", len(m.Groups)))
		}
	default:
		return types.InvalidField("fill", m.Fill, "must be all, partial, all_now or partial_now")
	}
	if m.Manual {
		return types.InvalidField("manual", true, "an order-book order fills from asks; nobody picks")
	}
	_, _, err := classOf(m.Groups)
	return err
}

func (book) Name() string { return ModeMarket }

// Open fills o from the book at once; the rest waits (scheduled) or closes.
func (book) Open(ctx *types.Context, p Params, o *Order) {
	o.BidOpenHeight, o.BidCloseHeight = ctx.Height, ctx.Height
	if o.ExpireHeight == 0 || o.ExpireHeight < ctx.Height {
		o.ExpireHeight = ctx.Height + p.OrderTTLBlocks
	}
	fillFromBook(ctx, p, o)
}

func (book) Bid(ctx *types.Context, p Params, o *Order, m *MsgCreateBid) error {
	return types.Wrapf(types.ErrModeMismatch, "order %d fills from the order book (mode market): post an ask with kiln tx market ask instead of bidding", o.ID)
}

func (book) Pick(ctx *types.Context, p Params, o *Order, m *MsgCreateLease) error {
	return types.Wrapf(types.ErrModeMismatch, "order %d fills from the order book (mode market): nobody picks", o.ID)
}

// Check matches a waiting order again, and closes it once it is past its expiry.
func (book) Check(ctx *types.Context, p Params, o *Order) {
	fillFromBook(ctx, p, o)
}

// orderClosed takes a closed order off the wait list.
func (book) orderClosed(ctx *types.Context, o *Order) {
	if class, _, err := classOf(o.Groups); err == nil {
		ctx.Store.Delete(waitKey(class, o.ID))
	}
}

func fillPolicy(o *Order) string {
	if o.Fill == "" {
		return FillAll
	}
	return o.Fill
}

// part is one provider's share of a fill: count instances of the order's (single)
// group, or the whole order when the order is filled by one provider.
type part struct {
	bid   Bid
	count uint32
	units uint64 // of the class, for the trade record
	price uint64 // per unit
}

// fillFromBook matches open order o against the asks of its class and makes its
// leases; what is left waits, or closes unfilled, as its fill policy says. It stores
// o (or closes it).
func fillFromBook(ctx *types.Context, p Params, o *Order) {
	class, perInst, err := classOf(o.Groups)
	if err != nil {
		panic(fmt.Sprintf("market: order-book order %d: %v", o.ID, err))
	}
	var total uint64
	for i, g := range o.Groups {
		total += uint64(g.Count) * perInst[i]
	}
	// NB: the unit price cap makes every part cost at most its share of MaxPrice, so
	// the parts of a split order never pay more in all than the order's max price.
	limit := o.MaxPrice / max(total, 1)
	policy := fillPolicy(o)
	partial := policy == FillPartial || policy == FillPartialNow
	remaining := o.Groups[0].Count
	var parts []part
	var stale []Ask
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	taken := map[types.Address]bool{}
	region := o.Groups[0].Region
	for _, g := range o.Groups[1:] {
		if g.Region != region {
			region = "" // NB: groups in different regions: Fit decides
		}
	}
	// NB: the walk passes only asks with units left (the open asks), cheapest first:
	// an ask whose provider has leased all it offers costs a fill nothing.
	open := classKey(openAskPrefix, class)
	ctx.Store.Iterate(open, func(k, _ []byte) bool {
		if binary.BigEndian.Uint64(k[len(open):]) > limit {
			return false // NB: sorted by price: no later ask is cheap enough
		}
		var a Ask
		if !getJSON(ctx, append(classKey(askPrefix, class), k[len(open):]...), &a) {
			panic(fmt.Sprintf("market: open ask %x has no ask", k))
		}
		if taken[a.Provider] || a.Provider == o.Owner || excludedFrom(o, a.Provider) {
			return true
		}
		// NB: the cheap checks first, from the free-capacity index's binary copy of
		// the inventory: most asks a fill passes fail on region or on units left, and
		// decoding the registry's record (with its certificate) costs more than that.
		inv, ok := inventoryOf(ctx, a.Provider)
		if !ok {
			stale = append(stale, a)
			return true
		}
		if region != "" && inv.Region != region {
			return true
		}
		used := Used(ctx, a.Provider)
		avail := unitsLeft(a, used)
		if avail == 0 || (!partial && avail < total) {
			return true
		}
		if staking.Bonded(ctx, registry.BondPurpose, a.Provider) < rp.MinProviderStake {
			return true
		}
		prov := registry.Provider{Owner: a.Provider, Inventory: inv}
		prefs := make([]string, len(o.Groups))
		if class != ClassCPU {
			for i := range prefs {
				prefs[i] = class
			}
		}
		if !partial {
			if avail < total {
				return true
			}
			need, choices, static, inUse := Fit(o.Groups, prefs, prov.Inventory, used)
			if len(static)+len(inUse) > 0 {
				return true
			}
			parts = append(parts, part{bid: Bid{OrderID: o.ID, Provider: a.Provider, Price: a.Price * total, GPUs: choices, Usage: need},
				count: remaining, units: total, price: a.Price})
			remaining = 0
			return false
		}
		// The most instances of the group this provider can take: within the ask's
		// units, then within its free capacity (fitting is monotone in the count).
		g := o.Groups[0]
		hi := min(uint64(remaining), avail/max(perInst[0], 1))
		fitN := func(n uint64) (Usage, []GPUSpec, bool) {
			gg := g
			gg.Count = uint32(n)
			need, choices, static, inUse := Fit([]Group{gg}, prefs[:1], prov.Inventory, used)
			return need, choices, len(static)+len(inUse) == 0
		}
		lo := uint64(0)
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if _, _, ok := fitN(mid); ok {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		if lo == 0 {
			return true
		}
		need, choices, _ := fitN(lo)
		units := lo * perInst[0]
		parts = append(parts, part{bid: Bid{OrderID: o.ID, Provider: a.Provider, Price: a.Price * units, GPUs: choices, Usage: need},
			count: uint32(lo), units: units, price: a.Price})
		taken[a.Provider] = true
		remaining -= uint32(lo)
		return remaining > 0
	})
	for _, a := range stale {
		deleteAsk(ctx, a)
		ctx.Emit("ask_closed", "provider", a.Provider.String(), "class", a.Class, "reason", "provider_deregistered")
	}
	now := policy == FillAllNow || policy == FillPartialNow
	// The last part leases on o itself when nothing waits after it; every other part
	// is split off into an order of its own.
	keepLast := len(parts) > 0 && (remaining == 0 || now)
	for i, pt := range parts {
		if keepLast && i == len(parts)-1 {
			break
		}
		splitPart(ctx, p, o, pt, class)
	}
	if keepLast {
		pt := parts[len(parts)-1]
		if partial {
			shrink(o, pt.count)
		}
		recordTrade(ctx, class, pt, o.ID)
		ctx.Store.Delete(waitKey(class, o.ID))
		makeLease(ctx, p, o, pt.bid)
		return
	}
	if now || ctx.Height >= o.ExpireHeight {
		closeOrder(ctx, o, ReasonUnfilled)
		return
	}
	ctx.Store.Set(waitKey(class, o.ID), present)
	schedule(ctx, o, min(ctx.Height+p.BookRetryBlocks, o.ExpireHeight))
	setOrder(ctx, o)
}

// inventoryOf returns provider p's registered inventory: the free-capacity index's
// copy, or the registry's record where the index is not kept (a bare module test).
func inventoryOf(ctx *types.Context, p types.Address) (registry.Inventory, bool) {
	if f, ok := getFreeRecord(ctx, p); ok {
		return f.Inventory, true
	}
	prov, ok := registry.Get(ctx, p)
	return prov.Inventory, ok
}

// shrink makes o's single group count instances, its max price and deposit
// requirement following.
func shrink(o *Order, count uint32) {
	n := o.Groups[0].Count
	if count == n {
		return
	}
	o.MaxPrice = mulDiv(o.MaxPrice, uint64(count), uint64(n))
	o.Groups = append([]Group{}, o.Groups...)
	o.Groups[0].Count = count
}

// splitPart splits part pt off open order o into an order of its own, funded with
// its share of o's escrow, and leases it to pt's provider.
func splitPart(ctx *types.Context, p Params, o *Order, pt part, class string) {
	n := o.Groups[0].Count
	acct, _ := escrow.Get(ctx, o.ID)
	share := mulDiv(acct.Balance, uint64(pt.count), uint64(n))
	id := nextSeq(ctx, orderSeqKey)
	if err := escrow.Split(ctx, o.ID, id, share); err != nil {
		panic(fmt.Sprintf("market: split order %d: %v", o.ID, err))
	}
	c := Order{ID: id, Owner: o.Owner, Kind: o.Kind, Groups: append([]Group{}, o.Groups...), MaxPrice: mulDiv(o.MaxPrice, uint64(pt.count), uint64(n)),
		Denom: o.Denom, AutoRedeploy: o.AutoRedeploy, Mode: ModeMarket, Fill: FillAllNow, Parent: o.ID, Excluded: o.Excluded,
		State: OrderOpen, ExpireHeight: o.ExpireHeight, CreatedHeight: ctx.Height}
	c.Groups[0].Count = pt.count
	o.MaxPrice -= c.MaxPrice
	o.Groups = append([]Group{}, o.Groups...)
	o.Groups[0].Count = n - pt.count
	ctx.Emit("order_split", "order", idStr(o.ID), "part", idStr(id), "count", strconv.FormatUint(uint64(pt.count), 10),
		"provider", pt.bid.Provider.String())
	pt.bid.OrderID = id
	recordTrade(ctx, class, pt, id)
	makeLease(ctx, p, &c, pt.bid)
}

// classUsed is how many units of class a provider's used resources hold.
func classUsed(u Usage, class string) uint64 {
	if class == ClassCPU {
		return (u.CPUMilli + 999) / 1000
	}
	var n uint64
	for _, g := range u.GPUs {
		if g.Model == class {
			n += g.Count
		}
	}
	return n
}

func excludedFrom(o *Order, p types.Address) bool {
	for _, x := range o.Excluded {
		if x == p {
			return true
		}
	}
	return false
}

// mulDiv returns a*b/c rounded down; c > 0 and b <= c, so it fits.
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	q, _ := bits.Div64(hi, lo, c)
	return q
}

func recordTrade(ctx *types.Context, class string, pt part, order uint64) {
	t := Trade{Class: class, Price: pt.price, Units: pt.units, Order: order, Height: ctx.Height, Time: ctx.Time.UnixNano()}
	seq := nextSeq(ctx, tradeSeqKey)
	setJSON(ctx, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(classKey(tradePrefix, class), uint64(t.Time)), seq), t)
	setJSON(ctx, append(append([]byte{}, lastPrefix...), class...), t)
	ctx.Store.Set(append(append([]byte{}, classPrefix...), class...), present)
	// NB: trades older than the 24 h range are dropped as new ones come, so the
	// history per class stays bounded by a day's trades. A block time within a day
	// of 1970 (a test chain's) has nothing that old.
	since := ctx.Time.Add(-tradeHistory).UnixNano()
	if since <= 0 {
		return
	}
	cut := binary.BigEndian.AppendUint64(classKey(tradePrefix, class), uint64(since))
	var old [][]byte
	ctx.Store.Iterate(classKey(tradePrefix, class), func(k, _ []byte) bool {
		if bytes.Compare(k, cut) >= 0 {
			return false
		}
		old = append(old, bytes.Clone(k))
		return true
	})
	for _, k := range old {
		ctx.Store.Delete(k)
	}
}

// postAsk creates or amends provider m.Provider's ask in m.Class, then matches the
// orders of that class that wait.
func postAsk(ctx *types.Context, p Params, m *MsgAsk) error {
	prov, ok := registry.Get(ctx, m.Provider)
	if !ok {
		return types.Wrapf(types.ErrNotProvider, "%s is not a registered provider; register with kiln tx registry register-provider", m.Provider)
	}
	var rp registry.Params
	params.Get(ctx, registry.ModuleName, &rp)
	if prov.Stake < rp.MinProviderStake {
		return types.Wrapf(types.ErrNotProvider, "provider %s has %d bonded, below min_provider_stake %d", m.Provider, prov.Stake, rp.MinProviderStake)
	}
	have := prov.Inventory.CPUCores
	if m.Class != ClassCPU {
		have = 0
		for _, g := range prov.Inventory.GPUs {
			if g.Model == m.Class {
				have += uint64(g.Count)
			}
		}
		if have == 0 {
			return types.Wrapf(types.ErrRequirementsUnmet, "class %s: provider %s has no GPU of that model (inventory: %s)", m.Class, m.Provider, describeGPUs(Total(prov.Inventory)))
		}
	}
	if m.Units > have {
		return types.Wrapf(types.ErrRequirementsUnmet, "units: provider %s has %d of class %s, cannot offer %d", m.Provider, have, m.Class, m.Units)
	}
	a := Ask{Provider: m.Provider, Class: m.Class, Price: m.Price, Units: m.Units, CreatedHeight: ctx.Height}
	verb := "ask_created"
	if old, ok := GetAsk(ctx, m.Provider, m.Class); ok {
		deleteAsk(ctx, old)
		a.CreatedHeight = old.CreatedHeight
		verb = "ask_amended"
	}
	// NB: a new sequence on every post: an amended ask queues behind the asks
	// already at its price, as in any price-time book.
	a.Seq = nextSeq(ctx, askSeqKey)
	a.UpdatedHeight = ctx.Height
	k := askKey(a.Class, a.Price, a.Seq)
	setJSON(ctx, k, a)
	ctx.Store.Set(askByKey(a.Provider, a.Class), k)
	fileAsk(ctx, a, Used(ctx, a.Provider))
	ctx.Store.Set(append(append([]byte{}, classPrefix...), a.Class...), present)
	ctx.Emit(verb, "provider", a.Provider.String(), "class", a.Class, "price", idStr(a.Price), "units", idStr(a.Units))
	var waiting []uint64
	pre := classKey(waitPrefix, a.Class)
	ctx.Store.Iterate(pre, func(k, _ []byte) bool {
		waiting = append(waiting, binary.BigEndian.Uint64(k[len(pre):]))
		return true
	})
	for _, id := range waiting {
		o, ok := GetOrder(ctx, id)
		if !ok || o.State != OrderOpen {
			panic(fmt.Sprintf("market: book wait list names order %d, which is not open", id))
		}
		fillFromBook(ctx, p, &o)
	}
	return nil
}

func cancelAsk(ctx *types.Context, m *MsgCancelAsk) error {
	a, ok := GetAsk(ctx, m.Provider, m.Class)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "provider %s has no ask in class %s", m.Provider, m.Class)
	}
	deleteAsk(ctx, a)
	ctx.Emit("ask_closed", "provider", a.Provider.String(), "class", a.Class, "reason", "cancelled")
	return nil
}

// ClassPrices is the book of one resource class at a glance.
type ClassPrices struct {
	Class string `json:"class"`
	// BestAsk is the cheapest ask's price per unit per block (0: no ask), with the
	// units offered at that price.
	BestAsk      uint64 `json:"best_ask,string"`
	BestAskUnits uint64 `json:"best_ask_units,string"`
	Asks         int    `json:"asks"`
	// LastTrade is the price per unit per block of the last fill (0: none yet), at
	// LastTradeHeight.
	LastTrade       uint64 `json:"last_trade,string"`
	LastTradeHeight int64  `json:"last_trade_height,string,omitempty"`
	// Low24h and High24h are the range of fill prices over the last 24 hours of
	// block time; Trades24h counts them.
	Low24h    uint64 `json:"low_24h,string"`
	High24h   uint64 `json:"high_24h,string"`
	Trades24h int    `json:"trades_24h"`
}

// Prices returns the book of every class that has had asks or trades, by class.
// It costs the asks and the last day's trades of those classes: a query, never run
// in a block.
func Prices(ctx *types.Context) []ClassPrices {
	var classes []string
	ctx.Store.Iterate(classPrefix, func(k, _ []byte) bool {
		classes = append(classes, string(k[len(classPrefix):]))
		return true
	})
	out := []ClassPrices{}
	for _, c := range classes {
		cp := ClassPrices{Class: c}
		ctx.Store.Iterate(classKey(askPrefix, c), func(_, v []byte) bool {
			var a Ask
			mustUnmarshal(v, &a)
			if cp.Asks == 0 {
				cp.BestAsk = a.Price
			}
			if a.Price == cp.BestAsk {
				cp.BestAskUnits += a.Units
			}
			cp.Asks++
			return true
		})
		var last Trade
		if getJSON(ctx, append(append([]byte{}, lastPrefix...), c...), &last) {
			cp.LastTrade, cp.LastTradeHeight = last.Price, last.Height
		}
		since := ctx.Time.Add(-tradeHistory).UnixNano()
		ctx.Store.Iterate(classKey(tradePrefix, c), func(_, v []byte) bool {
			var t Trade
			mustUnmarshal(v, &t)
			if t.Time < since {
				return true
			}
			if cp.Trades24h == 0 || t.Price < cp.Low24h {
				cp.Low24h = t.Price
			}
			cp.High24h = max(cp.High24h, t.Price)
			cp.Trades24h++
			return true
		})
		out = append(out, cp)
	}
	return out
}

// checkBook returns an error unless every ask is indexed by its provider (and every
// index entry names it), and every order on the wait list is an open order-book
// order of that class, scheduled. O(asks + waiting orders).
func checkBook(ctx *types.Context) error {
	asks := 0
	var err error
	opens := 0
	ctx.Store.Iterate(askPrefix, func(k, v []byte) bool {
		var a Ask
		mustUnmarshal(v, &a)
		asks++
		if ik, ok := ctx.Store.Get(askByKey(a.Provider, a.Class)); !ok || !bytes.Equal(ik, k) {
			err = fmt.Errorf("market: ask of %s in %s at %d is not indexed by its provider", a.Provider, a.Class, a.Price)
			return false
		}
		_, filed := ctx.Store.Get(openAskKey(a))
		if left := unitsLeft(a, Used(ctx, a.Provider)); filed != (left > 0) {
			err = fmt.Errorf("market: ask of %s in %s has %d units left but is filed open %v", a.Provider, a.Class, left, filed)
			return false
		}
		if filed {
			opens++
		}
		return true
	})
	if err != nil {
		return err
	}
	n := 0
	ctx.Store.Iterate(openAskPrefix, func(_, _ []byte) bool { n++; return true })
	if n != opens {
		return fmt.Errorf("market: %d open-ask entries, %d asks with units left", n, opens)
	}
	idx := 0
	ctx.Store.Iterate(askByPrefix, func(_, _ []byte) bool { idx++; return true })
	if idx != asks {
		return fmt.Errorf("market: %d asks, %d provider index entries", asks, idx)
	}
	ctx.Store.Iterate(waitPrefix, func(k, _ []byte) bool {
		rest := k[len(waitPrefix):]
		i := bytes.IndexByte(rest, 0)
		class, id := string(rest[:i]), binary.BigEndian.Uint64(rest[i+1:])
		o, ok := GetOrder(ctx, id)
		c, _, _ := classOf(o.Groups)
		if !ok || o.State != OrderOpen || o.Mode != ModeMarket || c != class || o.NextCheck == 0 {
			err = fmt.Errorf("market: book wait list names order %d (%s) which is not an open, scheduled order-book order of that class", id, class)
			return false
		}
		return true
	})
	return err
}
