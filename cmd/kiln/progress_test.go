package main

import (
	"bytes"
	"strings"
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

// A transfer is a progress bar of bytes on a terminal, and nothing elsewhere (a pipe,
// a CI log, or --output json, which never asks for one).
func TestProgressTransfer(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var b bytes.Buffer
		p := &progress{w: &b, tty: tty, now: time.Now}
		w := p.Transfer("upload data.csv", 4<<20)
		for i := 0; i < 4; i++ {
			w.Write(make([]byte, 1<<20))
		}
		w.Close()
		got := b.String()
		if tty && (!strings.Contains(got, "upload data.csv") || !strings.Contains(got, "%") || !strings.Contains(got, "B/s")) {
			t.Errorf("terminal: bar %q, want the transfer's name, its share done and its rate", got)
		}
		if !tty && got != "" {
			t.Errorf("pipe: wrote %q, want nothing", got)
		}
	}
}
