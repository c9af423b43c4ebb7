package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/work/train"
)

// rankProc is one `kiln work train` process of a data-parallel run, in its own directory
// and process group, as a member on its own provider would be.
type rankProc struct {
	cmd    *exec.Cmd
	dir    string
	stdout strings.Builder
	stderr strings.Builder
	done   chan error
}

// startRanks starts n ranks of `kiln work train args...` over loopback; dirs[r] is rank
// r's --out (or --resume, with resume).
func startRanks(t *testing.T, dirs []string, resume bool, args ...string) []*rankProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	flag := "--out"
	if resume {
		flag = "--resume"
	}
	ps := make([]*rankProc, len(dirs))
	for r, dir := range dirs {
		p := &rankProc{dir: dir, done: make(chan error, 1)}
		p.cmd = exec.Command(kilnBin, append([]string{"work", "train", flag, dir, "-o", "json"}, args...)...)
		p.cmd.Env = append(os.Environ(), "WORLD_SIZE="+strconv.Itoa(len(dirs)), "RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port), "GLOO_SOCKET_IFNAME=lo")
		p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) })
		go func() { p.done <- p.cmd.Wait() }()
		ps[r] = p
	}
	return ps
}

// waitRanks waits for every rank (at most limit) and returns their exit errors.
func waitRanks(t *testing.T, ps []*rankProc, limit time.Duration) []error {
	t.Helper()
	errs := make([]error, len(ps))
	deadline := time.After(limit)
	for r, p := range ps {
		select {
		case errs[r] = <-p.done:
		case <-deadline:
			t.Fatalf("rank %d still running after %v: %s", r, limit, p.stderr.String())
		}
	}
	return errs
}

func rankDirs(t *testing.T, n int) []string {
	dirs := make([]string, n)
	for r := range dirs {
		dirs[r] = filepath.Join(t.TempDir(), fmt.Sprintf("rank%d", r))
	}
	return dirs
}

// checkRun checks a finished run: rank 0 printed the units summary with 3 ranks, ranks 1
// and 2 their reports with rank 0's final weights, and rank 0's directory verifies.
func checkRun(t *testing.T, ps []*rankProc, units int) train.Metrics {
	t.Helper()
	var sum struct {
		Units   int           `json:"units"`
		Metrics train.Metrics `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(ps[0].stdout.String()), &sum); err != nil || sum.Units != units || sum.Metrics.WorldSize != len(ps) {
		t.Fatalf("rank 0 printed %s (%v), want %d units from %d ranks", ps[0].stdout.String(), err, units, len(ps))
	}
	for _, p := range ps[1:] {
		var rep train.RankReport
		if err := json.Unmarshal([]byte(p.stdout.String()), &rep); err != nil || rep.WeightsSHA256 != sum.Metrics.WeightsSHA256 {
			t.Fatalf("rank printed %s (%v), want rank 0's weights %s", p.stdout.String(), err, sum.Metrics.WeightsSHA256)
		}
		if _, err := os.Stat(filepath.Join(p.dir, "units.json")); err == nil {
			t.Fatalf("rank other than 0 wrote units.json in %s", p.dir)
		}
	}
	if out := kilnOut(t, "work", "verify", ps[0].dir, "--samples", strconv.Itoa(units)); !strings.HasPrefix(out, "ok: train job") {
		t.Fatalf("verify rank 0's run: %s", out)
	}
	return sum.Metrics
}

// Three processes, three directories, one data-parallel run: each engine.
func TestWorkTrainDataParallel(t *testing.T) {
	engines := []string{train.EngineGo}
	if _, err := (train.Workload{}).TorchPython(context.Background()); err == nil {
		engines = append(engines, train.EnginePyTorch)
	} else {
		t.Logf("pytorch engine skipped: %v (.ci/run installs python3-torch)", err)
	}
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			ps := startRanks(t, rankDirs(t, 3), false, "--engine", engine, "--steps", "200", "--checkpoint-every", "20", "--seed", "5", "--hidden", "16")
			// Bounded by torch's import and 200 steps on a shared CI machine.
			for r, err := range waitRanks(t, ps, 3*time.Minute) {
				if err != nil {
					t.Fatalf("rank %d: %v: %s", r, err, ps[r].stderr.String())
				}
			}
			m := checkRun(t, ps, 11)
			t.Logf("%s: 3 processes (%s), held-out accuracy %.3f", engine, m.Backend, m.TestAccuracy)
		})
	}
}

// A rank's process group killed mid-run (its provider gone) fails every rank; the run
// resumed with --resume from rank 0's last checkpoint completes and verifies.
func TestWorkTrainRankKilledAndResumed(t *testing.T) {
	dirs := rankDirs(t, 3)
	args := []string{"--steps", "4000", "--checkpoint-every", "20", "--seed", "5"}
	ps := startRanks(t, dirs, false, args...)
	poll.WaitFor(t, time.Minute, func() error { // rank 0 well into the run
		if _, err := os.Stat(filepath.Join(dirs[0], "step-000200.kckpt")); err != nil {
			return err
		}
		return nil
	})
	killed := time.Now()
	if err := syscall.Kill(-ps[1].cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The others see the dead peer's sockets close: seconds, not the 60 s timeout.
	for r, err := range waitRanks(t, ps, 30*time.Second) {
		if err == nil {
			t.Fatalf("rank %d exited 0 after rank 1 was killed", r)
		}
		t.Logf("rank %d: %v after %v: %s", r, err, time.Since(killed).Round(time.Millisecond), lastLine(ps[r].stderr.String()))
	}
	// The member is re-placed: a fresh directory for rank 1, the others keep theirs.
	dirs[1] = filepath.Join(t.TempDir(), "rank1-replaced")
	ps = startRanks(t, dirs, true, args...)
	for r, err := range waitRanks(t, ps, 3*time.Minute) {
		if err != nil {
			t.Fatalf("resumed rank %d: %v: %s", r, err, ps[r].stderr.String())
		}
	}
	m := checkRun(t, ps, 201)
	if m.ResumedFrom < 200 {
		t.Fatalf("resumed from step %d, want 200 or later", m.ResumedFrom)
	}
	t.Logf("resumed from step %d; held-out accuracy %.3f", m.ResumedFrom, m.TestAccuracy)
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}
