package executor

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/kiln-network/kiln/provider/imageref"
)

// Settings is an executor's own table of the daemon's config,
// [executor.<kind>]. The daemon only carries it; the executor decodes it.
type Settings interface {
	// Decode decodes the table into v, a pointer to the executor's settings
	// preset with its defaults; a key v has no field for is an error naming
	// the key. Decoding an absent table leaves v as it is.
	Decode(v any) error
}

// NoSettings is the table of an executor the config gives no settings.
var NoSettings Settings = noSettings{}

type noSettings struct{}

func (noSettings) Decode(any) error { return nil }

// Params is what an executor is built from.
type Params struct {
	// StateDir is the daemon's state directory, on this host; an executor
	// keeps its files in a subdirectory of it that it names itself.
	StateDir string
	// Settings is the executor's table of the config; NoSettings when none.
	Settings Settings
	// Images are the images leases may run (their uploads, and images pinned
	// by digest from the registries the provider allows): an executor that
	// pulls images pulls only those. The lease manager checks every image
	// against it before Start, so this is a second line.
	Images imageref.Policy
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
}

// Factory builds executors of one kind.
type Factory struct {
	// Check decodes and validates settings, touching nothing on the host: the
	// daemon calls it when it validates its config, so that a bad table stops
	// the start with the key and the rule named.
	Check func(s Settings) error
	// New builds an executor from p. It checks p.Settings as Check does.
	New func(p Params) (Executor, error)
}

var (
	regMu     sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes an executor kind available to New, under the name the
// config's [executor] kind uses. It is called from an init function of the
// executor's package, so it panics on an empty kind, a Factory with a nil
// function, or a kind registered twice: programming errors, not inputs.
func Register(kind string, f Factory) {
	if kind == "" || f.Check == nil || f.New == nil {
		panic(fmt.Sprintf("executor.Register(%q): kind, Check and New must be set", kind))
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := factories[kind]; dup {
		panic(fmt.Sprintf("executor.Register(%q): registered twice", kind))
	}
	factories[kind] = f
}

// Kinds returns the registered kinds, sorted.
func Kinds() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(factories))
	for k := range factories {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func lookup(kind string) (Factory, error) {
	regMu.RLock()
	f, ok := factories[kind]
	regMu.RUnlock()
	if !ok {
		return Factory{}, fmt.Errorf("no executor of kind %q (this binary has: %v)", kind, Kinds())
	}
	return f, nil
}

// Check checks the settings of an executor of kind, as Factory.Check does;
// it fails for a kind nobody registered.
func Check(kind string, s Settings) error {
	f, err := lookup(kind)
	if err != nil {
		return err
	}
	if s == nil {
		s = NoSettings
	}
	return f.Check(s)
}

// New builds an executor of kind.
func New(kind string, p Params) (Executor, error) {
	f, err := lookup(kind)
	if err != nil {
		return nil, err
	}
	if p.Settings == nil {
		p.Settings = NoSettings
	}
	return f.New(p)
}
