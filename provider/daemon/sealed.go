package daemon

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// sealedBid is a sealed bid the daemon committed to, kept until it is revealed.
//
// NB: only in memory: a daemon restarted between commit and reveal cannot reveal,
// and its deposit on that order is forfeited (the cost of one bid deposit).
type sealedBid struct {
	price    uint64
	salt     []byte
	revealed bool
}

// commitment returns the MsgCommitBid for a sealed bid of price on order id, and
// remembers price and salt for the reveal.
func (d *Daemon) commitment(id, price uint64, models []string) (*market.MsgCommitBid, error) {
	salt := make([]byte, market.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("sealed bid salt: %w", err)
	}
	d.mu.Lock()
	d.sealed[id] = sealedBid{price: price, salt: salt}
	d.mu.Unlock()
	return &market.MsgCommitBid{Provider: d.self, OrderID: id, Hash: market.SealedHash(id, d.self, price, salt), GPUModels: models}, nil
}

// reveal sends the reveal of every sealed bid whose order's commit window has closed
// and whose reveal window is open at the next height; it forgets bids of orders no
// longer open.
func (d *Daemon) reveal(ctx context.Context, h int64, open []market.Order) {
	byID := map[uint64]market.Order{}
	for _, o := range open {
		byID[o.ID] = o
	}
	var msgs []types.Msg
	d.mu.Lock()
	for id, sb := range d.sealed {
		o, ok := byID[id]
		if !ok {
			delete(d.sealed, id)
			continue
		}
		// NB: the reveal lands at h+1 at the earliest.
		if sb.revealed || h+1 <= o.BidCloseHeight || h+1 > o.RevealCloseHeight {
			continue
		}
		sb.revealed = true
		d.sealed[id] = sb
		msgs = append(msgs, &market.MsgRevealBid{Provider: d.self, OrderID: id, Price: sb.price, Salt: sb.salt})
	}
	d.mu.Unlock()
	if len(msgs) == 0 {
		return
	}
	for i, err := range d.snd.sendEach(ctx, msgs) {
		d.log.Warn("reveal refused", "order", msgs[i].(*market.MsgRevealBid).OrderID, "err", err)
	}
	for _, m := range msgs {
		d.log.Info("sealed bid revealed", "order", m.(*market.MsgRevealBid).OrderID, "price", m.(*market.MsgRevealBid).Price, "height", h)
	}
}

// probeEveryBlocks is how often the daemon measures and publishes its RTT probes;
// well inside the chain's rtt_probe_ttl_blocks.
const probeEveryBlocks = 100

// probe measures the round-trip time to each RTTEndpoints location (the fastest of
// three TCP connects) and publishes it on chain.
func (d *Daemon) probe(ctx context.Context, h int64) error {
	if len(d.cfg.RTTEndpoints) == 0 {
		return nil
	}
	d.mu.Lock()
	due := d.probedAt == 0 || h-d.probedAt >= probeEveryBlocks
	if due {
		d.probedAt = h
	}
	d.mu.Unlock()
	if !due {
		return nil
	}
	var msgs []types.Msg
	for _, loc := range slices.Sorted(maps.Keys(d.cfg.RTTEndpoints)) {
		rtt, err := measureRTT(ctx, d.cfg.RTTEndpoints[loc])
		if err != nil {
			d.log.Warn("rtt probe", "location", loc, "err", err)
			continue
		}
		msgs = append(msgs, &market.MsgRTTProbe{Provider: d.self, Location: loc, RTTMicros: max(1, uint64(rtt.Microseconds()))})
		d.log.Info("rtt probe", "location", loc, "rtt", rtt)
	}
	for i, err := range d.snd.sendEach(ctx, msgs) {
		d.log.Warn("rtt probe refused", "location", msgs[i].(*market.MsgRTTProbe).Location, "err", err)
	}
	return nil
}

// measureRTT returns the fastest of three TCP connects to addr.
func measureRTT(ctx context.Context, addr string) (time.Duration, error) {
	best := time.Duration(0)
	for i := 0; i < 3; i++ {
		var dl net.Dialer
		// 2 s: a location further than that is too far for any session.
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		t0 := time.Now()
		c, err := dl.DialContext(cctx, "tcp", addr)
		rtt := time.Since(t0)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("connect to %s: %w", addr, err)
		}
		c.Close()
		if best == 0 || rtt < best {
			best = rtt
		}
	}
	return best, nil
}
