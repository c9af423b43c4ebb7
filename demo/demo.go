// Package demo runs Kiln's embedded default in one process: a single-validator chain,
// three provider daemons with declared inventories, and one tenant running batch jobs
// and an HTTP service through the providers' mTLS API, with a summary checked against
// the chain's own state.
package demo

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/explorer"
	"github.com/kiln-network/kiln/internal/cputime"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/ports"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/verifier"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/market"
)

// Options configure a demo run.
type Options struct {
	// Home is where the chain and daemons live; empty means a temporary directory
	// removed at the end.
	Home string
	// BlockTime of the demo chain; 200 ms keeps the demo short.
	BlockTime time.Duration
	// Keep leaves the network running until ctx ends, for the user to explore, with
	// an explorer serving it (Summary.ExplorerURL).
	Keep bool
	// Kept, with Keep, is called with the summary once the jobs are done, while the
	// network keeps running: Run returns only when ctx ends.
	Kept func(Summary)
	// ExplorerListen is where the kept network's explorer listens; empty: a free
	// loopback port.
	ExplorerListen string
	// Worker is the kiln binary the jobs run (`kiln work ...`); empty: this executable.
	Worker   string
	Progress io.Writer // progress lines; nil discards
	Logger   *slog.Logger
	// Cheaters is how many of the demo's providers fake part of their work (a quarter
	// of each matmul job's row blocks, zeroed, with a root committed over the fakes):
	// the verifier must catch them. At most len(providers)-1: one stays honest.
	Cheaters int
	// PickPort picks the loopback port the demo's service binds, which must be written
	// into its manifest ahead; nil picks a free one (ports.Pick). A port taken by
	// another program before the service binds it is replaced by a fresh pick.
	PickPort func() (int, error)
	// Pricing is the pricing mode every order of the demo uses (market.ModeNames);
	// empty: the auction.
	Pricing string
	// Cluster runs one cluster job instead of the demo's jobs and service: three
	// providers of one GPU each, a 3-member cluster training data-parallel over the
	// members' WireGuard overlay (root, iproute2 and /dev/net/tun needed).
	Cluster bool
}

// Job is one deployment in the summary.
type Job struct {
	Name             string `json:"name"`
	Pricing          string `json:"pricing"`
	Kind             string `json:"kind"`
	Lease            uint64 `json:"lease,string"`
	Provider         string `json:"provider"`
	GPU              string `json:"gpu,omitempty"`
	PricePerBlock    uint64 `json:"price_per_block,string"`
	OrderToLeaseBlks int64  `json:"order_to_lease_blocks"`
	OrderToLeaseMS   int64  `json:"order_to_lease_ms"`
	OrderToRunningMS int64  `json:"order_to_running_ms"`
	State            string `json:"state"`
	CloseReason      string `json:"close_reason"`
	Outputs          int    `json:"outputs"`
	Paid             uint64 `json:"paid_to_provider,string"`
	Fees             uint64 `json:"protocol_fees,string"`
	Refunded         uint64 `json:"refunded,string"`
	Result           string `json:"result,omitempty"`
}

