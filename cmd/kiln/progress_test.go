package main

import (
	"bytes"
	"testing"
	"time"
)

// On a terminal a wait is one line rewritten in place and erased before the next
// step; elsewhere (a pipe, a CI log) waits are plain lines, at most one per
// plainWaitEvery, and nothing is ever erased.
func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	for _, tc := range []struct {
		name string
		tty  bool
		want string
	}{
		{"terminal", true, "==> order placed\n... bids: 0\r\033[K... bids: 1\r\033[K... bids: 1\r\033[K==> bid from p\n... lease\r\033[K"},
		{"pipe", false, "==> order placed\n... bids: 0\n==> bid from p\n... lease\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := &progress{w: &b, tty: tc.tty, now: func() time.Time { return now }}
			p.Step("order placed")
			p.Waiting("bids: 0")
			now = now.Add(time.Second)
			p.Waiting("bids: 1")
			p.Waiting("bids: 1")
			p.Step("bid from p")
			now = now.Add(plainWaitEvery)
			p.Waiting("lease")
			p.Done()
			if got := b.String(); got != tc.want {
				t.Errorf("progress wrote %q, want %q", got, tc.want)
			}
		})
	}
}
