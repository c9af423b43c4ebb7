package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// persisted is what the daemon keeps in <state_dir>/daemon.json across restarts;
// the lease manager keeps the workloads' own state beside it.
type persisted struct {
	// Leases are the active leases the daemon tracks, by ID, with their attempt.
	Leases map[uint64]uint32 `json:"leases"`
	// Retain holds completed batch leases whose outputs stay downloadable until the
	// given time, then are erased.
	Retain map[uint64]time.Time `json:"retain"`
	// Completions are batch leases done locally (hex outputs root) whose
	// MsgCompleteLease the chain has not yet applied.
	Completions map[uint64]string `json:"completions"`
	// Commits are batch leases done locally (by ID, with their attempt) whose work
	// commitment the chain has not shown yet: sent again until it does, so a
	// restart between the completion and its commitment loses neither.
	Commits map[uint64]uint32 `json:"commits,omitempty"`
	// GPUs are the GPU ids each lease's tasks were given, so that a restarted daemon
	// does not hand them out again while those tasks run.
	GPUs map[uint64][]GPUAssignment `json:"gpus,omitempty"`
	// Members are the cluster members whose overlay link this daemon holds, by
	// lease: a daemon started again has lost their links.
	Members map[uint64]bool `json:"members,omitempty"`
}

// GPUAssignment is one GPU given to a lease.
type GPUAssignment struct {
	Model string `json:"model"`
	ID    string `json:"id"`
}

func statePath(dir string) string { return filepath.Join(dir, "daemon.json") }

func loadState(dir string) (persisted, error) {
	p := persisted{Leases: map[uint64]uint32{}, Retain: map[uint64]time.Time{}, Completions: map[uint64]string{}, Commits: map[uint64]uint32{}, Members: map[uint64]bool{}}
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("load daemon state: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("load daemon state %s: %w", statePath(dir), err)
	}
	if p.Leases == nil {
		p.Leases = map[uint64]uint32{}
	}
	if p.Retain == nil {
		p.Retain = map[uint64]time.Time{}
	}
	if p.Completions == nil {
		p.Completions = map[uint64]string{}
	}
	if p.Commits == nil {
		p.Commits = map[uint64]uint32{}
	}
	if p.Members == nil {
		p.Members = map[uint64]bool{}
	}
	return p, nil
}

func saveState(dir string, p persisted) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save daemon state: %w", err)
	}
	if err := os.Rename(tmp, statePath(dir)); err != nil {
		return fmt.Errorf("save daemon state: %w", err)
	}
	return nil
}