// Summary is what the demo reports.
type Summary struct {
	// Pricing is the pricing mode the demo's orders used.
	Pricing               string  `json:"pricing"`
	ChainID               string  `json:"chain_id"`
	RPC                   string  `json:"rpc"`
	Providers             int     `json:"providers"`
	InventoriesDeclared   bool    `json:"inventories_declared"`
	Orders                int     `json:"orders"`
	Leases                int     `json:"leases"`
	JobsCompleted         int     `json:"jobs_completed"`
	ServicesReached       int     `json:"services_reached"`
	OrderToLeaseBlocksP50 float64 `json:"order_to_lease_blocks_p50"`
	OrderToLeaseMSP50     float64 `json:"order_to_lease_ms_p50"`
	OrderToRunningMSP50   float64 `json:"order_to_running_ms_p50"`
	PaidToProviders       uint64  `json:"paid_to_providers,string"`
	ProtocolFees          uint64  `json:"protocol_fees,string"`
	Refunded              uint64  `json:"refunded,string"`
	SupplyBefore          string  `json:"supply_before"`
	SupplyAfter           string  `json:"supply_after"`
	// BalancesBefore and BalancesAfter are every balance on chain summed, module
	// accounts (escrow, bid deposits, community pool, bonded stake) included.
	BalancesBefore string `json:"balances_before"`
	BalancesAfter  string `json:"balances_after"`
	// SupplyConserved: before and after the demo the chain's books balanced (every
	// denom's balances add up to its supply, every module account holds what its
	// records say), and supply and balances are the same.
	SupplyConserved    bool     `json:"supply_conserved"`
	AccountingProblems []string `json:"accounting_problems,omitempty"`

	// Verification: the jobs' work commitments, checked by the demo's verifier.
	Verification Verification `json:"verification"`
	// CheatersCaught counts cheating providers proven to have faked work;
	// HonestSlashed counts honest providers whose stake fell.
	CheatersCaught int `json:"cheaters_caught"`
	HonestSlashed  int `json:"honest_slashed"`
	// VerificationOverhead is the verifier's CPU seconds re-executing sampled units
	// over the CPU seconds of the batch jobs it checked (their processes' rusage).
	VerificationOverhead float64 `json:"verification_overhead"`

	Blocks     int64 `json:"blocks"`
	DurationMS int64 `json:"duration_ms"`
	Jobs       []Job `json:"jobs"`
	// Mode holds the pricing mode's own figures (the order book's prices, ...).
	Mode map[string]any `json:"mode,omitempty"`

	// ClusterMembersRan counts the cluster's ranks that ran to completion (their
	// member done on chain, their rank report fetched); ClusterProviders the
	// providers its members ran on. Set with Options.Cluster.
	ClusterMembersRan int         `json:"cluster_members_ran"`
	ClusterProviders  int         `json:"cluster_providers"`
	Cluster           *ClusterJob `json:"cluster,omitempty"`

	// MetricsURL is the node's Prometheus metrics (CometBFT's and the app's kiln_*);
	// ProviderMetricsURLs the provider daemons'. ExplorerURL is set with Keep.
	MetricsURL          string   `json:"metrics_url"`
	ProviderMetricsURLs []string `json:"provider_metrics_urls"`
	ExplorerURL         string   `json:"explorer_url,omitempty"`
}

// Verification is what the trust layer did in the demo.
type Verification struct {
	Verifier string `json:"verifier"`
	// Verifiers are every verifier of the demo: one, or with cheaters four (one checks
	// a commitment; a committee of 3 is drawn from the others to judge a render or
	// training unit it reports).
	Verifiers   []string `json:"verifiers"`
	Cheaters    []string `json:"cheaters,omitempty"`
	Commitments int      `json:"commitments"`
	Verified    int      `json:"verified"`
	Fraud       int      `json:"fraud"`
	// What the fraud verdicts moved: provider stake slashed, the reporter's reward and
	// the tenant's refund of the cheat's payments.
	Slashed        uint64  `json:"slashed,string"`
	ReporterReward uint64  `json:"reporter_reward,string"`
	TenantRefunded uint64  `json:"tenant_refunded,string"`
	UnitsChecked   int     `json:"units_checked"`
	VerifierCPUs   float64 `json:"verifier_cpu_s"`
	JobCPUs        float64 `json:"job_cpu_s"`
}

// providerSpec is one demo provider's declared hardware and prices.
type providerSpec struct {
	name   string
	region string
	cores  uint64
	mem    string
	gpus   []daemon.GPUConfig
}

var providers = []providerSpec{
	{"dc-h100", "eu-west", 128, "1Ti", []daemon.GPUConfig{{Model: "h100", Memory: "80Gi", Interface: "sxm", Count: 8}}},
	{"lab-a100", "us-east", 64, "512Gi", []daemon.GPUConfig{{Model: "a100", Memory: "80Gi", Interface: "pcie", Count: 4}}},
	{"home-4090", "eu-central", 16, "64Gi", []daemon.GPUConfig{{Model: "rtx4090", Memory: "24Gi", Interface: "pcie", Count: 2}}},
}

