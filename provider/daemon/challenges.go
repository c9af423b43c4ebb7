package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/liveness"
)

// Prover computes the product of a matmul challenge (n, seed) and commits to it. The
// default is matmul.Solve on the CPUs; a GPU kernel would be another Prover.
type Prover func(ctx context.Context, n int, seed uint64) (*matmul.Solution, error)

func cpuProver(_ context.Context, n int, seed uint64) (*matmul.Solution, error) {
	return matmul.Solve(n, seed)
}

// resendAfter is how many blocks the daemon waits for an answer or reveal it sent to
// show on chain before sending it again (it may have been dropped from a mempool).
const resendAfter = 3

// prover answers the chain's challenges for this provider: it solves each open
// challenge once (one at a time, oldest first: solving two at once would time-share
// the compute the challenge measures), sends the answer the moment it is solved, and
// reveals the chunks the chain drew once the answer is on chain.
type prover struct {
	mu      sync.Mutex
	solving bool
	sols    map[uint64]*solved
}

type solved struct {
	sol      *matmul.Solution
	millis   uint64
	sentAt   int64 // height the answer was last sent
	revealAt int64 // height the reveal was last sent
}

// challenges is the per-block step of the prover.
func (d *Daemon) challenges(ctx context.Context, h int64) error {
	cs, err := d.deps.Client.Challenges(ctx, d.self, "pending")
	if err != nil {
		return fmt.Errorf("query challenges: %w", err)
	}
	p := &d.prover
	p.mu.Lock()
	defer p.mu.Unlock()
	pending := map[uint64]bool{}
	var next *liveness.Challenge
	for i := range cs {
		c := cs[i]
		pending[c.ID] = true
		s := p.sols[c.ID]
		switch {
		case s == nil:
			if next == nil {
				next = &cs[i]
			}
		case c.State == liveness.StateOpen && h-s.sentAt >= resendAfter:
			d.sendAnswer(ctx, c, s, h)
		case c.State == liveness.StateAnswered && len(c.Chunks) > 0 && h-s.revealAt >= resendAfter:
			s.revealAt = h
			if err := d.snd.send(ctx, revealMsg(d.self, c, s.sol)); err != nil {
				d.log.Warn("reveal challenge", "challenge", c.ID, "err", err)
			} else {
				d.log.Info("challenge revealed", "challenge", c.ID, "chunks", len(c.Chunks))
			}
		}
	}
	for id := range p.sols {
		if !pending[id] {
			delete(p.sols, id) // NB: passed, failed or gone: nothing more to send
		}
	}
	if next != nil && !p.solving {
		p.solving = true
		c := *next
		d.wg.Add(1)
		go d.solve(ctx, c)
	}
	return nil
}

// solve computes challenge c, records it and sends its answer at once: the chain
// counts the blocks until the answer lands.
func (d *Daemon) solve(ctx context.Context, c liveness.Challenge) {
	defer d.wg.Done()
	prove := d.deps.Prover
	if prove == nil {
		prove = cpuProver
	}
	t0 := time.Now()
	sol, err := prove(ctx, int(c.N), c.Seed)
	took := time.Since(t0)
	p := &d.prover
	p.mu.Lock()
	defer p.mu.Unlock()
	p.solving = false
	if err != nil {
		d.log.Error("solve challenge", "challenge", c.ID, "kind", c.Kind, "n", c.N, "err", err)
		return
	}
	s := &solved{sol: sol, millis: uint64(max(1, took.Milliseconds()))}
	p.sols[c.ID] = s
	d.metrics.challengeSeconds.Observe(took.Seconds())
	d.mu.Lock()
	h := d.height
	d.mu.Unlock()
	d.sendAnswer(ctx, c, s, h)
}

// sendAnswer sends s as the answer to c; p.mu is held.
func (d *Daemon) sendAnswer(ctx context.Context, c liveness.Challenge, s *solved, h int64) {
	s.sentAt = h
	err := d.snd.send(ctx, &liveness.MsgAnswer{Provider: d.self, Challenge: c.ID, Root: s.sol.Root(), Millis: s.millis})
	var te *client.TxError
	switch {
	case err == nil:
		d.metrics.challenges.Inc()
		d.log.Info("challenge answered", "challenge", c.ID, "kind", c.Kind, "n", c.N, "millis", s.millis, "deadline", c.Deadline)
	case errors.As(err, &te) && te.Code == types.CodeChallengeClosed:
		// NB: an earlier copy landed; the next step reveals.
	default:
		d.log.Warn("answer challenge", "challenge", c.ID, "err", err)
	}
}

func revealMsg(self types.Address, c liveness.Challenge, sol *matmul.Solution) *liveness.MsgReveal {
	m := &liveness.MsgReveal{Provider: self, Challenge: c.ID}
	for _, k := range c.Chunks {
		m.Chunks = append(m.Chunks, liveness.RevealedChunk{Index: k, Entries: sol.Chunk(int(k)), Proof: sol.Proof(int(k))})
	}
	return m
}
