package poll

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// A condition that comes true in time returns as soon as it does; one that never does
// fails with its last complaint once the timeout has passed, not before.
func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	WaitFor(t, time.Second, func() error { // 1 s: three quick checks, far within it
		if n.Add(1) < 3 {
			return fmt.Errorf("check %d", n.Load())
		}
		return nil
	})
	if got := n.Load(); got != 3 {
		t.Fatalf("cond ran %d times, want 3 (it stops when true)", got)
	}

	start := time.Now()
	var slept []time.Duration
	err := waitFor(50*time.Millisecond, func() error { return errors.New("not yet") }, func(d time.Duration) {
		slept = append(slept, d)
		time.Sleep(d)
	})
	if err == nil || err.Error() != "not yet" {
		t.Fatalf("waitFor(never) = %v, want the last error", err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("waitFor gave up after %s, before its 50ms timeout", el)
	}
	if len(slept) < 2 || slept[0] != MinInterval || slept[1] != 2*MinInterval {
		t.Fatalf("waits %v, want %v then doubling", slept, MinInterval)
	}
}

// WaitFor fails the test, naming what was still wrong.
func TestWaitForFails(t *testing.T) {
	ft := &fakeTB{TB: t}
	WaitFor(ft, 20*time.Millisecond, func() error { return errors.New("lease 7 is pending") })
	if want := "still waiting after 20ms: lease 7 is pending"; ft.msg != want {
		t.Fatalf("failure = %q, want %q", ft.msg, want)
	}
}

type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }
