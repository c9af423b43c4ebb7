package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// plainWaitEvery is how often a wait is reported when the output is not a terminal:
// often enough to show deploy is alive in a CI log, rarely enough not to flood it.
const plainWaitEvery = 5 * time.Second

// progress writes a command's progress to w (standard error): one "==>" line per
// step, and a wait line that a terminal shows updated in place; elsewhere a wait is a
// plain line at most every plainWaitEvery.
type progress struct {
	w   io.Writer
	tty bool

	mu       sync.Mutex
	live     bool // a wait line is on screen, without its newline
	lastWait time.Time
	now      func() time.Time
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && term.IsTerminal(int(f.Fd())), now: time.Now}
}

// clearLocked erases a wait line on screen. p.mu held.
func (p *progress) clearLocked() {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
		p.live = false
	}
}

// Step prints one line for a step.
func (p *progress) Step(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	fmt.Fprintln(p.w, "==>", s)
}

// Waiting shows what the command waits for.
func (p *progress) Waiting(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.clearLocked()
		fmt.Fprint(p.w, "... ", s)
		p.live = true
		return
	}
	if now := p.now(); now.Sub(p.lastWait) >= plainWaitEvery {
		p.lastWait = now
		fmt.Fprintln(p.w, "...", s)
	}
}

// Done erases a wait line left on screen.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

// Transfer shows one upload or download as a progress bar of bytes on a terminal;
// elsewhere (a log, a pipe) it shows nothing: the step lines say what moved.
func (p *progress) Transfer(what string, size int64) io.WriteCloser {
	if !p.tty {
		return nopWriteCloser{io.Discard}
	}
	p.mu.Lock()
	p.clearLocked()
	p.mu.Unlock()
	bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	return bar
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
