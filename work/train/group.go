package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"
)

// group is the Go engine's data-parallel exchange, a star over TCP: rank 0 listens on
// MASTER_ADDR:MASTER_PORT, every other rank connects and introduces itself (rank, world
// size, the job's digest); each step every rank sends its part's gradient to rank 0, which
// sums the parts in rank order and sends the total back. A star is the simplest exchange
// with a fixed summation order, and at this model's size (a few thousand floats) latency,
// not bandwidth, bounds a step.
//
// Every read and write has a deadline of the Dist's timeout, and a failed rank closes its
// connections, so a crash anywhere fails every rank in bounded time instead of hanging.
type group struct {
	d     Dist
	conns []net.Conn // rank 0: conns[r] for r >= 1; other ranks: conns[0], to rank 0
	ln    net.Listener
	stop  func() bool
}

// helloMagic starts a rank's introduction: the magic, rank, world size and epoch
// (uint32 each, little-endian) and the job digest.
const helloMagic = "KILNDDP2"

const helloSize = len(helloMagic) + 4 + 4 + 4 + 32

// dialEvery is how often a rank retries reaching rank 0 while it starts.
const dialEvery = 50 * time.Millisecond

// helloWait is how long rank 0 waits for a connected rank's introduction: the rank sends
// it as soon as it connects.
const helloWait = 5 * time.Second

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// joinGroup connects rank d.Rank to the others. digest names the job: every rank must be
// training the same one.
func joinGroup(ctx context.Context, d Dist, digest [32]byte) (*group, error) {
	g := &group{d: d}
	deadline := time.Now().Add(d.timeout())
	var err error
	if d.Rank == 0 {
		err = g.accept(ctx, deadline, digest)
	} else {
		err = g.dial(ctx, deadline, digest)
	}
	if err != nil {
		g.close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("train rank %d: join: %w", d.Rank, ctx.Err())
		}
		return nil, fmt.Errorf("train rank %d: join: %w", d.Rank, err)
	}
	g.stop = context.AfterFunc(ctx, g.close)
	return g, nil
}

func (g *group) accept(ctx context.Context, deadline time.Time, digest [32]byte) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", g.d.master())
	if err != nil {
		return fmt.Errorf("listen on MASTER_ADDR:MASTER_PORT: %w", err)
	}
	g.ln = ln
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if err := ln.(*net.TCPListener).SetDeadline(deadline); err != nil {
		return err
	}
	g.conns = make([]net.Conn, g.d.WorldSize)
	for joined := 1; joined < g.d.WorldSize; {
		c, err := ln.Accept()
		if err != nil {
			var missing []int
			for r := 1; r < g.d.WorldSize; r++ {
				if g.conns[r] == nil {
					missing = append(missing, r)
				}
			}
			return fmt.Errorf("ranks %v did not join within %v: %w", missing, g.d.timeout(), err)
		}
		// NB: a client that connects and says nothing (not a rank) holds the accept loop
		// for at most helloWait, not the whole join timeout.
		c.SetDeadline(minTime(deadline, time.Now().Add(helloWait)))
		var h [helloSize]byte
		if _, err := io.ReadFull(c, h[:]); err != nil || string(h[:len(helloMagic)]) != helloMagic {
			c.Close() // not a rank (a port scan, a stray client): keep waiting
			continue
		}
		rank := int(binary.LittleEndian.Uint32(h[8:]))
		world := int(binary.LittleEndian.Uint32(h[12:]))
		if epoch := binary.LittleEndian.Uint32(h[16:]); epoch != g.d.Epoch {
			// A rank of another epoch of the cluster: its peers are restarting. Not
			// this run's rank and not a fault of it: close, and the rank retries until
			// it reaches a rank 0 of its own epoch.
			c.Close()
			continue
		}
		var why string
		switch {
		case world != g.d.WorldSize:
			why = fmt.Sprintf("rank %d says WORLD_SIZE %d, rank 0 has %d", rank, world, g.d.WorldSize)
		case rank < 1 || rank >= g.d.WorldSize:
			why = fmt.Sprintf("rank %d: out of range 1 to %d", rank, g.d.WorldSize-1)
		case g.conns[rank] != nil:
			why = fmt.Sprintf("rank %d joined twice", rank)
		case !bytes.Equal(h[20:], digest[:]):
			why = fmt.Sprintf("rank %d trains another job (data or parameters differ from rank 0's)", rank)
		}
		if why != "" {
			writeFrame(c, []byte(why))
			c.Close()
			return errors.New(why)
		}
		c.SetDeadline(deadline)
		g.conns[rank] = c
		joined++
	}
	// Everyone is here: stop listening (a rank dialing now, of a later epoch, is refused
	// at once and retries) and tell each rank to start (an empty frame).
	ln.Close()
	g.ln = nil
	for _, c := range g.conns[1:] {
		if err := writeFrame(c, nil); err != nil {
			return fmt.Errorf("start: %w", err)
		}
	}
	return nil
}

