package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A node that stops answering is logged once, not every poll, and polled less and
// less often up to maxNodeBackoff; its return is logged once and polling resumes at
// the configured interval.
func TestNodeDownBacksOff(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	n := nodeDown{poll: 50 * time.Millisecond, now: time.Now}
	if got := n.next(log, nil); got != 50*time.Millisecond || buf.Len() != 0 {
		t.Fatalf("healthy poll: wait %v, logged %q; want 50ms, nothing", got, buf.String())
	}
	down := errors.New("connection refused")
	var waits []time.Duration
	for i := 0; i < 200; i++ {
		waits = append(waits, n.next(log, down))
	}
	if c := strings.Count(buf.String(), "level=WARN"); c != 1 {
		t.Fatalf("200 failed polls logged %d warnings, want 1:\n%s", c, buf.String())
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] || waits[i] > maxNodeBackoff {
			t.Fatalf("wait %d = %v after %v: want non-decreasing and <= %v", i, waits[i], waits[i-1], maxNodeBackoff)
		}
	}
	if waits[len(waits)-1] != maxNodeBackoff {
		t.Fatalf("last wait %v, want %v", waits[len(waits)-1], maxNodeBackoff)
	}
	buf.Reset()
	if got := n.next(log, nil); got != 50*time.Millisecond || !strings.Contains(buf.String(), "node answers again") {
		t.Fatalf("recovery: wait %v, logged %q", got, buf.String())
	}
}

// A member's start tries back off: 1, 2, 4, … blocks apart, capped at
// maxStartBackoff, so 1000 blocks of a peer that never answers cost a few dozen
// tries (and log lines), not 1000.
func TestStartBackoff(t *testing.T) {
	for _, c := range []struct {
		fails int
		want  int64
	}{{0, 0}, {1, 1}, {2, 2}, {3, 4}, {7, 64}, {8, maxStartBackoff}, {1000, maxStartBackoff}} {
		if got := startBackoff(c.fails); got != c.want {
			t.Errorf("startBackoff(%d) = %d, want %d", c.fails, got, c.want)
		}
	}
	tries := 0
	for h, fails := int64(0), 0; h < 1000; h += startBackoff(fails) {
		tries++
		fails++
	}
	if tries > 25 {
		t.Errorf("1000 blocks of failed starts: %d tries, want at most 25", tries)
	}
}
