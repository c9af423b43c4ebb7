package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestWorkTrainDistFlags(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"WORLD_SIZE", "3", "RANK", "5", "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29500"}, nil, "RANK 5"},
		{[]string{"WORLD_SIZE", "3", "RANK", "1", "MASTER_PORT", "29500"}, nil, "MASTER_ADDR"},
		{[]string{"WORLD_SIZE", "3", "RANK", "1", "MASTER_ADDR", "127.0.0.1", "MASTER_PORT", "29500"}, []string{"--shards", "2"}, "--shards 2"},
		{nil, []string{"--shards", "64"}, "shards"},
		{nil, []string{"--resume", "x"}, "one of --out DIR"},
		{nil, []string{"--resume", ""}, "one of --out DIR"},
	} {
		for i := 0; i < len(tt.env); i += 2 {
			t.Setenv(tt.env[i], tt.env[i+1])
		}
		args := append([]string{"work", "train", "--steps", "20", "--checkpoint-every", "10", "--data", "generated"}, tt.args...)
		if len(tt.args) == 0 || tt.args[0] != "--resume" || tt.args[1] == "x" {
			args = append(args, "--out", t.TempDir())
		}
		if out, code := run(t, args...); code != 2 || !strings.Contains(out, tt.want) {
			t.Errorf("env %v, train %v: exit %d, %s; want 2 naming %q", tt.env, tt.args, code, out, tt.want)
		}
		for i := 0; i < len(tt.env); i += 2 {
			t.Setenv(tt.env[i], "")
		}
	}
}

func TestWorkTrainResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "t")
	base := []string{"work", "train", "--steps", "40", "--checkpoint-every", "20", "--data", "generated", "--shards", "3"}
	if out, code := run(t, append(base, "--out", dir)...); code != 0 {
		t.Fatalf("train: %d %s", code, out)
	}
	// The job is DIR/job.json's: a flag that says otherwise is refused, not obeyed.
	if out, code := run(t, "work", "train", "--resume", dir, "--steps", "60"); code != 2 || !strings.Contains(out, "--steps 60: the run in") {
		t.Fatalf("resume --steps 60: %d %s", code, out)
	}
	// One process resumes a 3-shard run (it loops over the parts) and it verifies.
	out, code := run(t, "work", "train", "--resume", dir)
	if code != 0 || !strings.Contains(out, "resumed from step 40") {
		t.Fatalf("resume: %d %s", code, out)
	}
	if out, code := run(t, "work", "verify", dir, "--samples", "3"); code != 0 || !strings.HasPrefix(out, "ok: train job") {
		t.Fatalf("verify resumed: %d %s", code, out)
	}
}