// dial reaches rank 0 and waits for its start. A connection that ends before the start
// (a rank 0 of an earlier epoch, stopped, or one that dropped this rank's introduction)
// is retried until the deadline; a refusal that says why is final.
func (g *group) dial(ctx context.Context, deadline time.Time, digest [32]byte) error {
	h := make([]byte, 0, helloSize)
	h = append(h, helloMagic...)
	h = binary.LittleEndian.AppendUint32(h, uint32(g.d.Rank))
	h = binary.LittleEndian.AppendUint32(h, uint32(g.d.WorldSize))
	h = binary.LittleEndian.AppendUint32(h, g.d.Epoch)
	h = append(h, digest[:]...)
	for {
		err := g.join(ctx, deadline, h)
		var refused refusal
		if err == nil || errors.As(err, &refused) {
			return err
		}
		if ctx.Err() != nil || time.Now().Add(dialEvery).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(dialEvery):
		}
	}
}

// refusal is rank 0's reason for refusing a rank.
type refusal string

func (r refusal) Error() string { return "rank 0 refused: " + string(r) }

// join makes one attempt: connect, introduce, wait for the start.
func (g *group) join(ctx context.Context, deadline time.Time, hello []byte) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	c, err := (&net.Dialer{}).DialContext(dctx, "tcp", g.d.master())
	cancel()
	if err != nil {
		return fmt.Errorf("reach rank 0 at %s within %v: %w", g.d.master(), g.d.timeout(), err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(deadline)
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return fmt.Errorf("introduce to rank 0 at %s: %w", g.d.master(), err)
	}
	msg, err := readFrame(c, 4096)
	if err != nil {
		c.Close()
		return fmt.Errorf("wait for the other ranks (rank 0 at %s, epoch %d): %w", g.d.master(), g.d.Epoch, err)
	}
	if len(msg) > 0 {
		c.Close()
		return refusal(msg)
	}
	g.conns = []net.Conn{c}
	return nil
}

// close closes every connection (and the listener); a rank blocked on one fails at once.
func (g *group) close() {
	if g.ln != nil {
		g.ln.Close()
	}
	for _, c := range g.conns {
		if c != nil {
			c.Close()
		}
	}
}

// Close leaves the group.
func (g *group) Close() {
	if g.stop != nil {
		g.stop()
	}
	g.close()
}

// sum returns the sum, in rank order, of every rank's part (each of len(part) values):
// the same bits on every rank.
func (g *group) sum(part []float32) ([]float32, error) {
	deadline := time.Now().Add(g.d.timeout())
	if g.d.Rank != 0 {
		c := g.conns[0]
		c.SetDeadline(deadline)
		if err := writeFrame(c, floatBytes(part)); err != nil {
			return nil, fmt.Errorf("train rank %d: send gradient to rank 0: %w", g.d.Rank, err)
		}
		b, err := readFrame(c, 4*len(part))
		if err != nil {
			return nil, fmt.Errorf("train rank %d: receive the summed gradient: %w", g.d.Rank, err)
		}
		return bytesFloats(b, len(part))
	}
	total := append([]float32(nil), part...)
	for r := 1; r < g.d.WorldSize; r++ {
		c := g.conns[r]
		c.SetDeadline(deadline)
		b, err := readFrame(c, 4*len(part))
		if err != nil {
			return nil, fmt.Errorf("train rank 0: receive rank %d's gradient: %w", r, err)
		}
		v, err := bytesFloats(b, len(part))
		if err != nil {
			return nil, fmt.Errorf("train rank 0: rank %d's gradient: %w", r, err)
		}
		for i := range total {
			total[i] = total[i] + v[i]
		}
	}
	out := floatBytes(total)
	for r := 1; r < g.d.WorldSize; r++ {
		if err := writeFrame(g.conns[r], out); err != nil {
			return nil, fmt.Errorf("train rank 0: send the summed gradient to rank %d: %w", r, err)
		}
	}
	return total, nil
}

