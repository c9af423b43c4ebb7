package process

import (
	"fmt"
	"path/filepath"

	"github.com/kiln-network/kiln/provider/executor"
)

func init() {
	executor.Register(Driver, executor.Factory{
		Check: func(s executor.Settings) error { _, err := settings(s, "."); return err },
		New: func(p executor.Params) (executor.Executor, error) {
			c, err := settings(p.Settings, filepath.Join(p.StateDir, "exec"))
			if err != nil {
				return nil, err
			}
			c.Logger = p.Logger
			return New(c)
		},
	})
}

// settings decodes [executor.process] over the defaults, with Dir set to dir,
// and validates it, naming the settings' keys.
func settings(s executor.Settings, dir string) (Config, error) {
	c := DefaultConfig()
	if err := s.Decode(&c); err != nil {
		return c, err
	}
	c.Dir = dir
	switch {
	case !c.AllowUnisolated:
		return c, fmt.Errorf("allow_unisolated: must be true to use the process executor, which does not isolate tenant code from the host or each other (%w)", executor.ErrNotEnabled)
	case c.MaxOpenFiles == 0:
		return c, fmt.Errorf("max_open_files: must be > 0 (got 0)")
	case c.PollInterval <= 0:
		return c, fmt.Errorf("poll_interval: must be > 0 (got %s)", c.PollInterval)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("cgroup_parent: %w", err) // NB: the only check left to Validate
	}
	return c, nil
}
