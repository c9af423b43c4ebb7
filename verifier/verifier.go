package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/cputime"
	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/tenant"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/verifier/assetcache"
	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/verify"
)

// Config configures a verifier daemon.
type Config struct {
	// Poll is how often the chain is asked for assigned checks and committees.
	Poll time.Duration
	// CertDir keeps the verifier's client certificate (published on chain), with which
	// it authenticates to providers.
	CertDir string
	// AssetDir keeps the assets re-executions need (scenes, datasets, scripts), by
	// SHA-256, so a job's are downloaded once for all its checks; "" is
	// CertDir/assets.
	AssetDir string
	// AssetCacheBytes bounds AssetDir; the least recently used assets go first.
	AssetCacheBytes int64
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig polls every 500 ms (a check is due within verdict_blocks, 20 blocks)
// and caches up to 4 GiB of assets (a few production scenes and datasets).
func DefaultConfig() Config { return Config{Poll: 500 * time.Millisecond, AssetCacheBytes: 4 << 30} }

// Stats is what a verifier has done.
type Stats struct {
	Checks   int           `json:"checks"`
	Reported int           `json:"reported"` // fraud reports (verdicts with a failed unit)
	Votes    int           `json:"votes"`
	Units    int           `json:"units"` // units re-executed
	CPU      time.Duration `json:"cpu_ns"`
	// Withheld counts reports of what a provider did not serve (MsgUnavailable) and
	// votes saying so.
	Withheld int `json:"withheld"`
	// AssetFetches and AssetHits count pinned assets downloaded and taken from the cache.
	AssetFetches int `json:"asset_fetches"`
	AssetHits    int `json:"asset_hits"`
}

// Daemon is a verifier: it answers the checks the chain assigns it and the committees
// it is drawn on. Create it with New, run it with Run.
type Daemon struct {
	cfg  Config
	c    *client.Client
	key  ed25519.PrivateKey
	self types.Address
	reg  *units.Registry
	log  *slog.Logger
	// assets caches pinned assets by hash; jobs holds the per-check directories that
	// link them (beside the cache, so that links work).
	assets *assetcache.Cache
	jobs   string

	mu    sync.Mutex
	done  map[string]bool // "c/ID" and "v/ID" answered
	stats Stats
}

// New returns a verifier daemon for key, which must be registered as a verifier
// (MsgRegisterVerifier) to be drawn.
func New(cfg Config, c *client.Client, key ed25519.PrivateKey) (*Daemon, error) {
	if c == nil || len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("verifier: client and key must be set")
	}
	if cfg.Poll <= 0 || cfg.CertDir == "" {
		return nil, fmt.Errorf("verifier: poll (%s) must be > 0 and cert dir set", cfg.Poll)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.AssetDir == "" {
		cfg.AssetDir = filepath.Join(cfg.CertDir, "assets")
	}
	ac, err := assetcache.Open(filepath.Join(cfg.AssetDir, "sha256"), cfg.AssetCacheBytes)
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	jobs := filepath.Join(cfg.AssetDir, "jobs")
	// NB: job directories of a run that was killed are of no use to the next.
	os.RemoveAll(jobs)
	if err := os.MkdirAll(jobs, 0o700); err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	return &Daemon{cfg: cfg, c: c, key: key, self: types.AddressFromPubKey(key.Public().(ed25519.PublicKey)),
		reg: catalog.Registry(), log: log, assets: ac, jobs: jobs, done: map[string]bool{}}, nil
}

// Address is the verifier's account.
func (d *Daemon) Address() types.Address { return d.self }

// Stats returns what the verifier has done so far.
func (d *Daemon) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Run works until ctx ends: every poll it answers the checks assigned to it and the
// committees it sits on that it has not answered yet.
func (d *Daemon) Run(ctx context.Context) error {
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	for {
		if err := d.Once(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("verifier round", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once answers what is pending now.
func (d *Daemon) Once(ctx context.Context) error {
	cs, err := d.c.Commitments(ctx, client.CommitmentFilter{Verifier: d.self, State: verify.CommitAssigned})
	if err != nil {
		return fmt.Errorf("assigned checks: %w", err)
	}
	for _, c := range cs {
		key := fmt.Sprintf("c/%d/%d", c.ID, c.AssignedHeight)
		if d.isDone(key) {
			continue
		}
		if err := d.check(ctx, c); err != nil {
			d.log.Warn("check commitment", "commitment", c.ID, "lease", c.LeaseID, "err", err)
			continue
		}
		d.markDone(key)
	}
	chs, err := d.c.VerifyChallenges(ctx, client.ChallengeFilter{Member: d.self, State: verify.ChallengeVoting})
	if err != nil {
		return fmt.Errorf("committees: %w", err)
	}
	for _, ch := range chs {
		key := fmt.Sprintf("v/%d/%d", ch.ID, ch.Round)
		if d.isDone(key) {
			continue
		}
		if err := d.vote(ctx, ch); err != nil {
			d.log.Warn("committee vote", "challenge", ch.ID, "err", err)
			continue
		}
		d.markDone(key)
	}
	return nil
}

func (d *Daemon) isDone(k string) bool { d.mu.Lock(); defer d.mu.Unlock(); return d.done[k] }
func (d *Daemon) markDone(k string)    { d.mu.Lock(); defer d.mu.Unlock(); d.done[k] = true }

// fetched is a unit as served, checked against the committed root.
type fetched struct {
	index uint32
	u     api.UnitProof
}

// notServed is the provider's failure to serve, as committed, what re-executing
// sampled unit unit needs: the unit itself, its committed input input, or the pinned
// asset asset. Unlike other errors, it is the provider's fault: past a grace period
// the verifier reports it (MsgUnavailable) or votes unavailable, never stays silent.
type notServed struct {
	unit         uint32
	input, asset string
	err          error
}

func (e *notServed) Error() string {
	switch {
	case e.input != "":
		return fmt.Sprintf("the provider did not serve input %s of unit %d: %v", e.input, e.unit, e.err)
	case e.asset != "":
		return fmt.Sprintf("the provider did not serve asset %s: %v", e.asset, e.err)
	}
	return fmt.Sprintf("the provider did not serve unit %d: %v", e.unit, e.err)
}

func (e *notServed) Unwrap() error { return e.err }

// fetch gets unit index of c's lease from its provider and checks its Merkle proof
// against the root c committed: a provider cannot serve what it did not commit.
func fetch(ctx context.Context, pc *apiclient.Client, c verify.Commitment, index uint32) (fetched, error) {
	u, err := pc.UnitAt(ctx, c.LeaseID, index)
	if err == nil {
		err = checkProof(c, index, u)
	}
	if err != nil {
		return fetched{}, &notServed{unit: index, err: err}
	}
	return fetched{index, u}, nil
}

func checkProof(c verify.Commitment, index uint32, u api.UnitProof) error {
	var root [32]byte
	b, err := hex.DecodeString(c.Root)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("commitment %d: root %q is not 32 bytes of hex", c.ID, c.Root)
	}
	copy(root[:], b)
	if u.Proof.Index != int64(index) || u.Proof.Total != int64(c.Units) {
		return fmt.Errorf("unit %d of commitment %d: the provider proved index %d of %d", index, c.ID, u.Proof.Index, u.Proof.Total)
	}
	if err := u.Proof.VerifyItem(root, proof.Item{Name: u.Unit, SHA256: sha256.Sum256(u.Data)}); err != nil {
		return fmt.Errorf("unit %d of commitment %d: %w", index, c.ID, err)
	}
	return nil
}

// reexecute checks the fetched units of c's job and returns the first that fails (by
// index), if any.
func (d *Daemon) reexecute(ctx context.Context, pc *apiclient.Client, c verify.Commitment, fs []fetched) (*fetched, string, error) {
	job, err := units.ParseJob([]byte(c.Job))
	if err != nil {
		return nil, "", fmt.Errorf("commitment %d's job: %w", c.ID, err)
	}
	w, err := d.reg.Lookup(job.Kind)
	if err != nil {
		return nil, "", err
	}
	if len(job.Assets) > 0 {
		dir, err := d.fetchAssets(ctx, pc, c.LeaseID, job)
		var ns *notServed
		if errors.As(err, &ns) {
			ns.unit = fs[0].index
		}
		if err != nil {
			return nil, "", err
		}
		defer os.RemoveAll(dir)
		job = job.WithDir(dir)
	}
	claimed, inputs := map[string][]byte{}, map[string][]byte{}
	byID := map[string]*fetched{}
	for i := range fs {
		claimed[fs[i].u.Unit] = fs[i].u.Data
		byID[fs[i].u.Unit] = &fs[i]
		need, err := w.Inputs(job, fs[i].u.Unit)
		if err != nil {
			return nil, "", err
		}
		for _, in := range need {
			if _, ok := inputs[in]; ok {
				continue
			}
			u, err := fetchInput(ctx, pc, c, in)
			if err != nil {
				return nil, "", &notServed{unit: fs[i].index, input: in, err: err}
			}
			inputs[in] = u.Data
		}
	}
	var failed []string
	var why map[string]string
	seed := int64(binary.BigEndian.Uint64(d.key[:8])>>1) ^ int64(c.ID)
	cpu, err := cputime.MeasureThread(func() error {
		var err error
		failed, why, err = Check(ctx, d.reg, job, claimed, inputs, seed)
		return err
	})
	d.mu.Lock()
	d.stats.CPU += cpu
	d.stats.Units += len(claimed)
	d.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	if len(failed) == 0 {
		return nil, "", nil
	}
	first := byID[failed[0]]
	for _, id := range failed {
		if byID[id].index < first.index {
			first = byID[id]
		}
	}
	return first, why[first.u.Unit], nil
}

// fetchInput gets the committed unit named in of c's lease, with a proof that it is.
func fetchInput(ctx context.Context, pc *apiclient.Client, c verify.Commitment, in string) (api.UnitProof, error) {
	u, err := pc.Unit(ctx, c.LeaseID, in)
	if err != nil {
		return u, err
	}
	if u.Unit != in {
		return u, fmt.Errorf("asked for unit %s, served %s", in, u.Unit)
	}
	if err := checkProof(c, uint32(u.Proof.Index), u); err != nil {
		return u, fmt.Errorf("not what was committed: %w", err)
	}
	return u, nil
}

// fetchAssets places the assets job pins (its scene, dataset, script) in a new
// directory and returns it: from the cache when it holds them, downloaded from
// lease's provider otherwise; each must have the SHA-256 the job committed on chain
// pins, or nothing is re-executed (a *notServed names the first that did not). The
// caller removes the directory.
func (d *Daemon) fetchAssets(ctx context.Context, pc *apiclient.Client, lease uint64, job units.Job) (string, error) {
	dir, err := os.MkdirTemp(d.jobs, fmt.Sprintf("lease-%d-", lease))
	if err != nil {
		return "", fmt.Errorf("assets of lease %d: %w", lease, err)
	}
	names := make([]string, 0, len(job.Assets))
	for name := range job.Assets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := d.fetchAsset(ctx, pc, lease, dir, name, job.Assets[name]); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func (d *Daemon) fetchAsset(ctx context.Context, pc *apiclient.Client, lease uint64, dir, name, want string) error {
	// NB: a provider seals the top of its output directory only; a pinned asset in a
	// subdirectory cannot be served, and a path must never lead out of dir.
	if err := vault.ValidateName(name); err != nil {
		return &notServed{asset: name, err: fmt.Errorf("asset %q of lease %d: not a file at the top of the job directory, which is all a provider serves", name, lease)}
	}
	hit, err := d.assets.Place(ctx, want, filepath.Join(dir, name), func(ctx context.Context, w io.Writer) error {
		_, err := pc.DownloadAsset(ctx, lease, name, w)
		return err
	})
	if err != nil {
		// NB: a download that failed, or content that is not the pinned one, is the
		// provider's; a local failure (disk) would fail the next check too, and
		// reporting it only costs a committee's look.
		return &notServed{asset: name, err: fmt.Errorf("asset %s of lease %d (pinned sha256 %s): %w", name, lease, want, err)}
	}
	d.mu.Lock()
	if hit {
		d.stats.AssetHits++
	} else {
		d.stats.AssetFetches++
	}
	d.mu.Unlock()
	return nil
}

func (d *Daemon) connect(ctx context.Context, provider types.Address) (*apiclient.Client, error) {
	return tenant.ConnectAs(ctx, d.c, d.key, d.cfg.CertDir, provider)
}

// check re-executes c's sampled units and submits the verdict: ok, or the first unit
// that failed with its evidence (its data or hash, and its Merkle proof). What the
// provider does not serve is retried every poll for half the time to the deadline,
// then reported withheld.
func (d *Daemon) check(ctx context.Context, c verify.Commitment) error {
	pc, err := d.connect(ctx, c.Provider)
	if err != nil {
		return err
	}
	defer pc.Close()
	var fs []fetched
	for _, i := range c.Samples {
		f, err := fetch(ctx, pc, c, i)
		if err != nil {
			return d.reportWithheld(ctx, c, err)
		}
		fs = append(fs, f)
	}
	bad, why, err := d.reexecute(ctx, pc, c, fs)
	if err != nil {
		return d.reportWithheld(ctx, c, err)
	}
	m := &verify.MsgVerdict{Verifier: d.self, CommitID: c.ID, OK: bad == nil}
	if bad != nil {
		m.Unit = bad.index
		m.Evidence = evidence(c.Kind, bad.u)
	}
	if _, err := d.c.Send(ctx, d.key, client.SignOptions{}, m); err != nil {
		return fmt.Errorf("send verdict on commitment %d: %w", c.ID, err)
	}
	d.mu.Lock()
	d.stats.Checks++
	if bad != nil {
		d.stats.Reported++
	}
	d.mu.Unlock()
	if bad != nil {
		d.log.Info("fraud reported", "commitment", c.ID, "lease", c.LeaseID, "provider", c.Provider, "unit", bad.u.Unit, "why", why)
	} else {
		d.log.Info("work verified", "commitment", c.ID, "lease", c.LeaseID, "units", len(fs))
	}
	return nil
}

// evidence is what a report carries of unit u of a commitment of kind: the unit's data
// where the chain checks the kind itself (matmul) and the data fits a transaction;
// its SHA-256 otherwise, and the committee fetches the unit from the provider. Both
// with the unit's Merkle proof.
func evidence(kind string, u api.UnitProof) *verify.Evidence {
	e := &verify.Evidence{Name: u.Unit, Proof: u.Proof}
	if kind == matmul.Kind && len(u.Data) <= verify.MaxUnitBytes {
		e.Data = u.Data
	} else {
		h := sha256.Sum256(u.Data)
		e.SHA256 = h[:]
	}
	return e
}

// height is the chain's latest height.
func (d *Daemon) height(ctx context.Context) (int64, error) {
	st, err := d.c.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("chain height: %w", err)
	}
	return st.Height, nil
}

// reportWithheld returns err, unless it is the provider's failure to serve and half
// the time to c's deadline has passed: then it reports the item withheld
// (MsgUnavailable) and returns nil, the check answered. An honest provider briefly
// down is retried first; a verifier NEVER stays silent for what it was not served.
func (d *Daemon) reportWithheld(ctx context.Context, c verify.Commitment, err error) error {
	var ns *notServed
	if !errors.As(err, &ns) {
		return err
	}
	h, herr := d.height(ctx)
	if herr != nil {
		return errors.Join(err, herr)
	}
	if at := c.AssignedHeight + (c.Deadline-c.AssignedHeight)/2; h < at {
		return fmt.Errorf("%w (reported withheld at height %d unless served by then)", err, at)
	}
	m := &verify.MsgUnavailable{Verifier: d.self, CommitID: c.ID, Unit: ns.unit, Input: ns.input, Asset: ns.asset}
	if _, serr := d.c.Send(ctx, d.key, client.SignOptions{}, m); serr != nil {
		return fmt.Errorf("report commitment %d's %v: %w", c.ID, err, serr)
	}
	d.mu.Lock()
	d.stats.Withheld++
	d.mu.Unlock()
	d.log.Info("withheld reported", "commitment", c.ID, "lease", c.LeaseID, "provider", c.Provider, "err", err)
	return nil
}

// lastCall reports whether ch's vote is near enough its end that a member the
// provider has not served says so: the last quarter of the window, at least 3 blocks.
func lastCall(h int64, ch verify.Challenge) bool {
	return h >= ch.Deadline-max(3, (ch.Deadline-ch.DrawHeight)/4)
}

// vote re-executes a challenged unit and votes; on an availability challenge it
// fetches the item reported withheld and votes whether it was served. What the
// provider does not serve is retried every poll until the vote's last call, then
// voted unavailable.
func (d *Daemon) vote(ctx context.Context, ch verify.Challenge) error {
	c, err := d.c.Commitment(ctx, ch.CommitID)
	if err != nil {
		return err
	}
	pc, err := d.connect(ctx, c.Provider)
	if err != nil {
		return err
	}
	defer pc.Close()
	m := &verify.MsgVote{Verifier: d.self, ChallengeID: ch.ID}
	if ch.Mode == verify.ModeAvailability {
		err = d.served(ctx, pc, c, ch)
	} else {
		var f fetched
		if f, err = fetch(ctx, pc, c, ch.Unit); err == nil {
			var bad *fetched
			bad, _, err = d.reexecute(ctx, pc, c, []fetched{f})
			m.Fraud = bad != nil
		}
	}
	if err != nil {
		var ns *notServed
		if !errors.As(err, &ns) {
			return err
		}
		h, herr := d.height(ctx)
		if herr != nil {
			return errors.Join(err, herr)
		}
		if !lastCall(h, ch) {
			return fmt.Errorf("%w (voting unavailable near height %d unless served by then)", err, ch.Deadline)
		}
		m.Unavailable = true
	}
	if _, err := d.c.Send(ctx, d.key, client.SignOptions{}, m); err != nil {
		return fmt.Errorf("vote on challenge %d: %w", ch.ID, err)
	}
	d.mu.Lock()
	d.stats.Votes++
	if m.Unavailable {
		d.stats.Withheld++
	}
	d.mu.Unlock()
	d.log.Info("voted", "challenge", ch.ID, "mode", ch.Mode, "fraud", m.Fraud, "unavailable", m.Unavailable)
	return nil
}

// served fetches what availability challenge ch says c's provider withheld: sampled
// unit ch.Unit, then its input ch.Input or the asset ch.Asset. nil: served as
// committed (or the report named an input the unit does not need, which no
// provider owes); a *notServed: not.
func (d *Daemon) served(ctx context.Context, pc *apiclient.Client, c verify.Commitment, ch verify.Challenge) error {
	f, err := fetch(ctx, pc, c, ch.Unit)
	if err != nil {
		return err
	}
	job, err := units.ParseJob([]byte(c.Job))
	if err != nil {
		return fmt.Errorf("commitment %d's job: %w", c.ID, err)
	}
	switch {
	case ch.Input != "":
		w, err := d.reg.Lookup(job.Kind)
		if err != nil {
			return err
		}
		need, err := w.Inputs(job, f.u.Unit)
		if err != nil {
			return err
		}
		if !slices.Contains(need, ch.Input) {
			d.log.Info("withheld report names an input the unit does not need", "challenge", ch.ID, "unit", f.u.Unit, "input", ch.Input)
			return nil
		}
		if _, err := fetchInput(ctx, pc, c, ch.Input); err != nil {
			return &notServed{unit: ch.Unit, input: ch.Input, err: err}
		}
	case ch.Asset != "":
		want, ok := job.Assets[ch.Asset]
		if !ok {
			return nil
		}
		dir, err := os.MkdirTemp(d.jobs, fmt.Sprintf("lease-%d-", c.LeaseID))
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		return d.fetchAsset(ctx, pc, c.LeaseID, dir, ch.Asset, want)
	}
	return nil
}