// Run starts the network, runs the jobs and returns the summary.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.BlockTime <= 0 {
		o.BlockTime = 200 * time.Millisecond
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PickPort == nil {
		o.PickPort = func() (int, error) {
			p, err := ports.Pick("127.0.0.1", 1)
			if err != nil {
				return 0, err
			}
			return p[0], nil
		}
	}
	if o.Worker == "" {
		exe, err := os.Executable()
		if err != nil {
			return Summary{}, err
		}
		o.Worker = exe
	}
	step := func(format string, args ...any) { fmt.Fprintf(o.Progress, "==> "+format+"\n", args...) }
	if o.Pricing == "" {
		o.Pricing = market.ModeAuction
	}
	if !market.ValidMode(o.Pricing) {
		return Summary{}, fmt.Errorf("pricing %q: must be one of %s", o.Pricing, strings.Join(market.ModeNames(), ", "))
	}
	provs := providers
	if o.Cluster {
		if o.Pricing != market.ModeAuction {
			return Summary{}, fmt.Errorf("pricing %q: a cluster order is placed by the auction only", o.Pricing)
		}
		if why := ClusterAvailable(); why != "" {
			return Summary{}, fmt.Errorf("demo --cluster cannot run here: %s. A cluster's members reach each other over a WireGuard overlay, each in a network namespace of its own: run it as root on Linux with iproute2 and /dev/net/tun", why)
		}
		provs = clusterProviders
	}
	s := Summary{Pricing: o.Pricing, ChainID: "kiln-demo", Providers: len(provs), InventoriesDeclared: true}
	home := o.Home
	if home == "" {
		d, err := os.MkdirTemp("", "kiln-demo-")
		if err != nil {
			return s, err
		}
		defer os.RemoveAll(d)
		home = d
	}
	start := time.Now()

	// Keys: one tenant and one account per provider, funded at genesis.
	kr, err := keyring.Open(home, keyring.BackendTest, nil)
	if err != nil {
		return s, err
	}
	var accounts []bank.GenesisBalance
	keyOf := map[string]ed25519.PrivateKey{}
	if o.Cheaters < 0 || o.Cheaters >= len(provs) || o.Cluster && o.Cheaters > 0 {
		return s, fmt.Errorf("cheaters: %d, must be 0 to %d (one provider stays honest; none with --cluster)", o.Cheaters, len(provs)-1)
	}
	names := []string{"tenant", provs[0].name, provs[1].name, provs[2].name}
	verifiers := []string{"verifier"}
	if o.Cheaters > 0 {
		verifiers = append(verifiers, "verifier-2", "verifier-3", "verifier-4")
	}
	for _, name := range append(names, verifiers...) {
		info, _, err := kr.Add(name)
		if err != nil {
			return s, err
		}
		keyOf[name], _, _ = kr.PrivKey(name)
		accounts = append(accounts, bank.GenesisBalance{Address: info.Address, Coins: types.Coins{types.NewCoin(types.NativeDenom, 10_000_000_000)}})
	}
	if _, err := node.Init(node.InitOptions{Home: home, ChainID: s.ChainID, BlockTime: o.BlockTime, KeyringBackend: keyring.BackendTest, Accounts: accounts}); err != nil {
		return s, err
	}
	conf, err := node.LoadConfig(home)
	if err != nil {
		return s, err
	}
	// NB: the node binds free ports itself; nothing is picked ahead for another program
	// to take in between.
	conf.Instrumentation.Prometheus = true
	node.UseFreePorts(conf)
	n, err := node.Start(conf, node.Options{Logger: o.Logger, CometLevel: slog.LevelError + 4, CheckInvariants: true})
	if err != nil {
		return s, err
	}
	defer n.Stop()
	rpc := n.RPCAddr()
	s.RPC, s.MetricsURL = rpc, n.MetricsURL()
	c, err := client.New(rpc)
	if err != nil {
		return s, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // node start-up on a loaded machine
	defer cancel()
	if err := c.WaitHeight(wctx, 2); err != nil {
		return s, err
	}
	step("chain %s: 1 validator in this process, %s blocks, rpc %s", s.ChainID, o.BlockTime, rpc)
	startHeight := n.App.Height()
	books0, err := c.Accounting(ctx)
	if err != nil {
		return s, err
	}
	s.SupplyBefore, s.BalancesBefore = totals(books0)

	// Three provider daemons, in this process, with the process executor.
	// NB: not ended by ctx: with --keep, ctx ends first (Ctrl-C) and the daemons must
	// still stop the service's workload when its lease closes; stopDaemons ends them.
	dctx, stopDaemons := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDaemons()
	errs := make(chan error, len(provs))
	clientAddr, stopClient, err := clientEndpoint()
	if err != nil {
		return s, err
	}
	defer stopClient()
	for i, p := range provs {
		cfg := daemon.DefaultConfig()
		cfg.Listen = "127.0.0.1:0"
		cfg.MetricsListen = "127.0.0.1:0"
		cfg.StateDir = filepath.Join(home, "providers", p.name)
		// NB: the demo runs its own jobs; real providers use docker.
		cfg.Executor.Set(process.Driver, "allow_unisolated", true)
		cfg.Inventory = daemon.InventoryConfig{Region: p.region, CPUCores: p.cores, Memory: p.mem, Storage: "8Ti", GPUs: p.gpus,
			Attributes: map[string]string{"tier": "demo"}}
		cfg.Pricing.BlockTime = daemon.Duration(o.BlockTime)
		// NB: 1,000 KILN: three fraud slashes of 30% leave a cheater above the chain's
		// min_provider_stake (100 KILN), so it still wins its next orders.
		cfg.Stake = "1000000000" + types.NativeDenom
		deps := daemon.Deps{Client: c, Key: keyOf[p.name], Logger: o.Logger.With("provider", p.name)}
		cheat := i < o.Cheaters
		if cheat {
			deps.BeforeSeal = fakeUnits(filepath.Join(home, "cheats", p.name))
			s.Verification.Cheaters = append(s.Verification.Cheaters, p.name)
		}
		cfg.OrderBook = o.Pricing == market.ModeMarket
		if o.Pricing == market.ModeSealed {
			cfg.RTTEndpoints = map[string]string{demoClientLocation: clientAddr}
		}
		d, err := daemon.New(cfg, deps)
		if err != nil {
			return s, fmt.Errorf("provider %s: %w", p.name, err)
		}
		go func() { errs <- d.Run(dctx) }()
		select {
		case <-d.Ready():
		case err := <-errs:
			return s, fmt.Errorf("provider %s: %w", p.name, err)
		case <-time.After(30 * time.Second): // registration takes a few blocks
			return s, fmt.Errorf("provider %s did not become ready", p.name)
		}
		s.ProviderMetricsURLs = append(s.ProviderMetricsURLs, "http://"+d.MetricsAddr()+"/metrics")
		gpus := make([]string, 0, len(p.gpus))
		for _, g := range p.gpus {
			gpus = append(gpus, fmt.Sprintf("%dx%s", g.Count, g.Model))
		}
		role := ""
		if cheat {
			role = " — CHEATER: fakes a quarter of its units (matmul blocks zeroed, render tiles upscaled, training segments that skipped steps)"
		}
		step("provider %-9s registered: %s, %d cores, %s RAM, %s (declared: this machine has no GPU), api %s%s",
			p.name, strings.Join(gpus, ","), p.cores, p.mem, p.region, d.Endpoint(), role)
	}

	if o.Cluster {
		if o.Keep {
			return s, fmt.Errorf("--keep: not with --cluster")
		}
		if err := clusterRun(ctx, c, keyOf["tenant"], o, home, &s, step); err != nil {
			return s, err
		}
		return s, finish(ctx, c, &s, n, start, startHeight, books0)
	}
	var vds []*verifier.Daemon
	for _, name := range verifiers {
		vd, err := startVerifier(dctx, c, keyOf[name], filepath.Join(home, name), o.Logger)
		if err != nil {
			return s, err
		}
		vds = append(vds, vd)
		s.Verification.Verifiers = append(s.Verification.Verifiers, vd.Address().String())
	}
	s.Verification.Verifier = s.Verification.Verifiers[0]
	step("%d verifier(s) registered with stake: one re-executes the units of each commitment sampled from the randomness of the block after it; a committee of 3 judges a render or training unit reported", len(vds))
	stakes0, err := providerStakes(ctx, c)
	if err != nil {
		return s, err
	}

	tenantKey := keyOf["tenant"]
	session := (*market.Session)(nil)
	if o.Pricing == market.ModeSealed {
		session = &market.Session{Blocks: tenant.DefaultDepositBlocks, Location: demoClientLocation, MaxRTTMs: demoMaxRTTMs}
	}
	workDir := filepath.Join(home, "tenant")
	os.MkdirAll(workDir, 0o755)
	input := filepath.Join(workDir, "input.txt")
	os.WriteFile(input, []byte("kiln runs real jobs on providers chosen by a reverse auction\n"), 0o644)
	opts := tenant.Options{CertDir: filepath.Join(home, "certs"), Progress: func(l string) { step("  %s", l) }, LeaseTimeout: 30 * time.Second}

	jobs := []struct {
		name string
		plan tenant.Plan
	}{
		{"matmul-h100", batch("matmul", o.Worker, []string{"work", "matmul", "--n", "384", "--seed", "1", "--dir", "."}, "h100", 1, nil)},
		{"matmul-a100", batch("matmul", o.Worker, []string{"work", "matmul", "--n", "384", "--seed", "2", "--dir", "."}, "a100", 1, nil)},
		{"checksum-cpu", batch("checksum", "/bin/sh", []string{"-c", `sha256sum "$KILN_IN/input.txt" > "$KILN_OUT/sha256.txt" && tr a-z A-Z < "$KILN_IN/input.txt" > "$KILN_OUT/upper.txt"`}, "", 0, []string{input})},
	}
	if o.Cheaters > 0 {
		// NB: small on purpose (milliseconds of work): with cheaters, one render and one
		// training job on the h100 provider show a committee convicting what the chain
		// cannot check itself.
		jobs = append(jobs, []struct {
			name string
			plan tenant.Plan
		}{
			{"render-h100", batch("render", o.Worker, []string{"work", "render", "--width", "32", "--height", "32", "--frames", "1", "--tiles", "2", "--samples", "8", "--out", "."}, "h100", 1, nil)},
			{"train-h100", batch("train", o.Worker, []string{"work", "train", "--data", "generated", "--steps", "60", "--checkpoint-every", "20", "--out", "."}, "h100", 1, nil)},
		}...)
	}
	jobCPU0 := cputime.Children()
	for _, j := range jobs {
		step("deploying batch job %s", j.name)
		o2 := opts
		o2.OutDir = filepath.Join(workDir, "out", j.name)
		j.plan.Pricing, j.plan.Session = o.Pricing, session
		if o.Pricing == market.ModePerformance {
			perfPlan(&j.plan)
		}
		r, err := tenant.Deploy(ctx, c, tenantKey, j.plan, o2)
		if err != nil {
			return s, fmt.Errorf("job %s: %w", j.name, err)
		}
		job := jobFrom(j.name, j.plan.Kind, r)
		job.Pricing = j.plan.Pricing
		job.Result = summarizeOutputs(o2.OutDir)
		s.Jobs = append(s.Jobs, job)
		if r.State == api.StateCompleted {
			s.JobsCompleted++
		}
	}

	jobCPU := cputime.Children() - jobCPU0
	if err := verification(ctx, c, vds, &s, stakes0, jobCPU, step); err != nil {
		return s, err
	}

	// One HTTP service, reached through the provider's ingress over mTLS.
	r, svc, err := deployService(ctx, c, tenantKey, o, opts, &s, step)
	if err != nil {
		return s, err
	}
	// closeService closes the service lease and waits until its provider has stopped
	// the workload, so that the demo leaves no process behind.
	closeService := func(ctx context.Context) error {
		owner := types.AddressFromPubKey(tenantKey.Public().(ed25519.PublicKey))
		if _, err := c.Send(ctx, tenantKey, client.SignOptions{}, &market.MsgCloseLease{Sender: owner, LeaseID: r.OrderID}); err != nil {
			return fmt.Errorf("close service lease: %w", err)
		}
		step("  closed the service lease; its unused escrow is refunded in the same block")
		return waitStopped(ctx, c, tenantKey, opts.CertDir, r)
	}
	if !o.Keep {
		if err := closeService(ctx); err != nil {
			return s, err
		}
	}
	s.Jobs = append(s.Jobs, svc)

	// Settle: wait until every batch lease closed on chain, then read the escrow books.
	if err := settle(ctx, c, &s, o.Keep); err != nil {
		return s, err
	}
	if err := finish(ctx, c, &s, n, start, startHeight, books0); err != nil {
		return s, err
	}
	if s.Mode, err = modeFigures(ctx, c, o.Pricing, s.Jobs); err != nil {
		return s, err
	}
	if !s.SupplyConserved {
		step("money NOT conserved: %s", strings.Join(s.AccountingProblems, "; "))
	}
	if o.Keep {
		listen := o.ExplorerListen
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		ecfg := explorer.DefaultConfig()
		ecfg.Node, ecfg.Listen, ecfg.Logger = rpc, listen, o.Logger.With("part", "explorer")
		// NB: blocks come every BlockTime; reading faster than that finds nothing new.
		ecfg.Refresh = max(o.BlockTime, 200*time.Millisecond)
		ex, err := explorer.New(ecfg)
		if err != nil {
			return s, err
		}
		if err := ex.Start(ctx); err != nil {
			return s, err
		}
		defer ex.Close()
		s.ExplorerURL = ex.URL()
		step("network left running: rpc %s, home %s (tenant key `tenant` in its test keyring); Ctrl-C to stop", rpc, home)
		step("explorer %s, metrics %s", s.ExplorerURL, s.MetricsURL)
		if o.Kept != nil {
			o.Kept(s)
		}
		<-ctx.Done()
		// 30 s: a close tx and the provider's stop take a few blocks.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := closeService(cctx); err != nil {
			step("  %v", err)
		}
	}
	stopDaemons()
	return s, nil
}

