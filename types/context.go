package types

import (
	"log/slog"
	"time"

	"github.com/kiln-network/kiln/store"
)

// Event is an ABCI event emitted by a message or by block processing.
type Event struct {
	Type  string
	Attrs [][2]string
}

// Context is what a module sees while executing: the state view, the block's height,
// time, proposer and randomness, the hooks other modules registered, and a sink for
// events. It never holds wall-clock time or a random source of its own: everything
// comes from the block.
type Context struct {
	Store    store.KV
	Height   int64
	Time     time.Time
	ChainID  string
	Proposer []byte // consensus address of the block proposer (20 bytes), nil in CheckTx
	CheckTx  bool
	Logger   *slog.Logger
	// BlockRand is the block's randomness (see BlockRand); CheckTx and queries get the
	// last committed block's. Draw from it with Rand.
	BlockRand BlockRand
	// Hooks is what modules registered with one another at app start; nil in bare unit
	// tests, where each module acts alone.
	Hooks  *Hooks
	events []Event
}

// Emit records an event.
func (c *Context) Emit(typ string, kv ...string) {
	e := Event{Type: typ}
	for i := 0; i+1 < len(kv); i += 2 {
		e.Attrs = append(e.Attrs, [2]string{kv[i], kv[i+1]})
	}
	c.events = append(c.events, e)
}

// Events returns the events emitted so far.
func (c *Context) Events() []Event { return c.events }

// ResetEvents drops the events emitted so far (used when a tx's effects are discarded).
func (c *Context) ResetEvents() { c.events = nil }

// WithStore returns a copy of c that reads and writes s and starts with no events.
func (c *Context) WithStore(s store.KV) *Context {
	cp := *c
	cp.Store = s
	cp.events = nil
	return &cp
}
