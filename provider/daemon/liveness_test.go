package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// challengesOn turns challenges on for these tests: small matrices (n <= 128, a few
// ms to solve) and 15 blocks (3 s) to answer and to reveal, which a loaded 2-core
// machine meets; a running lease is challenged every 4 blocks on average.
func challengesOn(hwAtRegistration bool) func(*app.GenesisState) {
	return func(g *app.GenesisState) {
		p := liveness.DefaultParams()
		p.LeaseChallengeBlocks, p.HardwareAtRegistration, p.HardwareRecheckBlocks = 4, hwAtRegistration, 0
		p.DeadlineBlocks, p.RevealBlocks, p.MaxN = 15, 15, 128
		g.Params.Liveness = p
	}
}

// deployService deploys a one-GPU service that runs for a minute and returns its lease.
func deployService(t *testing.T, ctx context.Context, n *testNet) tenant.Result {
	t.Helper()
	g := market.Group{Name: "web", Count: 1, CPUMilli: 500, MemoryBytes: 64 << 20, StorageBytes: 64 << 20,
		GPU: market.GPURequest{Units: 1, Models: []market.GPUFilter{{Model: "h100"}}}}
	plan := tenant.Plan{Name: "web", Kind: market.KindService, Groups: []market.Group{g}, MaxPrice: 5000,
		Deposit: types.NewCoin(types.NativeDenom, 5000*600),
		Manifest: api.Manifest{Services: []api.Service{{Name: "web", Command: []string{"sleep", "60"}, Count: 1,
			Resources: api.ServiceResources{Unit: 1, CPUMilli: 500, MemoryBytes: 64 << 20, StorageBytes: 64 << 20, GPUUnits: 1}}}}}
	r, err := tenant.Deploy(ctx, n.c, n.tenantKey, plan, tenant.Options{CertDir: t.TempDir(), Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The daemon answers its registration's hardware challenge and its lease's liveness
// challenges: its h100 score records passes, nothing is slashed, the lease runs on.
func TestDaemonAnswersChallenges(t *testing.T) {
	n := startNetWith(t, challengesOn(true))
	// 90 s: registration, a hardware challenge, a lease and two liveness challenges
	// (about 8 blocks apart at 200 ms), on a loaded machine.
	deadline := time.Now().Add(90 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	n.startDaemon(t, filepath.Join(t.TempDir(), "p"))
	bond := bonded(t, ctx, n)

	poll.WaitFor(t, time.Until(deadline), func() error {
		sc, err := n.c.Scores(ctx, n.prov)
		if err != nil {
			return err
		}
		if len(sc) != 1 || sc[0].Model != "h100" || sc[0].Passed < 1 || sc[0].Flagged {
			return fmt.Errorf("scores %+v: want the h100's hardware challenge passed", sc)
		}
		return nil
	})
	r := deployService(t, ctx, n)
	poll.WaitFor(t, time.Until(deadline), func() error {
		cs, err := n.c.Challenges(ctx, n.prov, liveness.StatePassed)
		if err != nil {
			return err
		}
		leaseChecks := 0
		for _, c := range cs {
			if c.Kind == liveness.KindLiveness && c.Lease == r.OrderID {
				leaseChecks++
			}
		}
		if leaseChecks < 2 {
			return fmt.Errorf("%d liveness challenges of lease %d passed, want 2", leaseChecks, r.OrderID)
		}
		return nil
	})
	l, err := n.c.Lease(ctx, r.OrderID)
	if err != nil || l.State != market.LeaseActive {
		t.Fatalf("lease after its challenges: %+v, %v", l, err)
	}
	if got := bonded(t, ctx, n); got != bond {
		t.Fatalf("bond %d -> %d: an honest provider was slashed", bond, got)
	}
	failed, _ := n.c.Challenges(ctx, n.prov, liveness.StateFailed)
	if len(failed) != 0 {
		t.Fatalf("failed challenges: %+v", failed)
	}
}

// A daemon that does not answer (its prover fails) still heartbeats, but its lease's
// first liveness challenge goes unanswered: the chain slashes its bond and closes the
// lease with liveness_failed.
func TestSilentDaemonSlashed(t *testing.T) {
	n := startNetWith(t, challengesOn(false))
	// 60 s: a lease, a challenge within 8 blocks and its 15-block deadline.
	deadline := time.Now().Add(60 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	silent := func(context.Context, int, uint64) (*matmul.Solution, error) {
		return nil, errors.New("this prover never answers")
	}
	n.startDaemonDeps(t, testConfig(filepath.Join(t.TempDir(), "p")), daemon.Deps{Prover: silent})
	bond := bonded(t, ctx, n)
	r := deployService(t, ctx, n)
	var l market.Lease
	poll.WaitFor(t, time.Until(deadline), func() error {
		var err error
		if l, err = n.c.Lease(ctx, r.OrderID); err != nil {
			return err
		}
		if l.State == market.LeaseActive {
			return fmt.Errorf("lease %d still active", r.OrderID)
		}
		return nil
	})
	if l.CloseReason != liveness.ReasonLivenessFailed {
		t.Fatalf("lease closed with %q, want %s", l.CloseReason, liveness.ReasonLivenessFailed)
	}
	want := bond - bond*100/10_000 // slash_bps 100
	if got := bonded(t, ctx, n); got != want {
		t.Fatalf("bond %d -> %d, want %d after one missed challenge", bond, got, want)
	}
	cs, err := n.c.Challenges(ctx, n.prov, liveness.StateFailed)
	if err != nil || len(cs) != 1 || cs[0].Failure != liveness.FailMissed || cs[0].Lease != r.OrderID {
		t.Fatalf("failed challenges = %+v, %v", cs, err)
	}
	acct, err := n.c.Escrow(ctx, r.OrderID)
	if err != nil || acct.Refunded == 0 {
		t.Fatalf("escrow after the failure = %+v, %v: want the unused deposit refunded", acct, err)
	}
}

func bonded(t *testing.T, ctx context.Context, n *testNet) uint64 {
	t.Helper()
	var p registry.Provider
	if err := n.c.QueryJSON(ctx, client.PathProvider(n.prov), &p); err != nil {
		t.Fatal(err)
	}
	return p.Stake
}
