package node

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// AppConfig is HOME/config/app.toml: the Kiln application's own settings beside
// CometBFT's config.toml (the Cosmos convention).
type AppConfig struct {
	StateSync StateSyncConfig `toml:"state-sync"`
}

// StateSyncConfig sets the snapshots this node takes and serves to peers joining
// through state sync (CometBFT's [statesync] in config.toml sets how THIS node joins).
type StateSyncConfig struct {
	// SnapshotInterval takes a snapshot every this many heights; 0 takes none.
	SnapshotInterval int64 `toml:"snapshot-interval"`
	// SnapshotKeepRecent is how many of the newest snapshots are kept.
	SnapshotKeepRecent int `toml:"snapshot-keep-recent"`
}

// DefaultAppConfig is what `kiln init` writes.
func DefaultAppConfig() AppConfig {
	return AppConfig{StateSync: StateSyncConfig{SnapshotInterval: 1000, SnapshotKeepRecent: 2}}
}

// Validate checks the settings.
func (c AppConfig) Validate() error {
	if c.StateSync.SnapshotInterval < 0 {
		return fmt.Errorf("state-sync.snapshot-interval %d: must be 0 (no snapshots) or a positive number of heights", c.StateSync.SnapshotInterval)
	}
	if c.StateSync.SnapshotKeepRecent < 1 && c.StateSync.SnapshotInterval > 0 {
		return fmt.Errorf("state-sync.snapshot-keep-recent %d: must keep at least 1 snapshot", c.StateSync.SnapshotKeepRecent)
	}
	return nil
}

// AppConfigPath returns HOME/config/app.toml.
func AppConfigPath(home string) string { return filepath.Join(home, "config", "app.toml") }

// SnapshotDir returns where a node keeps its state-sync snapshots.
func SnapshotDir(home string) string { return filepath.Join(home, "data", "snapshots") }

// LoadAppConfig reads HOME/config/app.toml; a home without one (made before it existed)
// gets the defaults. Unknown keys are refused, naming them.
func LoadAppConfig(home string) (AppConfig, error) {
	path := AppConfigPath(home)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return DefaultAppConfig(), nil
	}
	if err != nil {
		return AppConfig{}, err
	}
	return ParseAppConfig(path, b)
}

// ParseAppConfig decodes app.toml's contents; path names it in errors.
func ParseAppConfig(path string, b []byte) (AppConfig, error) {
	c := DefaultAppConfig()
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		return AppConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return AppConfig{}, fmt.Errorf("%s: unknown setting %q", path, un[0].String())
	}
	if err := c.Validate(); err != nil {
		return AppConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteAppConfig writes c to HOME/config/app.toml.
func WriteAppConfig(home string, c AppConfig) error {
	var buf bytes.Buffer
	buf.WriteString("# Kiln application settings (CometBFT's own are in config.toml).\n\n")
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return err
	}
	return os.WriteFile(AppConfigPath(home), buf.Bytes(), 0o644)
}
