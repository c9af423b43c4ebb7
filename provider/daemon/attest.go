package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/attest"
	"github.com/kiln-network/kiln/tee"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// sealIdentityFile is where, under state_dir, the daemon keeps the sealing identity
// its attestations bind: inputs tenants seal to the chain's seal_key open with it.
const sealIdentityFile = "tee/seal.key"

// attestor keeps the provider's attestation on chain: it attests when there is
// none, when it lapsed or binds another sealing key, and when it expires within
// the margin; one attempt at a time, never blocking the daemon's step. Failed
// attempts back off (retry_min doubling to retry_max); after max_attempts in a row it
// gives up until the daemon restarts.
type attestor struct {
	cfg    TEEConfig
	prod   tee.Producer
	id     *age.X25519Identity
	seal   string // id's recipient
	c      *client.Client
	self   types.Address
	send   func(context.Context, ...types.Msg) error
	now    func() time.Time
	log    *slog.Logger
	m      *metrics
	wg     *sync.WaitGroup
	params func(context.Context) (xtee.Params, error)

	mu          sync.Mutex
	rec         xtee.Attestation // the chain's record as of recHeight
	have        bool
	recHeight   int64
	reattest    int64 // the chain's reattest_blocks, as last read
	busy        bool  // an attempt is in flight
	sentAt      int64 // height an attestation was sent and not yet seen recorded; 0: none
	sentCreated int64 // the record's created_height when it was sent
	failures    int   // consecutive failed attempts
	retryAt     time.Time
	gaveUp      bool
}

// newAttestor loads (or creates) the sealing identity under stateDir and checks that
// prod can produce evidence on this machine.
func newAttestor(cfg TEEConfig, prod tee.Producer, stateDir string, d *Daemon) (*attestor, error) {
	capa := prod.Capability()
	if capa.Type == "" {
		return nil, fmt.Errorf("provider config: tee.attest: %s", capa.Message)
	}
	id, err := attest.LoadOrCreateIdentity(filepath.Join(stateDir, sealIdentityFile))
	if err != nil {
		return nil, err
	}
	d.log.Info("confidential compute: attesting", "tee", capa.Type, "evidence", capa.Message, "seal_key", id.Recipient().String())
	return &attestor{cfg: cfg, prod: prod, id: id, seal: id.Recipient().String(), c: d.deps.Client, self: d.self,
		send: d.snd.send, now: d.now, log: d.log, m: d.metrics, wg: &d.wg, params: d.deps.Client.TEEParams}, nil
}

// margin is how many blocks before expiry to attest again: the configured margin, or
// a quarter of reattest_blocks (at least 2), always below reattest_blocks so that a
// fresh attestation is not due at once.
func (a *attestor) margin() int64 {
	m := a.cfg.ReattestMarginBlocks
	if m == 0 {
		m = max(2, a.reattest/4)
	}
	if a.reattest > 1 {
		m = min(m, a.reattest-1)
	}
	return m
}

