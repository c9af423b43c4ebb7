package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// askCheckBlocks is how often, in blocks, the daemon checks that its asks are still in
// the book (a chain restored from an older state, or an ask cancelled by hand).
const askCheckBlocks = 50

// postAsks keeps the provider's standing asks in the order book when OrderBook is
// set: one per GPU model it has a price for, and one for its CPU cores, priced from
// the price table. An ask already there is left alone (re-posting would queue it
// behind others at its price).
func (d *Daemon) postAsks(ctx context.Context, h int64) error {
	if !d.cfg.OrderBook {
		return nil
	}
	d.mu.Lock()
	due := d.askedAt == 0 || h-d.askedAt >= askCheckBlocks
	if due {
		d.askedAt = h
	}
	d.mu.Unlock()
	if !due {
		return nil
	}
	want, err := d.asks()
	if err != nil {
		return err
	}
	var msgs []types.Msg
	for _, a := range want {
		raw, err := d.deps.Client.Query(ctx, client.PathAsks(a.Class))
		if err != nil {
			return err
		}
		var v struct{ Asks []market.Ask }
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("asks of %s: %w", a.Class, err)
		}
		have := false
		for _, x := range v.Asks {
			have = have || x.Provider == d.self
		}
		if !have {
			msgs = append(msgs, a)
		}
	}
	for i, err := range d.snd.sendEach(ctx, msgs) {
		d.log.Warn("ask refused", "class", msgs[i].(*market.MsgAsk).Class, "err", err)
	}
	for _, m := range msgs {
		a := m.(*market.MsgAsk)
		d.log.Info("ask posted", "class", a.Class, "price", a.Price, "units", a.Units)
	}
	return nil
}

// asks returns the asks the price table makes of the inventory: per GPU model, the
// table's price of one GPU per block; for CPU, of one core.
func (d *Daemon) asks() ([]*market.MsgAsk, error) {
	var out []*market.MsgAsk
	seen := map[string]uint64{}
	var order []string
	for _, g := range d.inv.GPUs {
		if _, ok := seen[g.Model]; !ok {
			order = append(order, g.Model)
		}
		seen[g.Model] += uint64(g.Count)
	}
	for _, model := range order {
		if _, ok := d.cfg.Pricing.GPUHour[model]; !ok {
			continue // NB: no price, no ask: as no bid for it in the auction
		}
		one := []market.Group{{Name: "ask", Count: 1, GPU: market.GPURequest{Units: 1}}}
		p, err := d.cfg.Pricing.Price(one, []market.GPUSpec{{Model: model}})
		if err != nil {
			return nil, err
		}
		out = append(out, &market.MsgAsk{Provider: d.self, Class: model, Price: p, Units: seen[model]})
	}
	if d.inv.CPUCores > 0 {
		p, err := d.cfg.Pricing.Price([]market.Group{{Name: "ask", Count: 1, CPUMilli: 1000}}, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, &market.MsgAsk{Provider: d.self, Class: market.ClassCPU, Price: p, Units: d.inv.CPUCores})
	}
	return out, nil
}