// finish records the run's blocks, time and the chain's books after it, checked
// against books0.
func finish(ctx context.Context, c *client.Client, s *Summary, n *node.Node, start time.Time, startHeight int64, books0 bank.Accounting) error {
	s.Blocks = n.App.Height() - startHeight
	s.DurationMS = time.Since(start).Milliseconds()
	books1, err := c.Accounting(ctx)
	if err != nil {
		return err
	}
	s.SupplyAfter, s.BalancesAfter = totals(books1)
	s.SupplyConserved, s.AccountingProblems = conserved(books0, books1)
	return nil
}

// totals returns the supply records and every balance summed, as coin lists.
func totals(a bank.Accounting) (supply, balances string) {
	var sc, bc types.Coins
	for _, d := range a.Denoms {
		sc = append(sc, types.NewCoin(d.Denom, d.Supply))
		bc = append(bc, types.NewCoin(d.Denom, d.Balances))
	}
	return sc.String(), bc.String()
}

// conserved reports whether no money was created or lost between two accountings of
// the chain: each balanced on its own, and every denom's supply and summed balances
// are the same in both. It says what is off otherwise.
func conserved(before, after bank.Accounting) (bool, []string) {
	var problems []string
	for _, p := range before.Problems {
		problems = append(problems, "before: "+p)
	}
	for _, p := range after.Problems {
		problems = append(problems, "after: "+p)
	}
	was := map[string]bank.DenomTotals{}
	for _, d := range before.Denoms {
		was[d.Denom] = d
	}
	for _, d := range after.Denoms {
		w, ok := was[d.Denom]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s appeared: supply %d, balances %d", d.Denom, d.Supply, d.Balances))
		case w.Supply != d.Supply:
			problems = append(problems, fmt.Sprintf("supply of %s went from %d to %d", d.Denom, w.Supply, d.Supply))
		case w.Balances != d.Balances:
			problems = append(problems, fmt.Sprintf("balances of %s went from %d to %d", d.Denom, w.Balances, d.Balances))
		}
		delete(was, d.Denom)
	}
	for _, d := range before.Denoms {
		if _, gone := was[d.Denom]; gone {
			problems = append(problems, fmt.Sprintf("%s disappeared: supply was %d, balances %d", d.Denom, d.Supply, d.Balances))
		}
	}
	if len(before.Denoms) == 0 {
		problems = append(problems, "the chain reported no denoms")
	}
	return len(problems) == 0, problems
}

