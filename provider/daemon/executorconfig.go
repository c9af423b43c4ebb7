package daemon

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kiln-network/kiln/provider/executor"
)

// ExecutorConfig is the [executor] table: which executor runs workloads, and
// each executor's own settings, [executor.<kind>], which the daemon carries
// and the executor decodes (executor.Settings):
//
//	[executor]
//	kind = "docker"
//	[executor.docker]
//	namespace = "kiln"
type ExecutorConfig struct {
	// Kind is the registered executor kind that runs workloads: "docker", or
	// "process" (no isolation; needs [executor.process] allow_unisolated = true).
	Kind string
	// Tables are the [executor.<kind>] tables by kind, as TOML decoded them.
	// Only Kind's table is checked and used; another must name a registered
	// kind, so that an operator can keep both and switch.
	Tables map[string]map[string]any
}

// Set sets key of the kind's table, for configs built in Go (the demo, tests).
func (e *ExecutorConfig) Set(kind, key string, v any) {
	if e.Tables == nil {
		e.Tables = map[string]map[string]any{}
	}
	if e.Tables[kind] == nil {
		e.Tables[kind] = map[string]any{}
	}
	e.Tables[kind][key] = v
}

// Settings returns the kind's table for the executor to decode.
func (e ExecutorConfig) Settings(kind string) executor.Settings {
	t, ok := e.Tables[kind]
	if !ok {
		return executor.NoSettings
	}
	return tableSettings{kind: kind, t: t}
}

// UnmarshalTOML reads the [executor] table; a table without kind keeps the
// default kind (DefaultConfig: process). The old top-level string
// (executor = "docker") is refused with the new form spelled out.
func (e *ExecutorConfig) UnmarshalTOML(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("executor: must be a table, e.g. [executor] kind = %q, with the executor's settings in [executor.%v] (got %v)", v, v, v)
	}
	*e = ExecutorConfig{Kind: e.Kind} // NB: without kind, the default's stays
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch val := m[k].(type) {
		case string:
			if k != "kind" {
				return fmt.Errorf("executor.%s: unknown field; [executor] holds kind and one table per executor kind", k)
			}
			e.Kind = val
		case map[string]any:
			if e.Tables == nil {
				e.Tables = map[string]map[string]any{}
			}
			e.Tables[k] = val
		default:
			return fmt.Errorf("executor.%s: must be kind = \"...\" or an [executor.%s] table (got %v)", k, k, val)
		}
	}
	return nil
}

// validate checks that Kind is registered and that its table decodes and
// validates for its executor, naming the table.
func (e ExecutorConfig) validate() error {
	kinds := executor.Kinds()
	if !slices.Contains(kinds, e.Kind) {
		return fieldErr("executor.kind", fmt.Sprintf("%q", e.Kind), "must be one of "+strings.Join(kinds, ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(e.Tables)) {
		if !slices.Contains(kinds, k) {
			return fieldErr("executor."+k, "a table", "names no executor kind; this binary has "+strings.Join(kinds, ", "))
		}
	}
	if err := executor.Check(e.Kind, e.Settings(e.Kind)); err != nil {
		return fmt.Errorf("provider config: executor.%s: %w", e.Kind, err)
	}
	return nil
}

// tableSettings decodes one [executor.<kind>] table into an executor's
// settings, strictly: a key the settings have no field for is an error.
type tableSettings struct {
	kind string
	t    map[string]any
}

func (s tableSettings) Decode(v any) error {
	// NB: the table is re-encoded and decoded again, so that the executor's
	// struct gets TOML's own conversions (durations from "10s") and its
	// undecoded keys are known.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(s.t); err != nil {
		return err
	}
	md, err := toml.NewDecoder(&buf).Decode(v)
	if err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return fmt.Errorf("%s: unknown field", und[0].String())
	}
	return nil
}