// step is the attestor's work at height h: read the chain's record, see whether what
// was sent landed, and start an attempt when one is due and its back-off has passed.
func (a *attestor) step(ctx context.Context, h int64) error {
	rec, err := a.c.Attestation(ctx, a.self)
	have := err == nil
	if err != nil && !errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("query attestation: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rec, a.have, a.recHeight = rec, have, h
	active := have && rec.Active(h+1) && rec.SealKey == a.seal
	if active {
		a.m.teeExpires.Set(float64(rec.ExpiresHeight))
		a.m.teeActive.Set(1)
	} else {
		a.m.teeActive.Set(0)
	}
	if !have {
		a.m.teeExpires.Set(0)
	}
	if a.gaveUp || a.busy {
		return nil
	}
	if a.sentAt > 0 {
		switch {
		case have && rec.CreatedHeight > a.sentCreated && rec.SealKey == a.seal:
			a.sentAt, a.failures = 0, 0
			a.m.teeAttested.Inc()
			a.log.Info("attested", "tee", rec.Type, "measurement", rec.Measurement, "height", rec.CreatedHeight, "expires_height", rec.ExpiresHeight)
		case h-a.sentAt >= resendAfter:
			err := fmt.Errorf("attestation sent at height %d not recorded by height %d", a.sentAt, h)
			a.sentAt = 0
			a.failedLocked(err)
		default:
			return nil // NB: in the mempool or the next block
		}
	}
	due := !active || rec.ExpiresHeight-h <= a.margin()
	if !due || a.now().Before(a.retryAt) {
		return nil
	}
	a.busy = true
	a.wg.Add(1)
	go a.attempt(ctx, h, rec.CreatedHeight)
	return nil
}

// attempt produces evidence over the newest nonce and sends it.
func (a *attestor) attempt(ctx context.Context, h, created int64) {
	defer a.wg.Done()
	err := a.try(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.busy = false
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		a.failedLocked(err)
		return
	}
	a.sentAt, a.sentCreated = h, created
}

func (a *attestor) try(ctx context.Context) error {
	p, err := a.params(ctx)
	if err != nil {
		return fmt.Errorf("tee params: %w", err)
	}
	a.mu.Lock()
	a.reattest = p.ReattestBlocks
	a.mu.Unlock()
	var extra tee.Collateral
	if a.cfg.CollateralDir != "" {
		if extra, err = tee.LoadCollateral(a.cfg.CollateralDir); err != nil {
			return fmt.Errorf("tee.collateral_dir: %w", err)
		}
	}
	m, err := attest.Make(ctx, a.c, a.prod, a.self, a.id, extra)
	if err != nil {
		return err
	}
	if err := a.send(ctx, m); err != nil {
		return fmt.Errorf("send attestation (nonce of height %d): %w", m.NonceHeight, err)
	}
	a.log.Info("attestation sent", "nonce_height", m.NonceHeight, "evidence_bytes", len(m.Evidence), "collateral_bytes", len(m.Collateral))
	return nil
}

// failedLocked records a failed attempt and sets when the next may start; a.mu is
// held.
func (a *attestor) failedLocked(err error) {
	a.failures++
	a.m.teeFailures.Inc()
	if a.failures >= a.cfg.MaxAttempts {
		a.gaveUp = true
		a.m.teeGivenUp.Set(1)
		a.log.Error("attestation given up: no TEE orders are taken until the daemon restarts", "attempts", a.failures, "err", err)
		return
	}
	wait := time.Duration(a.cfg.RetryMin)
	for i := 1; i < a.failures && wait < time.Duration(a.cfg.RetryMax); i++ {
		wait *= 2
	}
	wait = min(wait, time.Duration(a.cfg.RetryMax))
	a.retryAt = a.now().Add(wait)
	a.log.Warn("attestation failed; retrying", "attempt", a.failures, "of", a.cfg.MaxAttempts, "retry_in", wait, "err", err)
}

// bidRefusal says why the provider may not bid on TEE order o at height h (the bid
// is checked at h+1): no attestation, a lapsed one, or a measurement o does not
// accept; "" when it may. never is true when no later block will change the answer.
func (a *attestor) bidRefusal(o market.Order, h int64) (why string, never bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.gaveUp:
		return "attestation given up after failed attempts (restart the daemon)", true
	case !a.have:
		return "no attestation on chain yet", false
	case !a.rec.Active(h + 1):
		return fmt.Sprintf("attestation lapsed at height %d; attesting again", a.rec.ExpiresHeight), false
	case a.rec.SealKey != a.seal:
		return "the attestation on chain binds another sealing key; attesting again", false
	case len(o.AllowedMeasurements) > 0 && !slices.Contains(o.AllowedMeasurements, a.rec.Measurement):
		return fmt.Sprintf("measurement %s is not one of the order's %d allowed", a.rec.Measurement, len(o.AllowedMeasurements)), true
	}
	return "", false
}
