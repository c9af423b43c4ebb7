package demo

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/verifier"
	"github.com/kiln-network/kiln/work/cheat"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/verify"
)

// verifierStake is what the demo's verifier bonds: twice verify's default minimum.
const verifierStake = 2 * 10_000_000

// startVerifier registers key as a verifier and runs a verifier daemon for it, keeping
// its files under dir, until ctx ends.
func startVerifier(ctx context.Context, c *client.Client, key ed25519.PrivateKey, dir string, log *slog.Logger) (*verifier.Daemon, error) {
	self := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	if _, err := c.Send(ctx, key, client.SignOptions{}, &verify.MsgRegisterVerifier{Verifier: self,
		Stake: types.NewCoin(types.NativeDenom, verifierStake)}); err != nil {
		return nil, fmt.Errorf("register the verifier: %w", err)
	}
	cfg := verifier.DefaultConfig()
	cfg.CertDir = filepath.Join(dir, "certs")
	cfg.Logger = log.With("verifier", self.String())
	vd, err := verifier.New(cfg, c, key)
	if err != nil {
		return nil, err
	}
	go vd.Run(ctx)
	return vd, nil
}

// providerStakes returns every registered provider's bonded stake.
func providerStakes(ctx context.Context, c *client.Client) (map[types.Address]uint64, error) {
	var out struct {
		Providers []registry.Provider `json:"providers"`
	}
	if err := c.QueryJSON(ctx, client.PathProviders, &out); err != nil {
		return nil, fmt.Errorf("providers: %w", err)
	}
	m := map[types.Address]uint64{}
	for _, p := range out.Providers {
		m[p.Owner] = p.Stake
	}
	return m, nil
}

// fakeUnits is the demo cheater's BeforeSeal: it fakes every fourth unit of a job that
// wrote units, from the second (cheat.Dir: a matmul block zeroed, a render tile
// upscaled from half the resolution, a training segment that skipped half its steps),
// in a copy of the outputs under dir, and rewrites units.json to match, so the root it
// commits is over its fakes: only re-execution can tell.
func fakeUnits(dir string) func(uint64, fs.ReadDirFS) (fs.ReadDirFS, error) {
	cheats := map[string]string{matmul.Kind: string(matmul.CheatZeros), render.Kind: string(render.CheatUpscaled), train.Kind: string(train.CheatSkippedSteps)}
	return func(lease uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error) {
		if _, err := fs.Stat(outs, units.FileName); err != nil {
			return outs, nil // not a verifiable job
		}
		d := filepath.Join(dir, fmt.Sprintf("lease-%d", lease))
		if err := os.CopyFS(d, outs); err != nil {
			return nil, fmt.Errorf("cheater: copy lease %d's outputs: %w", lease, err)
		}
		n, err := cheat.Dir(context.Background(), d, func(job units.Job, i int, _ string) string {
			if i%4 != 1 {
				return ""
			}
			return cheats[job.Kind]
		})
		if err != nil || n == 0 {
			return outs, err
		}
		return os.DirFS(d).(fs.ReadDirFS), nil
	}
}

// verification waits until every work commitment of the demo's jobs is decided (the
// verifier answered; a fraud report was checked on chain) and fills the summary's
// verification figures.
func verification(ctx context.Context, c *client.Client, vds []*verifier.Daemon, s *Summary, stakes0 map[types.Address]uint64,
	jobCPU time.Duration, step func(string, ...any)) error {
	leases := map[uint64]bool{}
	for _, j := range s.Jobs {
		leases[j.Lease] = true
	}
	// 60 s: sampling is one block after the commitment and the verifier polls every
	// 500 ms; a verdict is due within verdict_blocks (20 blocks, 4 s here).
	deadline := time.Now().Add(60 * time.Second)
	var mine []verify.Commitment
	for {
		all, err := c.Commitments(ctx, client.CommitmentFilter{})
		if err != nil {
			return fmt.Errorf("commitments: %w", err)
		}
		mine = mine[:0]
		pending := 0
		for _, cm := range all {
			if !leases[cm.LeaseID] {
				continue
			}
			mine = append(mine, cm)
			switch cm.State {
			case verify.CommitPending, verify.CommitAssigned, verify.CommitDisputed:
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	v := &s.Verification
	v.Commitments = len(mine)
	caught := map[types.Address]bool{}
	for _, cm := range mine {
		switch cm.State {
		case verify.CommitVerified:
			v.Verified++
			step("  lease %d (%s, %d units): %d sampled units re-executed, verified", cm.LeaseID, cm.Kind, cm.Units, len(cm.Samples))
		case verify.CommitFraud:
			v.Fraud++
			caught[cm.Provider] = true
			for _, id := range cm.Challenges {
				var ch verify.Challenge
				if err := c.QueryJSON(ctx, fmt.Sprintf("/verify/challenge/%d", id), &ch); err != nil {
					return err
				}
				if ch.State != verify.ChallengeFraud {
					continue
				}
				v.Slashed += ch.Slashed
				v.ReporterReward += ch.Reward
				v.TenantRefunded += ch.Refunded
				step("  lease %d (%s): unit %s faked — FRAUD proven on chain (%s): provider %s slashed %d, reporter paid %d, tenant refunded %d, lease closed %s",
					cm.LeaseID, cm.Kind, ch.UnitName, ch.Mode, cm.Provider, ch.Slashed, ch.Reward, ch.Refunded, verify.ReasonFraud)
			}
		default:
			step("  lease %d (%s): commitment %s", cm.LeaseID, cm.Kind, cm.State)
		}
	}
	s.CheatersCaught = len(caught)
	stakes1, err := providerStakes(ctx, c)
	if err != nil {
		return err
	}
	for p, before := range stakes0 {
		if !caught[p] && stakes1[p] < before {
			s.HonestSlashed++
		}
	}
	var cpu time.Duration
	for _, vd := range vds {
		st := vd.Stats()
		v.UnitsChecked += st.Units
		cpu += st.CPU
	}
	v.VerifierCPUs, v.JobCPUs = cpu.Seconds(), jobCPU.Seconds()
	if jobCPU > 0 {
		s.VerificationOverhead = cpu.Seconds() / jobCPU.Seconds()
	}
	step("verification: %d commitments, %d verified, %d fraud; cheaters caught %d, honest providers slashed %d; verifier CPU %.3f s over job CPU %.2f s (%.2f%%)",
		v.Commitments, v.Verified, v.Fraud, s.CheatersCaught, s.HonestSlashed, v.VerifierCPUs, v.JobCPUs, 100*s.VerificationOverhead)
	return nil
}
