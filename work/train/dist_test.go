package train

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/work/units"
)

// distParams is the distributed tests' job: 200 steps of the digits set, batch 32 split
// over 3 ranks (11, 11, 10 rows).
func distParams(engine string, shards int) Params {
	return Params{Engine: engine, Steps: 200, Every: 20, Seed: 5, Hidden: 16, Batch: 32, LR: 0.1, TrainRows: 1500, Shards: shards}
}

func mustJob(tb testing.TB, p Params, dir string) units.Job {
	tb.Helper()
	job, err := NewJob(p, DataAuto, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return job
}

func mustMetrics(tb testing.TB, dir string) Metrics {
	tb.Helper()
	var m Metrics
	b, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustRoot(tb testing.TB, dir string) string {
	tb.Helper()
	r, err := units.Root(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return string(r[:])
}

// verifyAll re-executes every unit of dir as `kiln work verify` does and wants them honest.
func verifyAll(t *testing.T, dir string) {
	t.Helper()
	set, err := units.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := units.NewRegistry(Workload{}).Verify(context.Background(), dir, len(set), []byte("all"), nil)
	if err != nil || rep.Verdict != units.VerdictOK || rep.Checked != len(set) {
		t.Fatalf("verify %s: %+v %v", dir, rep, err)
	}
}

func TestDistFromEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	full := []string{"WORLD_SIZE", "3", "RANK", "2", "LOCAL_RANK", "0", "MASTER_ADDR", "10.128.0.1", "MASTER_PORT", "29500", "GLOO_SOCKET_IFNAME", "kiln0", "KILN_DIST_TIMEOUT", "2.5"}
	d, err := DistFromEnv(env(full...))
	want := Dist{WorldSize: 3, Rank: 2, LocalRank: 0, MasterAddr: "10.128.0.1", MasterPort: 29500, Ifname: "kiln0", Timeout: 2500 * time.Millisecond}
	if err != nil || d != want {
		t.Fatalf("DistFromEnv(full) = %+v, %v, want %+v", d, err, want)
	}
	if d, err := DistFromEnv(env()); err != nil || d.Distributed() {
		t.Fatalf("DistFromEnv(empty) = %+v, %v, want a single process", d, err)
	}
	set := func(k, v string) func(string) string {
		base := env(full...)
		return func(name string) string {
			if name == k {
				return v
			}
			return base(name)
		}
	}
	for _, tt := range []struct{ k, v, want string }{
		{"WORLD_SIZE", "x", "WORLD_SIZE"},
		{"WORLD_SIZE", "0", "WORLD_SIZE"},
		{"WORLD_SIZE", "5000", "WORLD_SIZE"},
		{"RANK", "3", "RANK 3"},
		{"RANK", "-1", "RANK"},
		{"LOCAL_RANK", "9", "LOCAL_RANK"},
		{"MASTER_ADDR", "", "MASTER_ADDR"},
		{"MASTER_PORT", "", "MASTER_PORT"},
		{"MASTER_PORT", "70000", "MASTER_PORT"},
		{"KILN_DIST_TIMEOUT", "-1", "KILN_DIST_TIMEOUT"},
		{"KILN_DIST_TIMEOUT", "soon", "KILN_DIST_TIMEOUT"},
	} {
		if _, err := DistFromEnv(set(tt.k, tt.v)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DistFromEnv(%s=%q) = %v, want an error naming %s", tt.k, tt.v, err, tt.want)
		}
	}
	if _, err := DistFromEnv(env("WORLD_SIZE", "1", "RANK", "1")); err == nil {
		t.Error("DistFromEnv(WORLD_SIZE=1 RANK=1) accepted")
	}
}

// checkDistributed runs p (Shards 3) on 3 local ranks and checks what a data-parallel run
// promises: identical weights on every rank, the same checkpoints as one process looping
// over the 3 shards (so a verifier's single-process replay is exact), every unit verifying,
// and the final loss of a single-process run without shards within DistLossTolerance.
func checkDistributed(t *testing.T, engine string) {
	p := distParams(engine, 3)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	start := time.Now()
	reps, err := (Workload{}).LaunchLocal(context.Background(), 3, job, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	m := mustMetrics(t, dir)
	if m.WorldSize != 3 || m.WeightsSHA256 == "" {
		t.Fatalf("metrics of a 3-rank run: %+v", m)
	}
	for _, r := range reps {
		if r.WeightsSHA256 != m.WeightsSHA256 || r.WorldSize != 3 || r.Steps != p.Steps || r.Backend != m.Backend {
			t.Fatalf("rank %d ended with %+v; rank 0's metrics say weights %s backend %s", r.Rank, r, m.WeightsSHA256, m.Backend)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, units.FileName)); err != nil {
		t.Fatal(err)
	}
	verifyAll(t, dir)

	// One process, the same 3 shards: the same bits.
	one, _ := mustRun(t, p, DataAuto)
	if mustRoot(t, one) != mustRoot(t, dir) {
		t.Fatalf("3 ranks and 1 process with 3 shards: different checkpoints (weights %s vs %s)", m.WeightsSHA256, mustMetrics(t, one).WeightsSHA256)
	}
	// One process, no shards: the same mathematics, sums in another order.
	plain, _ := mustRun(t, distParams(engine, 0), DataAuto)
	pm := mustMetrics(t, plain)
	got, want := m.Losses[len(m.Losses)-1], pm.Losses[len(pm.Losses)-1]
	rel := math.Abs(got-want) / want
	c1, _ := DecodeCheckpoint(mustRead(t, filepath.Join(dir, unitFile(p.Steps))))
	c2, _ := DecodeCheckpoint(mustRead(t, filepath.Join(plain, unitFile(p.Steps))))
	wd := 0.0
	for i := range c1.Tensors {
		wd = math.Max(wd, MaxDiff(c1.Tensors[i].Data, c2.Tensors[i].Data))
	}
	t.Logf("%s, 3 ranks (%s) in %v: final loss %.7f, single process %.7f: relative difference %.2g (tolerance %.0g), max weight difference %.2g, held-out accuracy %.3f vs %.3f",
		engine, m.Backend, took.Round(time.Millisecond), got, want, rel, DistLossTolerance, wd, m.TestAccuracy, pm.TestAccuracy)
	if rel > DistLossTolerance {
		t.Fatalf("final loss %.7f on 3 ranks, %.7f in one process: relative difference %.3g > %.0g", got, want, rel, DistLossTolerance)
	}
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestGoDistributed(t *testing.T) { checkDistributed(t, EngineGo) }

func TestPyTorchDistributed(t *testing.T) {
	torchOrSkip(t)
	checkDistributed(t, EnginePyTorch)
}

// checkRankCrash kills rank 1 (its process, for PyTorch) once rank 0 has written the
// checkpoint at step 40, and wants every rank to fail well inside the exchange timeout:
// the others notice the dead peer, they do not wait it out. Then the run resumes from
// rank 0's last checkpoint and ends with the checkpoints of an uninterrupted run.
func checkRankCrash(t *testing.T, engine string) {
	p := distParams(engine, 3)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	ds, err := LocalRanks(3)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = time.Minute // what a rank would wait for a silent peer
	ctx1, kill1 := context.WithCancel(context.Background())
	defer kill1()
	var killed time.Time
	var once sync.Once
	errs := make([]error, 3)
	ended := make([]time.Time, 3)
	var wg sync.WaitGroup
	for r, d := range ds {
		d.Timeout = timeout
		ctx := context.Background()
		if r == 1 {
			ctx = ctx1
		}
		var progress units.Progress
		if r == 0 {
			progress = func(done, total int, what string) {
				if done == 3 { // checkpoints 0, 20, 40
					once.Do(func() { killed = time.Now(); kill1() })
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = Workload{Dist: d}.Run(ctx, job, dir, progress)
			ended[r] = time.Now()
		}()
	}
	wg.Wait()
	if killed.IsZero() {
		t.Fatalf("rank 0 never reached step 40: %v", errs)
	}
	for r, err := range errs {
		if err == nil {
			t.Fatalf("rank %d succeeded after rank 1 was killed", r)
		}
		after := ended[r].Sub(killed)
		t.Logf("rank %d failed %v after the kill: %v", r, after.Round(time.Millisecond), err)
		// Bounded: a dead peer's closed sockets fail the others at once; 20s leaves room
		// for a loaded machine and is a third of the timeout they would otherwise wait.
		if after > 20*time.Second {
			t.Fatalf("rank %d took %v to notice rank 1's death", r, after)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, units.FileName)); err == nil {
		t.Fatal("a failed run wrote units.json")
	}
	reps, err := (Workload{}).LaunchLocal(context.Background(), 3, job, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	m := mustMetrics(t, dir)
	if m.ResumedFrom < 40 || reps[2].Start != m.ResumedFrom || reps[2].WeightsSHA256 != m.WeightsSHA256 {
		t.Fatalf("resumed from %d (rank 2 from %d, weights %s vs %s), want from step 40 or later", m.ResumedFrom, reps[2].Start, reps[2].WeightsSHA256, m.WeightsSHA256)
	}
	verifyAll(t, dir)
	one, _ := mustRun(t, p, DataAuto)
	if mustRoot(t, one) != mustRoot(t, dir) {
		t.Fatal("killed and resumed: the checkpoints differ from an uninterrupted run's")
	}
	t.Logf("resumed from step %d; the chain verifies and equals an uninterrupted run's", m.ResumedFrom)
}

func TestGoRankCrash(t *testing.T) { checkRankCrash(t, EngineGo) }

func TestPyTorchRankCrash(t *testing.T) {
	torchOrSkip(t)
	checkRankCrash(t, EnginePyTorch)
}

// checkResume kills a single-process run after the checkpoint at step 40, resumes it,
// and wants the checkpoints of an uninterrupted run, every one verifying.
func checkResume(t *testing.T, engine string) {
	p := smallParams(engine)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := Workload{}.Run(ctx, job, dir, func(done, total int, what string) {
		if done == 3 {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("a killed run succeeded")
	}
	// A torn last file (a crash while writing) ends the chain before it.
	if err := os.WriteFile(filepath.Join(dir, unitFile(60)), []byte(Magic+"{"), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err = units.ReadJob(dir) // written at the start, for exactly this
	if err != nil {
		t.Fatal(err)
	}
	if err := (Workload{}).Resume(context.Background(), job, dir, nil); err != nil {
		t.Fatal(err)
	}
	if m := mustMetrics(t, dir); m.ResumedFrom != 40 || len(m.Losses) != 1 {
		t.Fatalf("resumed run's metrics: %+v, want resumed from 40 with one loss", m)
	}
	verifyAll(t, dir)
	whole, _ := mustRun(t, p, DataAuto)
	if mustRoot(t, whole) != mustRoot(t, dir) {
		t.Fatal("killed and resumed: the checkpoints differ from an uninterrupted run's")
	}
	// A checkpoint of another model in the directory is refused, not trained on.
	other := p
	other.Hidden = 8
	if err := (Workload{}).Resume(context.Background(), mustJob(t, other, dir), dir, nil); err == nil || !strings.Contains(err.Error(), "not this job's") {
		t.Fatalf("Resume over another model's checkpoints = %v", err)
	}
}

func TestGoResume(t *testing.T) { checkResume(t, EngineGo) }

func TestPyTorchResume(t *testing.T) {
	torchOrSkip(t)
	checkResume(t, EnginePyTorch)
}

// A rank that never comes fails the others when the timeout ends, naming it.
func TestDistMissingRank(t *testing.T) {
	p := distParams(EngineGo, 2)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	ds, err := LocalRanks(2)
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Timeout = 500 * time.Millisecond
	err = Workload{Dist: ds[0]}.Run(context.Background(), job, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "ranks [1] did not join") {
		t.Fatalf("rank 0 alone: %v", err)
	}
	// A rank with another job is refused by rank 0, and both fail.
	ds, _ = LocalRanks(2)
	q := p
	q.LR = 0.2
	dir2 := t.TempDir()
	job2 := mustJob(t, q, dir2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, j := range []units.Job{job, job2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := []string{dir, dir2}[r]
			errs[r] = Workload{Dist: ds[r]}.Run(context.Background(), j, d, nil)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "another job") {
			t.Fatalf("rank %d with mismatched jobs: %v", r, err)
		}
	}
	// WORLD_SIZE and the job's shards must agree.
	ds, _ = LocalRanks(3)
	if err := (Workload{Dist: ds[0]}).Run(context.Background(), job, dir, nil); err == nil || !strings.Contains(err.Error(), "WORLD_SIZE is 3") {
		t.Fatalf("3 ranks on a 2-shard job: %v", err)
	}
}

// A client that is not a rank (junk, then gone) does not stop the ranks from joining.
func TestDistStrayClient(t *testing.T) {
	p := distParams(EngineGo, 2)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	ds, err := LocalRanks(2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Workload{Dist: ds[0]}.Run(context.Background(), job, dir, nil) }()
	var c net.Conn
	poll.WaitFor(t, 10*time.Second, func() error { // rank 0 listening
		c, err = net.Dial("tcp", ds[0].master())
		return err
	})
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n" + strings.Repeat("x", helloSize)))
	c.Close()
	if err := (Workload{Dist: ds[1]}).Run(context.Background(), job, dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A rank restarted for a new epoch whose first dial reaches the old epoch's rank 0 (its
// provider has not stopped it yet) retries when that rank 0 goes, and joins the new one.
func checkRankOutlivesStaleRank0(t *testing.T, engine string) {
	p := distParams(engine, 2)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	ds, err := LocalRanks(2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ds {
		ds[i].Epoch, ds[i].Timeout = 1, 20*time.Second
	}
	old, err := net.Listen("tcp", ds[0].master())
	if err != nil {
		t.Fatal(err)
	}
	hello := make(chan []byte, 1)
	go func() { // the old rank 0: takes the introduction, then is killed
		c, err := old.Accept()
		old.Close()
		if err != nil {
			hello <- nil
			return
		}
		c.SetDeadline(time.Now().Add(time.Second))
		h := make([]byte, helloSize)
		n, _ := io.ReadAtLeast(c, h, 1)
		hello <- h[:n]
		time.Sleep(200 * time.Millisecond)
		c.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- Workload{Dist: ds[1]}.Run(context.Background(), job, dir, nil) }()
	h := <-hello
	if engine == EngineGo && (len(h) != helloSize || string(h[:len(helloMagic)]) != helloMagic || binary.LittleEndian.Uint32(h[16:]) != 1) {
		t.Fatalf("rank 1 introduced itself as %q: want %s with epoch 1", h, helloMagic)
	}
	time.Sleep(500 * time.Millisecond) // rank 1 redials a closed port meanwhile
	if err := (Workload{Dist: ds[0]}).Run(context.Background(), job, dir, nil); err != nil {
		t.Fatalf("rank 0: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rank 1: %v", err)
	}
}

// NB: no PyTorch variant: torch 1.13's store client aborts the process (an uncaught
// C++ exception) when its rank 0 resets the connection. The provider gives each epoch
// its own MASTER_PORT instead, so no rank reaches an earlier epoch's rank 0 at all.
func TestGoDistRankOutlivesStaleRank0(t *testing.T) { checkRankOutlivesStaleRank0(t, EngineGo) }

// A rank of an earlier epoch does not join a rank 0 of a later one: it gives up at its
// timeout, and the later epoch's rank 1 joins and the run completes.
func TestDistStaleEpochRankKeptOut(t *testing.T) {
	p := distParams(EngineGo, 2)
	dir := t.TempDir()
	job := mustJob(t, p, dir)
	ds, err := LocalRanks(2)
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Epoch, ds[1].Epoch = 2, 2
	done := make(chan error, 1)
	go func() { done <- Workload{Dist: ds[0]}.Run(context.Background(), job, dir, nil) }()
	stale := ds[1]
	stale.Epoch, stale.Timeout = 1, 2*time.Second
	err = Workload{Dist: stale}.Run(context.Background(), job, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "wait for the other ranks") {
		t.Fatalf("a rank of epoch 1 against epoch 2's rank 0: %v; want it kept waiting until its timeout", err)
	}
	if err := (Workload{Dist: ds[1]}).Run(context.Background(), job, dir, nil); err != nil {
		t.Fatalf("rank 1 of epoch 2: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rank 0: %v", err)
	}
}

// checkDistRank0Lost: ranks with an out each (one per provider): the run is stopped at
// step 80, rank 0's out is lost with its machine, and the ranks resume with a fresh one
// for rank 0. Every rank kept the chain, so rank 0 adopts a surviving rank's and the run
// continues from step 40 or later; rank 0's chain verifies and equals an uninterrupted
// run's.
func checkDistRank0Lost(t *testing.T, engine string) {
	p := distParams(engine, 3)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	run := func(resume bool, progress units.Progress, ctx context.Context) []error {
		ds, err := LocalRanks(3)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for r, d := range ds {
			d.Timeout = 20 * time.Second // the ranks of one process join in milliseconds
			job := mustJob(t, p, dirs[r])
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := Workload{Dist: d}
				if resume {
					errs[r] = w.Resume(ctx, job, dirs[r], nil)
				} else {
					var pr units.Progress
					if r == 0 {
						pr = progress
					}
					errs[r] = w.Run(ctx, job, dirs[r], pr)
				}
			}()
		}
		wg.Wait()
		return errs
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run(false, func(done, total int, what string) {
		if done == 5 { // checkpoints 0 to 80: the others, a step behind at most, wrote 60
			cancel()
		}
	}, ctx)
	if _, err := os.Stat(filepath.Join(dirs[1], unitFile(40))); err != nil {
		t.Fatalf("rank 1 kept no copy of the checkpoint at step 40: %v", err)
	}
	dirs[0] = t.TempDir() // rank 0's machine is gone, and its out with it
	for r, err := range run(true, nil, context.Background()) {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	m := mustMetrics(t, dirs[0])
	if m.ResumedFrom < 40 {
		t.Fatalf("rank 0 resumed from step %d, want 40 or later (a surviving rank's chain)", m.ResumedFrom)
	}
	verifyAll(t, dirs[0])
	one, _ := mustRun(t, p, DataAuto)
	if mustRoot(t, one) != mustRoot(t, dirs[0]) {
		t.Fatal("rank 0 lost and resumed: the checkpoints differ from an uninterrupted run's")
	}
	for r := 1; r < 3; r++ {
		rep, err := ReadRankReport(dirs[r], r)
		if err != nil || rep.Start != m.ResumedFrom || rep.WeightsSHA256 != m.WeightsSHA256 {
			t.Errorf("rank %d: %+v, %v; want start %d and rank 0's weights", r, rep, err, m.ResumedFrom)
		}
	}
	t.Logf("%s: rank 0 lost: resumed from step %d, a surviving rank's chain", engine, m.ResumedFrom)
}

func TestGoDistRank0Lost(t *testing.T) { checkDistRank0Lost(t, EngineGo) }

func TestPyTorchDistRank0Lost(t *testing.T) {
	torchOrSkip(t)
	checkDistRank0Lost(t, EnginePyTorch)
}
