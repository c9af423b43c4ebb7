package verifier_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/x/verify"
)

// A provider that stops serving what it committed is convicted on a live network,
// and no verifier pays for its silence: its render job committed while it was up is
// verified; it goes away after committing a second; the verifier assigned to the
// second cannot fetch the sampled tiles, reports them withheld half-way to its
// deadline, and a committee of the other verifiers, served nothing within
// serve_blocks, votes them unavailable: the provider is slashed and the reporter
// paid. The tenant then disputes a tile of the first job: the committee cannot fetch
// it either and convicts again. Every verifier keeps its whole stake.
func TestVerifiersConvictWithheldWork(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a live network with a provider that goes away")
	}
	logs := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.buf.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, nil))
	tenantKey, tenantAddr := newKey(t)
	provKey, prov := newKey(t)
	accounts := []types.Address{tenantAddr, prov}
	var vkeys []ed25519.PrivateKey
	for range 4 {
		k, a := newKey(t)
		vkeys, accounts = append(vkeys, k), append(accounts, a)
	}
	// NB: samples drawn 10 blocks (2 s) after a commitment, time to stop the provider
	// before its verifier is assigned; 20 blocks (4 s) to answer, serve or vote.
	c := startChain(t, accounts, func(p *verify.Params) {
		p.SampleDelayBlocks, p.VerdictBlocks, p.VoteBlocks, p.ServeBlocks = 10, 20, 20, 20
	})
	// 2 minutes: two deployments, a check, and three rounds of 20 blocks at 200 ms.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stopProvider := startProvider(t, c, provKey, "h100", log.With("provider", "p"), nil)
	vds := startVerifiers(t, ctx, c, vkeys, log)
	stakes := func() map[types.Address]uint64 {
		m := map[types.Address]uint64{}
		for _, a := range accounts[2:] {
			v, _, err := c.Verifier(ctx, a)
			if err != nil {
				t.Fatal(err)
			}
			m[a] = v.Stake
		}
		return m
	}
	before := stakes()
	rp := render.Params{Renderer: render.RendererGo, Width: 32, Height: 32, FrameStart: 1, FrameEnd: 1, Tiles: 2, Samples: 4, Seed: 3}
	certDir := t.TempDir()
	commitmentOf := func(lease uint64) (verify.Commitment, error) {
		cs, err := c.Commitments(ctx, client.CommitmentFilter{Lease: lease})
		if err != nil || len(cs) != 1 {
			return verify.Commitment{}, fmt.Errorf("commitments of lease %d: %+v, %v", lease, cs, err)
		}
		return cs[0], nil
	}

	// 1. Committed and verified while the provider serves.
	r1, err := tenant.Deploy(ctx, c, tenantKey, plan(t, "first", "h100", testJob{Kind: render.Kind, Render: rp, Pause: time.Second}, nil),
		tenant.Options{CertDir: certDir, OutDir: filepath.Join(t.TempDir(), "first")})
	if err != nil || r1.State != api.StateCompleted {
		t.Fatalf("deploy first: %+v, %v", r1, err)
	}
	var first verify.Commitment
	poll.WaitFor(t, time.Until(deadline(ctx)), func() error {
		if first, err = commitmentOf(r1.OrderID); err != nil || first.State != verify.CommitVerified {
			return fmt.Errorf("first commitment %+v, %v: want verified", first, err)
		}
		return nil
	})

	// 2. Committed, then the provider goes away before its verifier is assigned.
	r2, err := tenant.Deploy(ctx, c, tenantKey, plan(t, "second", "h100", testJob{Kind: render.Kind, Render: rp, Pause: time.Second}, nil),
		tenant.Options{CertDir: certDir, NoWait: true})
	if err != nil {
		t.Fatalf("deploy second: %v", err)
	}
	var second verify.Commitment
	poll.WaitFor(t, time.Until(deadline(ctx)), func() error {
		second, err = commitmentOf(r2.OrderID)
		return err
	})
	stopProvider()
	if second.State != verify.CommitPending {
		t.Fatalf("second commitment %+v: assigned before the provider stopped (machine too slow for 10 blocks?)", second)
	}
	verdictOf := func(cm verify.Commitment, mode string) verify.Challenge {
		t.Helper()
		var ch verify.Challenge
		poll.WaitFor(t, time.Until(deadline(ctx)), func() error {
			cm, err := c.Commitment(ctx, cm.ID)
			if err != nil || len(cm.Challenges) == 0 {
				return fmt.Errorf("commitment %+v, %v: no challenge yet", cm, err)
			}
			if ch, err = c.VerifyChallenge(ctx, cm.Challenges[len(cm.Challenges)-1]); err != nil || ch.ClosedHeight == 0 {
				return fmt.Errorf("challenge %+v, %v: undecided", ch, err)
			}
			return nil
		})
		unavailable := 0
		for _, v := range ch.Votes {
			unavailable += map[bool]int{true: 1}[v.Unavailable]
		}
		if ch.State != verify.ChallengeFraud || ch.Mode != mode || unavailable < 2 || ch.Slashed == 0 {
			t.Fatalf("challenge %+v: want %s fraud, convicted by unavailable votes, with a slash", ch, mode)
		}
		t.Logf("%s challenge on commitment %d: %d of %d members not served; provider slashed %d, reporter paid %d, tenant refunded %d",
			mode, cm.ID, unavailable, len(ch.Votes), ch.Slashed, ch.Reward, ch.Refunded)
		return ch
	}
	ch := verdictOf(second, verify.ModeAvailability)
	if second, _ = c.Commitment(ctx, second.ID); second.State != verify.CommitFraud || ch.Challenger != *second.Verifier || ch.Reward == 0 {
		t.Fatalf("second commitment %+v after challenge %+v: want fraud, reported by its assigned verifier and rewarded", second, ch)
	}

	// 3. The tenant disputes a tile of the first job: not served to the committee.
	if _, err := c.Send(ctx, tenantKey, client.SignOptions{}, &verify.MsgDispute{Tenant: tenantAddr, CommitID: first.ID, Unit: 0}); err != nil {
		t.Fatalf("dispute: %v", err)
	}
	ch = verdictOf(first, verify.ModeCommittee)
	if !ch.ByTenant || ch.Refunded == 0 {
		t.Fatalf("dispute %+v: want the tenant refunded", ch)
	}

	after := stakes()
	for a, s := range before {
		if after[a] != s {
			t.Errorf("verifier %s's stake %d, was %d: it paid for what the provider withheld", a, after[a], s)
		}
	}
	var withheld int
	for _, vd := range vds {
		withheld += vd.Stats().Withheld
	}
	if withheld < 5 { // the report, and at least two unavailable votes in each committee
		t.Errorf("verifiers counted %d reports and votes of withheld work, want at least 5", withheld)
	}
}