// deployService deploys the demo's HTTP service and calls it through the ingress.
//
// NB: the process executor runs the service as a host process that binds its port
// itself, so the port is picked ahead and written into the manifest, and another
// program may take it before the service binds it. The service then exits with
// "address already in use": its lease is closed (its row stays in the summary, with
// its money) and the service deployed again on a fresh port, up to ports.Attempts
// times.
func deployService(ctx context.Context, c *client.Client, key ed25519.PrivateKey, o Options, opts tenant.Options, s *Summary,
	step func(string, ...any)) (tenant.Result, Job, error) {
	for attempt := 1; ; attempt++ {
		port, err := o.PickPort()
		if err != nil {
			return tenant.Result{}, Job{}, fmt.Errorf("service: pick a port: %w", err)
		}
		plan := batch("inference", o.Worker, []string{"work", "serve", "--port", fmt.Sprint(port)}, "rtx4090", 1, nil)
		plan.Kind = market.KindService
		plan.Pricing = o.Pricing
		if o.Pricing == market.ModePerformance {
			perfPlan(&plan)
		}
		if o.Pricing == market.ModeSealed {
			plan.Session = &market.Session{Blocks: tenant.DefaultDepositBlocks, Location: demoClientLocation, MaxRTTMs: demoMaxRTTMs}
		}
		plan.Manifest.Services[0].Expose = []api.Expose{{Port: uint32(port), Global: true, Proto: "tcp"}}
		step("deploying service inference (HTTP on port %d behind the ingress)", port)
		r, deployErr := tenant.Deploy(ctx, c, key, plan, opts)
		svc := jobFrom("inference-4090", plan.Kind, r)
		svc.Pricing = plan.Pricing
		// NB: the provider closes the lease of a service that died within a block or
		// two, and erases its log with it: the log is followed from the start.
		logc := make(chan string, 1)
		lctx, stopLog := context.WithCancel(ctx)
		if r.LeaseHeight > 0 {
			go func() { logc <- serviceLog(lctx, c, key, opts.CertDir, r, deployErr == nil) }()
		}
		var reachErr error
		if deployErr == nil {
			var body string
			if body, reachErr = reach(ctx, c, key, opts.CertDir, r); reachErr == nil {
				stopLog()
				s.ServicesReached++
				svc.Result = body
				step("  ingress answered: %s", body)
				return r, svc, nil
			}
		}
		retry := false
		if r.LeaseHeight > 0 && attempt < ports.Attempts {
			var log string
			select {
			case log = <-logc: // a dead service's log has ended
			case <-time.After(2 * time.Second):
			}
			retry = ports.InUseText(log) || heldByOther(ctx, c, r, port)
		}
		stopLog()
		switch {
		case !retry && deployErr != nil:
			return r, svc, fmt.Errorf("service: %w", deployErr)
		case !retry:
			step("  ingress: %v", reachErr)
			return r, svc, nil
		}
		step("  port %d was taken by another program before the service bound it: lease %d closed, deploying again on a fresh port (attempt %d of %d)",
			port, r.OrderID, attempt+1, ports.Attempts)
		// NB: its provider closes a failed service's lease itself, unless the tenant
		// is first.
		if l, err := c.Lease(ctx, r.OrderID); err != nil || l.State != market.LeaseClosed {
			owner := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
			// A refusal because the lease is closed means its provider was first.
			if _, err := c.Send(ctx, key, client.SignOptions{}, &market.MsgCloseLease{Sender: owner, LeaseID: r.OrderID}); err != nil && !errors.Is(err, types.ErrLeaseClosed) {
				if l, lerr := c.Lease(ctx, r.OrderID); lerr != nil || l.State != market.LeaseClosed {
					return r, svc, fmt.Errorf("close lease %d of the service that lost its port: %w", r.OrderID, err)
				}
			}
		}
		svc.Name, svc.State = fmt.Sprintf("inference-4090 (port %d taken)", port), api.StateFailed
		s.Jobs = append(s.Jobs, svc)
	}
}

