package verifier_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/verifier"
	"github.com/kiln-network/kiln/work/cheat"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/verify"
)

// jobEnv names the job a provider's task runs when this test binary is started as
// the task's program (see TestMain): the providers run real workloads, without a
// kiln binary built for the test.
const jobEnv = "KILN_TEST_JOB"

// testJob is what a task renders or trains, as `kiln work render|train` would.
type testJob struct {
	Kind   string        `json:"kind"`
	Render render.Params `json:"render"`
	Train  train.Params  `json:"train"`
	// Scene is the Blender scene's name among the lease's inputs.
	Scene string `json:"scene,omitempty"`
	// Pause makes the job take at least this long, so that its lease is paid for a
	// few blocks (a fraud verdict refunds what it paid).
	Pause time.Duration `json:"pause,omitempty"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(jobEnv); spec != "" {
		if err := runJob(spec); err != nil {
			fmt.Fprintln(os.Stderr, "job:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runJob runs the job spec names into $KILN_OUT.
func runJob(spec string) error {
	var j testJob
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		return err
	}
	out, ctx := os.Getenv("KILN_OUT"), context.Background()
	time.Sleep(j.Pause)
	switch j.Kind {
	case render.Kind:
		scene := ""
		if j.Scene != "" {
			scene = filepath.Join(os.Getenv("KILN_IN"), j.Scene)
		}
		job, err := render.NewJob(j.Render, scene, out)
		if err != nil {
			return err
		}
		return render.Workload{}.Run(ctx, job, out, nil)
	case train.Kind:
		job, err := train.NewJob(j.Train, train.DataAuto, out)
		if err != nil {
			return err
		}
		return train.Workload{}.Run(ctx, job, out, nil)
	}
	return fmt.Errorf("kind %q", j.Kind)
}

// cheats is the cheat a cheating provider uses on each job, picked by the job's seed
// (each cheating job of the test has its own).
type cheats struct {
	render map[int64]render.Cheat
	train  map[int64]train.Cheat
}

// forge is a cheating provider's BeforeSeal: it fakes every unit of a render or
// training job the way plan names for the job (cheat.Dir: render tiles with fewer
// samples, upscaled from a lower resolution, copied from a neighbour or from another
// frame; training segments that skipped steps, used less data or had their weights
// perturbed, chained so the checkpoints still form a hash chain): the root it commits
// is over its fakes, and only re-execution tells.
func forge(t *testing.T, plan cheats) func(uint64, fs.ReadDirFS) (fs.ReadDirFS, error) {
	return func(_ uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error) {
		dir := t.TempDir()
		if err := os.CopyFS(dir, outs); err != nil {
			return nil, err
		}
		_, err := cheat.Dir(context.Background(), dir, func(job units.Job, i int, _ string) string {
			var p struct {
				Seed int64 `json:"seed"`
			}
			if json.Unmarshal(job.Params, &p) != nil {
				return ""
			}
			switch {
			case job.Kind == render.Kind:
				return string(plan.render[p.Seed])
			case job.Kind == train.Kind && i > 0: // NB: step 0 is the seed's weights
				return string(plan.train[p.Seed])
			}
			return ""
		})
		if err != nil {
			return nil, err
		}
		return os.DirFS(dir).(fs.ReadDirFS), nil
	}
}

// logBuf collects logs, printed only when the test fails.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newKey(t *testing.T) (ed25519.PrivateKey, types.Address) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv, types.AddressFromPubKey(pub)
}

// startChain starts a one-validator chain of 200 ms blocks funding accounts, with
// verdicts and votes due within 100 blocks (20 s: Blender and PyTorch start in
// seconds on a loaded machine), then edit (if any) applied to verify's parameters.
func startChain(t *testing.T, accounts []types.Address, edit func(*verify.Params)) *client.Client {
	t.Helper()
	home := node.TempHome(t)
	var funds []bank.GenesisBalance
	for _, a := range accounts {
		funds = append(funds, bank.GenesisBalance{Address: a, Coins: types.Coins{types.NewCoin(types.NativeDenom, 10_000_000_000)}})
	}
	if _, err := node.Init(node.InitOptions{Home: home, ChainID: "kiln-verify-test", BlockTime: 200 * time.Millisecond,
		KeyringBackend: keyring.BackendTest, Accounts: funds}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, "config", "genesis.json")
	doc, err := cmttypes.GenesisDocFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := app.ParseGenesis(doc.AppState)
	if err != nil {
		t.Fatal(err)
	}
	g.Params.Verify.VerdictBlocks, g.Params.Verify.VoteBlocks = 100, 100
	if edit != nil {
		edit(&g.Params.Verify)
	}
	if doc.AppState, err = json.Marshal(g); err != nil {
		t.Fatal(err)
	}
	if err := doc.SaveAs(path); err != nil {
		t.Fatal(err)
	}
	conf, err := node.LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	node.UseFreePorts(conf)
	nd, err := node.Start(conf, node.Options{CheckInvariants: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Stop() })
	c, err := client.New(nd.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	// 30 s covers node start-up on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHeight(ctx, 2); err != nil {
		t.Fatal(err)
	}
	return c
}

// startProvider runs a provider daemon with the process executor and a declared GPU
// of model until the test ends, or until the stop it returns is called.
func startProvider(t *testing.T, c *client.Client, key ed25519.PrivateKey, model string, log *slog.Logger, beforeSeal func(uint64, fs.ReadDirFS) (fs.ReadDirFS, error)) (stop func()) {
	t.Helper()
	cfg := daemon.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.StateDir = filepath.Join(t.TempDir(), "provider")
	// NB: 2,000 KILN: seven fraud slashes of 30% leave a cheat above the chain's
	// min_provider_stake (100 KILN), so it keeps winning the test's orders.
	cfg.Stake = "2000000000" + types.NativeDenom
	cfg.Executor.Set(process.Driver, "allow_unisolated", true)
	cfg.Inventory = daemon.InventoryConfig{Region: "test-1", CPUCores: 8, Memory: "32Gi", Storage: "100Gi",
		GPUs: []daemon.GPUConfig{{Model: model, Memory: "80Gi", Interface: "sxm", Count: 4}}}
	cfg.Pricing.BlockTime = daemon.Duration(200 * time.Millisecond)
	cfg.PollInterval = daemon.Duration(20 * time.Millisecond)
	d, err := daemon.New(cfg, daemon.Deps{Client: c, Key: key, Logger: log, BeforeSeal: beforeSeal})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	select {
	case <-d.Ready():
	case err := <-done:
		done <- err
		t.Fatalf("provider: %v", err)
	case <-time.After(30 * time.Second): // registration: a tx and a few queries
		t.Fatal("provider not ready after 30 s")
	}
	return stop
}

// plan is a batch order for one GPU of model that runs this test binary as job j.
func plan(t *testing.T, name, model string, j testJob, inputs []string) tenant.Plan {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(j)
	// 2 GiB: Blender and PyTorch map far more than the jobs' data.
	g := market.Group{Name: name, Count: 1, CPUMilli: 1000, MemoryBytes: 2 * registry.Gi, StorageBytes: registry.Gi,
		GPU: market.GPURequest{Units: 1, Models: []market.GPUFilter{{Model: model}}}}
	const maxPrice = 2_000
	return tenant.Plan{Name: name, Kind: market.KindBatch, Groups: []market.Group{g}, MaxPrice: maxPrice, Source: "kiln",
		Deposit: types.NewCoin(types.NativeDenom, maxPrice*tenant.DefaultDepositBlocks), Inputs: inputs,
		Manifest: api.Manifest{Services: []api.Service{{Name: name, Command: []string{exe}, Env: []string{jobEnv + "=" + string(spec)}, Count: 1,
			Resources: api.ServiceResources{Unit: api.UnitID(0), CPUMilli: g.CPUMilli, MemoryBytes: g.MemoryBytes, StorageBytes: g.StorageBytes, GPUUnits: 1}}}}}
}

// Verifiers re-execute render and train units on a live network: an honest
// provider's render and train jobs (the Go tracer and trainer; Blender and PyTorch
// where installed) are committed, sampled, re-executed by the assigned verifier
// daemon with the job's pinned assets fetched from the provider, and verified. A
// cheating provider fakes each of its jobs another way: render tiles with fewer
// samples, upscaled from a lower resolution, copied from a neighbour or from another
// frame; training segments that skipped steps, used less data, or had their weights
// perturbed (a model whose checkpoints are larger than a transaction, so the report
// carries the unit's hash and the committee fetches it). Each is reported, convicted
// by a committee of the other verifiers re-executing the disputed unit, and its
// provider slashed, the reporter rewarded and the tenant refunded. No honest provider
// or verifier loses stake; the chain checks the books after every block.
func TestVerifiersReexecuteRenderAndTrain(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a live network with real renders and training")
	}
	logs := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.buf.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, nil))
	tenantKey, tenantAddr := newKey(t)
	honestKey, honest := newKey(t)
	cheatKey, cheat := newKey(t)
	accounts := []types.Address{tenantAddr, honest, cheat}
	var vkeys []ed25519.PrivateKey
	for range 4 { // one checks; a committee of 3 is drawn from the others
		k, a := newKey(t)
		vkeys, accounts = append(vkeys, k), append(accounts, a)
	}
	c := startChain(t, accounts, nil)
	// 5 minutes: thirteen deployments, Blender and PyTorch runs, and every check and
	// committee vote, at 200 ms blocks on a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	type job struct {
		name, model string
		j           testJob
		inputs      []string
		cheat       string
	}
	goRender := render.Params{Renderer: render.RendererGo, Width: 32, Height: 32, FrameStart: 1, FrameEnd: 2, Tiles: 2, Samples: 8, Seed: 3}
	goTrain := train.DefaultParams()
	goTrain.Steps, goTrain.Every = 60, 20
	jobs := []job{
		{"render-go", "h100", testJob{Kind: render.Kind, Render: goRender}, nil, ""},
		{"train-go", "h100", testJob{Kind: train.Kind, Train: goTrain}, nil, ""},
	}
	forged := cheats{render: map[int64]render.Cheat{}, train: map[int64]train.Cheat{}}
	// NB: 1 s: 5 blocks paid, which the fraud verdict refunds.
	const pause = time.Second
	for i, ch := range render.Cheats {
		p := goRender
		p.Seed = int64(100 + i)
		forged.render[p.Seed] = ch
		jobs = append(jobs, job{"render-" + string(ch), "a100", testJob{Kind: render.Kind, Render: p, Pause: pause}, nil, string(ch)})
	}
	for i, ch := range train.Cheats {
		p := goTrain
		p.Seed = int64(200 + i)
		if ch == train.CheatPerturbed {
			// NB: 256 hidden units: checkpoints of 77 KB, over a transaction's 64 KiB.
			p.Hidden = 256
		}
		forged.train[p.Seed] = ch
		jobs = append(jobs, job{"train-" + string(ch), "a100", testJob{Kind: train.Kind, Train: p, Pause: pause}, nil, string(ch)})
	}

	startProvider(t, c, honestKey, "h100", log.With("provider", "honest"), nil)
	startProvider(t, c, cheatKey, "a100", log.With("provider", "cheat"), forge(t, forged))
	vds := startVerifiers(t, ctx, c, vkeys, log)
	stakes := func() map[types.Address]uint64 {
		m := map[types.Address]uint64{}
		for _, a := range accounts[1:] {
			m[a] = 0
		}
		var ps struct {
			Providers []registry.Provider `json:"providers"`
		}
		if err := c.QueryJSON(ctx, client.PathProviders, &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps.Providers {
			m[p.Owner] = p.Stake
		}
		for _, a := range accounts[3:] {
			v, _, err := c.Verifier(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			m[a] = v.Stake
		}
		return m
	}
	before := stakes()

	if _, err := exec.LookPath("blender"); err == nil {
		scene := filepath.Join(t.TempDir(), "scene.blend")
		if err := (render.Workload{}).MakeScene(ctx, scene); err != nil {
			t.Fatal(err)
		}
		p := render.Params{Renderer: render.RendererBlender, Scene: "scene.blend", Width: 48, Height: 32, FrameStart: 3, FrameEnd: 3, Tiles: 2, Samples: 8, Seed: 2, Threads: 1}
		jobs = append(jobs, job{"render-blender", "h100", testJob{Kind: render.Kind, Render: p, Scene: "scene.blend"}, []string{scene}, ""})
	} else {
		t.Log("blender not installed (Debian package blender; .ci/run installs it): the Blender render job is left out")
	}
	if _, err := exec.Command("/usr/bin/python3", "-c", "import torch").CombinedOutput(); err == nil {
		p := goTrain
		p.Engine, p.Steps, p.Every = train.EnginePyTorch, 20, 10
		jobs = append(jobs, job{"train-pytorch", "h100", testJob{Kind: train.Kind, Train: p}, nil, ""})
	} else {
		t.Log("no python3 with torch (Debian package python3-torch; .ci/run installs it): the PyTorch training job is left out")
	}

	leases := map[uint64]job{}
	outs := map[uint64]string{}
	certDir := t.TempDir()
	for _, j := range jobs {
		out := filepath.Join(t.TempDir(), j.name)
		r, err := tenant.Deploy(ctx, c, tenantKey, plan(t, j.name, j.model, j.j, j.inputs), tenant.Options{CertDir: certDir, OutDir: out})
		if err != nil {
			t.Fatalf("deploy %s: %v", j.name, err)
		}
		if r.State != api.StateCompleted || !r.OutputsVerified {
			t.Fatalf("deploy %s: %+v, want completed with outputs verified", j.name, r)
		}
		want := honest
		if j.cheat != "" {
			want = cheat
		}
		if r.Provider != want {
			t.Fatalf("deploy %s ran on %s, want %s", j.name, r.Provider, want)
		}
		leases[r.OrderID], outs[r.OrderID] = j, out
	}

	// Every commitment of these leases decided: verified, or proven fraud.
	var mine []verify.Commitment
	poll.WaitFor(t, time.Until(deadline(ctx)), func() error {
		all, err := c.Commitments(ctx, client.CommitmentFilter{})
		if err != nil {
			return err
		}
		mine = mine[:0]
		var open []string
		for _, cm := range all {
			if _, ok := leases[cm.LeaseID]; !ok {
				continue
			}
			mine = append(mine, cm)
			if cm.State != verify.CommitVerified && cm.State != verify.CommitFraud {
				open = append(open, fmt.Sprintf("%s: %s", leases[cm.LeaseID].name, cm.State))
			}
		}
		if len(mine) < len(leases) || len(open) > 0 {
			return fmt.Errorf("%d of %d leases committed; undecided: %v", len(mine), len(leases), open)
		}
		return nil
	})
	caught, large := map[string]bool{}, 0
	for _, cm := range mine {
		j := leases[cm.LeaseID]
		t.Logf("%s: %d units, %d sampled and re-executed: %s", j.name, cm.Units, len(cm.Samples), cm.State)
		if j.cheat == "" {
			if cm.State != verify.CommitVerified || cm.Kind != j.j.Kind || len(cm.Samples) == 0 {
				t.Errorf("%s: commitment %+v, want %s units verified", j.name, cm, j.j.Kind)
			}
			continue
		}
		if cm.State != verify.CommitFraud || len(cm.Challenges) != 1 {
			t.Errorf("%s: commitment %+v, want proven fraud", j.name, cm)
			continue
		}
		ch, err := c.VerifyChallenge(ctx, cm.Challenges[0])
		if err != nil {
			t.Fatal(err)
		}
		fraudVotes := 0
		for _, v := range ch.Votes {
			if v.Fraud {
				fraudVotes++
			}
		}
		if ch.State != verify.ChallengeFraud || ch.Mode != verify.ModeCommittee || len(ch.Committee) != 3 || fraudVotes < 2 ||
			ch.ByTenant || ch.Challenger != *cm.Verifier || ch.Slashed == 0 || ch.Reward == 0 || ch.Refunded == 0 {
			t.Errorf("%s: challenge %+v, want a committee of 3 convicting on the assigned verifier's report, with a slash, a reward and a refund", j.name, ch)
			continue
		}
		// NB: the lease completed before the verdict: what it paid (the provider's
		// pay, the held part clawed back, and the fees) comes back to the tenant.
		acct, err := c.Escrow(ctx, cm.LeaseID)
		if err != nil {
			t.Fatal(err)
		}
		if gross := acct.Paid + acct.Fees + acct.ClawedBack; ch.Refunded != gross {
			t.Errorf("%s: tenant refunded %d, want the %d the lease paid (%+v)", j.name, ch.Refunded, gross, acct)
		}
		// The report carried the unit's hash, whatever its size: the tenant holds the
		// unit the provider committed, by the name the challenge gives.
		size := reportedSize(t, outs[cm.LeaseID], ch)
		if size > tx.MaxTxBytes {
			large++
		}
		caught[j.cheat] = true
		t.Logf("%s: unit %s (%d bytes) reported by %s, committee %d/%d for fraud: provider slashed %d, reporter paid %d, tenant refunded %d",
			j.name, ch.UnitName, size, ch.Challenger, fraudVotes, len(ch.Votes), ch.Slashed, ch.Reward, ch.Refunded)
	}
	for _, j := range jobs {
		if j.cheat != "" && !caught[j.cheat] {
			t.Errorf("cheat %s not caught", j.cheat)
		}
	}
	if large == 0 {
		t.Errorf("no reported unit was larger than a transaction (%d bytes)", tx.MaxTxBytes)
	}
	after := stakes()
	for a, s := range before {
		switch {
		case a == cheat && after[a] >= s:
			t.Errorf("cheating provider's stake %d, was %d: not slashed", after[a], s)
		case a != cheat && after[a] != s:
			t.Errorf("honest %s's stake %d, was %d", a, after[a], s)
		}
	}
	var units int
	for _, vd := range vds {
		units += vd.Stats().Units
	}
	t.Logf("%d commitments decided, %d units re-executed by 4 verifiers", len(mine), units)
}

// reportedSize is the size of the unit challenge ch reported, as the tenant fetched
// it into out; it fails the test unless that file has the hash the challenge records.
func reportedSize(t *testing.T, out string, ch verify.Challenge) int {
	t.Helper()
	set, err := units.Read(out)
	if err != nil {
		t.Fatalf("units of %s: %v", out, err)
	}
	u, ok := set[ch.UnitName]
	if !ok || u.SHA256 != ch.UnitSHA256 {
		t.Fatalf("challenge %d reports unit %q (sha256 %s); the tenant's units.json has %+v", ch.ID, ch.UnitName, ch.UnitSHA256, u)
	}
	b, err := os.ReadFile(filepath.Join(out, u.File))
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// startVerifiers registers a verifier for each of keys (20 KILN of stake) and runs
// its daemon, polling every 200 ms, until the test ends.
func startVerifiers(t *testing.T, ctx context.Context, c *client.Client, keys []ed25519.PrivateKey, log *slog.Logger) []*verifier.Daemon {
	t.Helper()
	var vds []*verifier.Daemon
	for i, k := range keys {
		self := types.AddressFromPubKey(k.Public().(ed25519.PublicKey))
		if _, err := c.Send(ctx, k, client.SignOptions{}, &verify.MsgRegisterVerifier{Verifier: self, Stake: types.NewCoin(types.NativeDenom, 20_000_000)}); err != nil {
			t.Fatalf("register verifier %d: %v", i, err)
		}
		cfg := verifier.DefaultConfig()
		cfg.Poll, cfg.CertDir, cfg.Logger = 200*time.Millisecond, t.TempDir(), log.With("verifier", i)
		vd, err := verifier.New(cfg, c, k)
		if err != nil {
			t.Fatal(err)
		}
		vctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { vd.Run(vctx); close(done) }()
		t.Cleanup(func() { stop(); <-done })
		vds = append(vds, vd)
	}
	return vds
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
