package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	"github.com/kiln-network/kiln/work/catalog"
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
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig polls every 500 ms: a check is due within verdict_blocks (20) blocks.
func DefaultConfig() Config { return Config{Poll: 500 * time.Millisecond} }

// Stats is what a verifier has done.
type Stats struct {
	Checks   int           `json:"checks"`
	Reported int           `json:"reported"` // fraud reports (verdicts with a failed unit)
	Votes    int           `json:"votes"`
	Units    int           `json:"units"` // units re-executed
	CPU      time.Duration `json:"cpu_ns"`
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
	return &Daemon{cfg: cfg, c: c, key: key, self: types.AddressFromPubKey(key.Public().(ed25519.PublicKey)),
		reg: catalog.Registry(), log: log, done: map[string]bool{}}, nil
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

// fetch gets unit index of c's lease from its provider and checks its Merkle proof
// against the root c committed: a provider cannot serve what it did not commit.
func fetch(ctx context.Context, pc *apiclient.Client, c verify.Commitment, index uint32) (fetched, error) {
	u, err := pc.UnitAt(ctx, c.LeaseID, index)
	if err != nil {
		return fetched{}, err
	}
	if err := checkProof(c, index, u); err != nil {
		return fetched{}, err
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
		dir, err := fetchAssets(ctx, pc, c.LeaseID, job)
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
			u, err := pc.Unit(ctx, c.LeaseID, in)
			if err != nil {
				return nil, "", fmt.Errorf("input %s: %w", in, err)
			}
			if err := checkProof(c, uint32(u.Proof.Index), u); err != nil || u.Unit != in {
				return nil, "", fmt.Errorf("input %s: not what was committed: %v", in, err)
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

// fetchAssets downloads the assets job pins (its scene, dataset, script) from lease's
// provider into a new temporary directory and returns it; each must have the SHA-256
// the job committed on chain pins, or nothing is re-executed. The caller removes the
// directory.
func fetchAssets(ctx context.Context, pc *apiclient.Client, lease uint64, job units.Job) (string, error) {
	dir, err := os.MkdirTemp("", "kiln-verify-assets-")
	if err != nil {
		return "", fmt.Errorf("assets of lease %d: %w", lease, err)
	}
	names := make([]string, 0, len(job.Assets))
	for name := range job.Assets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := fetchAsset(ctx, pc, lease, dir, name, job.Assets[name]); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func fetchAsset(ctx context.Context, pc *apiclient.Client, lease uint64, dir, name, want string) error {
	// NB: a provider seals the top of its output directory only; a pinned asset in a
	// subdirectory cannot be served, and a path must never lead out of dir.
	if err := vault.ValidateName(name); err != nil {
		return fmt.Errorf("asset %q of lease %d: not a file at the top of the job directory, which is all a provider serves", name, lease)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("asset %s of lease %d: %w", name, lease, err)
	}
	fi, err := pc.DownloadAsset(ctx, lease, name, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if fi.SHA256 != want {
		return fmt.Errorf("asset %s of lease %d: the provider served sha256 %s, the committed job pins %s", name, lease, fi.SHA256, want)
	}
	return nil
}

func (d *Daemon) connect(ctx context.Context, provider types.Address) (*apiclient.Client, error) {
	return tenant.ConnectAs(ctx, d.c, d.key, d.cfg.CertDir, provider)
}

// check re-executes c's sampled units and submits the verdict: ok, or the first unit
// that failed with its data and Merkle proof.
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
			return err
		}
		fs = append(fs, f)
	}
	bad, why, err := d.reexecute(ctx, pc, c, fs)
	if err != nil {
		return err
	}
	m := &verify.MsgVerdict{Verifier: d.self, CommitID: c.ID, OK: bad == nil}
	if bad != nil {
		m.Unit = bad.index
		m.Evidence = &verify.Evidence{Name: bad.u.Unit, Data: bad.u.Data, Proof: bad.u.Proof}
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

// vote re-executes a challenged unit and votes.
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
	// NB: a unit the provider cannot serve with a valid proof gets no vote here: the
	// provider may be briefly down, and an honest provider must never be convicted
	// for it.
	f, err := fetch(ctx, pc, c, ch.Unit)
	if err != nil {
		return err
	}
	bad, _, err := d.reexecute(ctx, pc, c, []fetched{f})
	if err != nil {
		return err
	}
	fraud := bad != nil
	if _, err := d.c.Send(ctx, d.key, client.SignOptions{}, &verify.MsgVote{Verifier: d.self, ChallengeID: ch.ID, Fraud: fraud}); err != nil {
		return fmt.Errorf("vote on challenge %d: %w", ch.ID, err)
	}
	d.mu.Lock()
	d.stats.Votes++
	d.mu.Unlock()
	d.log.Info("voted", "challenge", ch.ID, "fraud", fraud)
	return nil
}
