// Package poll waits, in tests, for a condition that another goroutine or process makes
// true: with a deadline and a failure that says what was still wrong, never a bare sleep.
package poll

import (
	"testing"
	"time"
)

// Interval bounds: the first check is immediate, then waits double from MinInterval up
// to MaxInterval, so a quick condition costs little and a slow one few wakeups.
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = 200 * time.Millisecond
)

// WaitFor calls cond until it returns nil and fails tb (Fatalf) if that has not
// happened within timeout, with cond's last error saying what was still wrong. cond
// runs on the caller's goroutine, so it may itself call tb.Fatalf for an error that
// waiting cannot cure.
func WaitFor(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	if err := waitFor(timeout, cond, time.Sleep); err != nil {
		tb.Fatalf("still waiting after %s: %v", timeout, err)
	}
}

// waitFor is WaitFor with the sleep injected; it returns cond's last error on timeout.
func waitFor(timeout time.Duration, cond func() error, sleep func(time.Duration)) error {
	deadline := time.Now().Add(timeout)
	wait := MinInterval
	for {
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		sleep(min(wait, left))
		wait = min(2*wait, MaxInterval)
	}
}
