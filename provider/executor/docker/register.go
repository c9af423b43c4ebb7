package docker

import (
	"fmt"
	"path/filepath"

	"github.com/kiln-network/kiln/provider/executor"
)

func init() {
	executor.Register(Driver, executor.Factory{
		Check: func(s executor.Settings) error { _, err := settings(s, "/"); return err },
		New: func(p executor.Params) (executor.Executor, error) {
			c, err := settings(p.Settings, filepath.Join(p.StateDir, Driver))
			if err != nil {
				return nil, err
			}
			// NB: pulling is on only where the provider allows a registry; the
			// lease manager then lets through only images pinned by digest from
			// one of them.
			c.AllowPull, c.Logger = len(p.Images.Registries()) > 0, p.Logger
			return New(c)
		},
	})
}

// settings decodes [executor.docker] over the defaults, with DataDir made
// absolute (defaultDir when the table sets none), and validates it.
func settings(s executor.Settings, defaultDir string) (Config, error) {
	c := DefaultConfig()
	if err := s.Decode(&c); err != nil {
		return c, err
	}
	if c.DataDir == "" {
		c.DataDir = defaultDir
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("data_dir: %w", err)
	}
	c.DataDir = abs
	return c, c.Validate()
}
