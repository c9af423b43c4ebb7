package demo

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/x/market"
)

// ClusterJob is what `kiln demo --cluster`'s cluster did.
type ClusterJob struct {
	Order   uint64 `json:"order,string"`
	Engine  string `json:"engine"`
	Members int    `json:"members"`
	State   string `json:"state"`
	Epoch   uint32 `json:"epoch"`
	// OrderToAllRunningMS is the time from the order to every rank running, as the
	// chain saw it.
	OrderToAllRunningMS int64 `json:"order_to_all_running_ms"`
	// Ranks are the rank reports fetched from the members (rank-N.json).
	Ranks []train.RankReport `json:"ranks"`
	// Verdict is `kiln work verify` on rank 0's outputs (the model's checkpoints).
	Verdict      string `json:"verdict"`
	UnitsChecked int    `json:"units_checked"`
	OutDir       string `json:"out_dir"`
}

// clusterProviders are the providers of `kiln demo --cluster`: three machines of one
// GPU each, so that a 3-member cluster spans all three.
var clusterProviders = []providerSpec{
	{"gpu-eu", "eu-west", 16, "64Gi", []daemon.GPUConfig{{Model: "rtx4090", Memory: "24Gi", Interface: "pcie", Count: 1}}},
	{"gpu-us", "us-east", 16, "64Gi", []daemon.GPUConfig{{Model: "rtx4090", Memory: "24Gi", Interface: "pcie", Count: 1}}},
	{"gpu-asia", "ap-south", 16, "64Gi", []daemon.GPUConfig{{Model: "rtx4090", Memory: "24Gi", Interface: "pcie", Count: 1}}},
}

// ClusterAvailable says why this machine cannot run a cluster's overlay, or "" when
// it can: every member needs a network namespace and a TUN device.
func ClusterAvailable() string {
	if why := netns.Available(); why != "" {
		return why
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("no TUN device: %v", err)
	}
	f.Close()
	return ""
}

// clusterSteps and clusterEvery size the demo's training run: long enough for a
// real data-parallel run with ten checkpoints, short on 2 cores.
const (
	clusterMembers = 3
	clusterSteps   = 200
	clusterEvery   = 20
)

// ClusterPlan is a cluster of members ranks training the demo's model data-parallel
// with `worker work train` (engine go or pytorch), each member one GPU, on failure
// policy. The command resumes from the last checkpoint in its outputs, so that a
// member re-placed after a failure continues the job.
func ClusterPlan(worker, engine string, members uint32, steps, every int, policy string) tenant.Plan {
	g := market.Group{Name: "train", Count: 1, CPUMilli: 1000, MemoryBytes: 1 << 30, StorageBytes: 1 << 30,
		GPU: market.GPURequest{Units: 1}}
	const perMember = 2_000
	maxPrice := perMember * uint64(members)
	args := []string{"work", "train", "--engine", engine, "--steps", strconv.Itoa(steps), "--checkpoint-every", strconv.Itoa(every), "--resume", "."}
	return tenant.Plan{Name: "train", Kind: market.KindBatch, Groups: []market.Group{g}, MaxPrice: maxPrice,
		Deposit: types.NewCoin(types.NativeDenom, maxPrice*tenant.DefaultDepositBlocks), Source: "kiln",
		Cluster: &market.Cluster{Members: members, GPUsPerMember: 1, OnMemberFailure: policy},
		Manifest: api.Manifest{Services: []api.Service{{Name: "train", Command: append([]string{worker}, args...), Count: 1,
			Resources: api.ServiceResources{Unit: api.UnitID(0), CPUMilli: g.CPUMilli, MemoryBytes: g.MemoryBytes, StorageBytes: g.StorageBytes, GPUUnits: 1}}}}}
}

// TrainEngine is the engine a cluster job trains with here: pytorch where a python3
// with torch is installed, else the Go engine in this binary.
func TrainEngine(ctx context.Context) string {
	if _, err := (train.Workload{}).TorchPython(ctx); err == nil {
		return "pytorch"
	}
	return "go"
}