// broadcast sends rank 0's msg to every rank and returns it (on rank 0, msg itself; on
// the others, what rank 0 sent, at most max bytes).
func (g *group) broadcast(msg []byte, max int) ([]byte, error) {
	deadline := time.Now().Add(g.d.timeout())
	if g.d.Rank != 0 {
		c := g.conns[0]
		c.SetDeadline(deadline)
		b, err := readFrame(c, max)
		if err != nil {
			return nil, fmt.Errorf("train rank %d: receive from rank 0: %w", g.d.Rank, err)
		}
		return b, nil
	}
	for r := 1; r < g.d.WorldSize; r++ {
		g.conns[r].SetDeadline(deadline)
		if err := writeFrame(g.conns[r], msg); err != nil {
			return nil, fmt.Errorf("train rank 0: send to rank %d: %w", r, err)
		}
	}
	return msg, nil
}

// longestChain returns the longest of the ranks' chains of checkpoints (the lowest
// rank's of those as long), on every rank, where some rank's own is shorter; nil where
// every rank has one as long as own. Each chain holds at most most checkpoints.
func (g *group) longestChain(own [][]byte, most int) ([][]byte, error) {
	if len(own) > most {
		return nil, fmt.Errorf("train rank %d: %d checkpoints, the job has %d", g.d.Rank, len(own), most)
	}
	// NB: float32 counts are exact up to 2^24 checkpoints, and the sum of one-hot
	// vectors gives every rank every rank's count.
	lens := make([]float32, g.d.WorldSize)
	lens[g.d.Rank] = float32(len(own))
	all, err := g.sum(lens)
	if err != nil {
		return nil, err
	}
	best, short := 0, false
	for r, n := range all {
		if n < 0 || n > float32(most) || n != float32(int(n)) {
			return nil, fmt.Errorf("train rank %d: rank %d has %v checkpoints, want 0 to %d", g.d.Rank, r, n, most)
		}
		if n > all[best] {
			best = r
		}
	}
	for _, n := range all {
		short = short || n < all[best]
	}
	if !short {
		return nil, nil
	}
	var enc []byte
	if g.d.Rank == best {
		for _, b := range own {
			enc = binary.LittleEndian.AppendUint32(enc, uint32(len(b)))
			enc = append(enc, b...)
		}
	}
	const maxChain = 1 << 30 // a frame's length is a uint32; the job's chain is far smaller
	if best != 0 {
		// The longest chain goes to rank 0, which broadcasts it.
		deadline := time.Now().Add(g.d.timeout())
		if g.d.Rank == best {
			g.conns[0].SetDeadline(deadline)
			if err := writeFrame(g.conns[0], enc); err != nil {
				return nil, fmt.Errorf("train rank %d: send its checkpoints to rank 0: %w", g.d.Rank, err)
			}
		}
		if g.d.Rank == 0 {
			g.conns[best].SetDeadline(deadline)
			if enc, err = readFrame(g.conns[best], maxChain); err != nil {
				return nil, fmt.Errorf("train rank 0: receive rank %d's checkpoints: %w", best, err)
			}
		}
	}
	if enc, err = g.broadcast(enc, maxChain); err != nil {
		return nil, err
	}
	var chain [][]byte
	for len(enc) > 0 {
		if len(enc) < 4 || int64(binary.LittleEndian.Uint32(enc)) > int64(len(enc)-4) {
			return nil, fmt.Errorf("train rank %d: rank %d's checkpoints are cut short", g.d.Rank, best)
		}
		n := int(binary.LittleEndian.Uint32(enc))
		chain, enc = append(chain, enc[4:4+n]), enc[4+n:]
	}
	if len(chain) != int(all[best]) {
		return nil, fmt.Errorf("train rank %d: rank %d sent %d checkpoints, it has %d", g.d.Rank, best, len(chain), int(all[best]))
	}
	return chain, nil
}

// writeFrame writes a uint32 little-endian length and b.
func writeFrame(w io.Writer, b []byte) error {
	buf := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

// readFrame reads one frame of at most max bytes.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.LittleEndian.Uint32(n[:])
	if int64(size) > int64(max) {
		return nil, fmt.Errorf("frame of %d bytes, at most %d", size, max)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func floatBytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// bytesFloats decodes exactly n float32 values, refusing NaN and infinities (no honest
// gradient has them, and one would poison every rank's weights).
func bytesFloats(b []byte, n int) ([]float32, error) {
	if len(b) != 4*n {
		return nil, fmt.Errorf("%d bytes, want %d values", len(b), n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(v[i])) || math.IsInf(float64(v[i]), 0) {
			return nil, fmt.Errorf("value %d is %v", i, v[i])
		}
	}
	return v, nil
}
