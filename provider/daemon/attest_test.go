package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/x/market"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// testAttestor is an attestor with a fake clock, for its back-off and bid rules.
func testAttestor(cfg TEEConfig, now *time.Time, log *bytes.Buffer) *attestor {
	return &attestor{cfg: cfg, seal: "age1ours", now: func() time.Time { return *now },
		log: slog.New(slog.NewTextHandler(log, nil)), m: newMetrics()}
}

// Failed attempts wait retry_min, doubling up to retry_max; the max_attempts-th in a
// row gives up, which refuses TEE orders for good.
func TestAttestBackoff(t *testing.T) {
	now := time.Unix(1000, 0)
	var log bytes.Buffer
	a := testAttestor(TEEConfig{MaxAttempts: 5, RetryMin: Duration(time.Second), RetryMax: Duration(3 * time.Second)}, &now, &log)
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
		a.failedLocked(errors.New("no answer"))
		if got := a.retryAt.Sub(now); got != want || a.gaveUp {
			t.Fatalf("failure %d: retry in %v (gave up %v), want %v", i+1, got, a.gaveUp, want)
		}
	}
	if strings.Count(log.String(), "level=WARN") != 4 {
		t.Errorf("log after 4 failures:\n%s", log.String())
	}
	a.failedLocked(errors.New("no answer"))
	if !a.gaveUp || !strings.Contains(log.String(), "attestation given up") {
		t.Fatalf("after max_attempts failures: gave up %v, log:\n%s", a.gaveUp, log.String())
	}
	if why, never := a.bidRefusal(market.Order{TEE: market.TEECPU}, 10); !never || !strings.Contains(why, "given up") {
		t.Errorf("bidRefusal after giving up = %q, %v; want never, naming it", why, never)
	}
}

// The margin is the configured one, or a quarter of reattest_blocks (at least 2), and
// always below reattest_blocks.
func TestAttestMargin(t *testing.T) {
	for _, c := range []struct{ cfg, reattest, want int64 }{
		{0, 3600, 900}, {0, 8, 2}, {0, 2, 1}, {10, 3600, 10}, {50, 20, 19},
	} {
		a := &attestor{cfg: TEEConfig{ReattestMarginBlocks: c.cfg}, reattest: c.reattest}
		if got := a.margin(); got != c.want {
			t.Errorf("margin(reattest_margin_blocks %d, reattest_blocks %d) = %d, want %d", c.cfg, c.reattest, got, c.want)
		}
	}
}

// The daemon bids on a TEE order only while its attestation is active at the bid's
// height and binds its sealing key, and never on an order that does not accept its
// measurement.
func TestAttestBidRefusal(t *testing.T) {
	now := time.Unix(0, 0)
	a := testAttestor(DefaultConfig().TEE, &now, &bytes.Buffer{})
	o := market.Order{TEE: market.TEECPU}
	rec := xtee.Attestation{State: xtee.StateActive, ExpiresHeight: 100, SealKey: "age1ours", Measurement: "aa"}
	for _, c := range []struct {
		name  string
		have  bool
		rec   xtee.Attestation
		order market.Order
		h     int64
		want  string
		never bool
	}{
		{"none yet", false, xtee.Attestation{}, o, 10, "no attestation", false},
		{"active", true, rec, o, 10, "", false},
		{"expires at the bid's height", true, rec, o, 99, "lapsed at height 100", false},
		{"expired", true, func() xtee.Attestation { r := rec; r.State = xtee.StateExpired; return r }(), o, 10, "lapsed", false},
		{"another seal key", true, func() xtee.Attestation { r := rec; r.SealKey = "age1old"; return r }(), o, 10, "another sealing key", false},
		{"measurement allowed", true, rec, market.Order{TEE: market.TEECPU, AllowedMeasurements: []string{"bb", "aa"}}, 10, "", false},
		{"measurement not allowed", true, rec, market.Order{TEE: market.TEECPU, AllowedMeasurements: []string{"bb"}}, 10, "not one of the order's 1 allowed", true},
	} {
		a.have, a.rec = c.have, c.rec
		why, never := a.bidRefusal(c.order, c.h)
		if (c.want == "") != (why == "") || !strings.Contains(why, c.want) || never != c.never {
			t.Errorf("%s: bidRefusal = %q, never %v; want %q, never %v", c.name, why, never, c.want, c.never)
		}
	}
}