// serviceLog returns the log of lease r's service, at most 64 KiB: with follow, all of
// it until the service exits or ctx ends.
func serviceLog(ctx context.Context, c *client.Client, key ed25519.PrivateKey, certDir string, r tenant.Result, follow bool) string {
	pc, err := tenant.ConnectAs(ctx, c, key, certDir, r.Provider)
	if err != nil {
		return ""
	}
	defer pc.Close()
	rc, err := pc.Logs(ctx, r.OrderID, api.LogSelector{}, follow)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	return string(b)
}

// heldByOther reports whether the service of lease r is dead (its provider closed
// the lease as workload_failed) while another program holds the port it was to bind:
// the evidence left when its log could not be read.
func heldByOther(ctx context.Context, c *client.Client, r tenant.Result, port int) bool {
	l, err := c.Lease(ctx, r.OrderID)
	// NB: only for a service known dead: a live one holds its own port.
	return err == nil && l.State == market.LeaseClosed && l.CloseReason == market.ReasonWorkloadFailed &&
		ports.InUse(ports.Free("127.0.0.1", port))
}

// batch builds a one-service plan for the demo: price per block well above what any
// demo provider asks, deposit covering 600 blocks.
func batch(name, cmd string, args []string, gpuModel string, gpus uint32, inputs []string) tenant.Plan {
	g := market.Group{Name: name, Count: 1, CPUMilli: 1000, MemoryBytes: 512 << 20, StorageBytes: 1 << 30}
	if gpus > 0 {
		g.GPU = market.GPURequest{Units: gpus, Models: []market.GPUFilter{{Model: gpuModel}}}
	}
	const maxPrice = 2_000
	return tenant.Plan{Name: name, Kind: market.KindBatch, Groups: []market.Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, maxPrice*tenant.DefaultDepositBlocks), Inputs: inputs, Source: "kiln",
		Manifest: api.Manifest{Services: []api.Service{{Name: name, Command: append([]string{cmd}, args...), Count: 1,
			Resources: api.ServiceResources{Unit: api.UnitID(0), CPUMilli: g.CPUMilli, MemoryBytes: g.MemoryBytes, StorageBytes: g.StorageBytes, GPUUnits: gpus}}}}}
}