// runCluster deploys the demo's cluster job, fetches every rank's outputs and verifies
// rank 0's, and records it in s.
func runCluster(ctx context.Context, c *client.Client, key ed25519.PrivateKey, o Options, opts tenant.Options, workDir string, s *Summary,
	step func(string, ...any)) error {
	engine := TrainEngine(ctx)
	plan := ClusterPlan(o.Worker, engine, clusterMembers, clusterSteps, clusterEvery, market.FailRefund)
	opts.OutDir = filepath.Join(workDir, "out", "cluster")
	step("deploying a %d-member cluster: kiln work train --engine %s, data-parallel, %d steps, one rank per provider over a WireGuard overlay",
		clusterMembers, engine, clusterSteps)
	r, err := tenant.DeployCluster(ctx, c, key, plan, opts)
	cj := &ClusterJob{Order: r.OrderID, Engine: engine, Members: len(r.Members), State: r.State, Epoch: r.Epoch,
		OrderToAllRunningMS: r.OrderToAllRunningMS, OutDir: opts.OutDir}
	s.Cluster = cj
	s.ClusterProviders = r.Providers
	for _, m := range r.Members {
		s.Jobs = append(s.Jobs, Job{Name: fmt.Sprintf("train-rank-%d", m.Rank), Pricing: market.ModeAuction, Kind: plan.Kind, Lease: m.Lease,
			Provider: m.Provider.String(), GPU: "1xrtx4090", State: m.State, Outputs: m.Outputs, OrderToRunningMS: r.OrderToAllRunningMS,
			OrderToLeaseMS: r.OrderToPlacedMS})
	}
	if err != nil {
		return fmt.Errorf("cluster job: %w", err)
	}
	for _, m := range r.Members {
		rep, err := train.ReadRankReport(m.OutDir, int(m.Rank))
		if err != nil || m.State != market.MemberDone {
			step("  rank %d: %s, no report: %v", m.Rank, m.State, err)
			continue
		}
		cj.Ranks = append(cj.Ranks, rep)
		s.ClusterMembersRan++
		s.JobsCompleted++
		step("  rank %d of %d (%s) on %s: steps %d to %d, loss %.4f, weights %s…", rep.Rank, rep.WorldSize, rep.Backend, m.Provider,
			rep.Start, rep.Steps, rep.Loss, rep.WeightsSHA256[:min(12, len(rep.WeightsSHA256))])
	}
	if len(r.Members) == 0 {
		return fmt.Errorf("cluster job: no members")
	}
	rep, err := catalog.Registry().Verify(ctx, r.Members[0].OutDir, 3, []byte("kiln-demo"), nil)
	if err != nil {
		return fmt.Errorf("cluster job: verify rank 0's model: %w", err)
	}
	cj.Verdict, cj.UnitsChecked = rep.Verdict, rep.Checked
	s.Jobs[0].Result = fmt.Sprintf("model verified (%s: %d of %d checkpoints re-executed), root %s…", rep.Verdict, rep.Checked, rep.Units, rep.Root[:12])
	step("  kiln work verify on rank 0's model: %s, %d of %d checkpoints re-executed", rep.Verdict, rep.Checked, rep.Units)
	return nil
}

// clusterRun is the cluster demo's tenant: the cluster job, then its leases settled.
func clusterRun(ctx context.Context, c *client.Client, key ed25519.PrivateKey, o Options, home string, s *Summary, step func(string, ...any)) error {
	workDir := filepath.Join(home, "tenant")
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	opts := tenant.Options{CertDir: filepath.Join(home, "certs"), Progress: func(l string) { step("  %s", l) }, LeaseTimeout: 30 * time.Second}
	if err := runCluster(ctx, c, key, o, opts, workDir, s, step); err != nil {
		return err
	}
	if err := settle(ctx, c, s, false); err != nil {
		return err
	}
	// NB: the cluster order's own escrow only funds its members'; what it kept is
	// refunded when it closes.
	acct, err := c.Escrow(ctx, s.Cluster.Order)
	if err != nil {
		return err
	}
	s.Refunded += acct.Refunded
	s.Orders++
	return nil
}