func jobFrom(name, kind string, r tenant.Result) Job {
	return Job{Name: name, Kind: kind, Lease: r.OrderID, Provider: r.Provider.String(), GPU: r.GPUs, PricePerBlock: r.Price,
		OrderToLeaseBlks: r.OrderToLeaseBlks, OrderToLeaseMS: r.OrderToLeaseMS, OrderToRunningMS: r.OrderToRunningMS,
		State: r.State, Outputs: len(r.Outputs)}
}

func summarizeOutputs(dir string) string {
	if set, err := units.Read(dir); err == nil {
		root := set.Root()
		return fmt.Sprintf("%d verifiable units, Merkle root %x…", len(set), root[:6])
	}
	if b, err := os.ReadFile(filepath.Join(dir, "result.json")); err == nil {
		var m struct {
			Digest   string  `json:"digest"`
			Verified bool    `json:"freivalds_verified"`
			GFLOPS   float64 `json:"gflops"`
		}
		if json.Unmarshal(b, &m) == nil && len(m.Digest) >= 12 {
			return fmt.Sprintf("digest %s…, Freivalds verified %v, %.1f GFLOP/s", m.Digest[:12], m.Verified, m.GFLOPS)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "upper.txt")); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// reach calls the service through its provider's ingress with the tenant's mTLS cert.
func reach(ctx context.Context, c *client.Client, key ed25519.PrivateKey, certDir string, r tenant.Result) (string, error) {
	pc, err := tenant.ConnectAs(ctx, c, key, certDir, r.Provider)
	if err != nil {
		return "", err
	}
	defer pc.Close()
	var lastErr error
	for i := 0; i < 50; i++ { // the service needs a moment to bind its port
		// NB: 3 s per call, which the service answers in milliseconds: a program that
		// took the service's port may hold the ingress's connection unanswered.
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, pc.IngressURL(r.OrderID, "/hello"), nil)
		resp, err := pc.HTTPClient().Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == 200 {
				cancel()
				return strings.TrimSpace(string(b)), nil
			}
			lastErr = fmt.Errorf("ingress answered %d: %s", resp.StatusCode, b)
		} else {
			lastErr = err
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	return "", lastErr
}

// settle waits for the demo's leases to close and fills the money columns from the
// chain's escrow accounts.
func settle(ctx context.Context, c *client.Client, s *Summary, keep bool) error {
	deadline := time.Now().Add(30 * time.Second) // completion reports land within a few blocks
	for i := range s.Jobs {
		j := &s.Jobs[i]
		for {
			l, err := c.Lease(ctx, j.Lease)
			if err != nil {
				return err
			}
			j.CloseReason = l.CloseReason
			if l.State == market.LeaseClosed || keep || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		acct, err := c.Escrow(ctx, j.Lease)
		if err != nil {
			return err
		}
		j.Paid, j.Fees, j.Refunded = acct.Paid, acct.Fees, acct.Refunded
		s.PaidToProviders += acct.Paid
		s.ProtocolFees += acct.Fees
		s.Refunded += acct.Refunded
	}
	s.Orders, s.Leases = len(s.Jobs), len(s.Jobs)
	var blocks, leaseMS, runMS []float64
	for _, j := range s.Jobs {
		blocks = append(blocks, float64(j.OrderToLeaseBlks))
		leaseMS = append(leaseMS, float64(j.OrderToLeaseMS))
		runMS = append(runMS, float64(j.OrderToRunningMS))
	}
	s.OrderToLeaseBlocksP50, s.OrderToLeaseMSP50, s.OrderToRunningMSP50 = median(blocks), median(leaseMS), median(runMS)
	if s.JobsCompleted == 0 {
		return errors.New("no batch job completed")
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// waitStopped waits until the provider reports the lease's workload stopped (or gone).
func waitStopped(ctx context.Context, c *client.Client, key ed25519.PrivateKey, certDir string, r tenant.Result) error {
	pc, err := tenant.ConnectAs(ctx, c, key, certDir, r.Provider)
	if err != nil {
		return err
	}
	defer pc.Close()
	deadline := time.Now().Add(20 * time.Second) // the provider stops it in the next block
	for time.Now().Before(deadline) {
		// NB: an error (the provider busy) is asked again, not taken for a stop.
		st, err := pc.Status(ctx, r.OrderID)
		if err == nil && (st.State == api.StateStopped || st.State == api.StateClosed || st.State == api.StatePending) {
			return nil // stopped, or erased with its lease (the API then says pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the provider did not stop lease %d's workload in 20 s", r.OrderID)
}
