// Package lease runs leases' manifests as executor tasks, feeds them their decrypted inputs, seals their outputs and erases everything when a lease ends.
//
// Manager implements api.Runner. Each lease has a small JSON state file in
// Config.Dir so that Recover, after a daemon restart, re-attaches to the
// tasks the executor still runs, seals batch leases that finished meanwhile
// and reports completions not yet reported.
package lease

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/kiln-network/kiln/proof"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/imageref"
	"github.com/kiln-network/kiln/provider/vault"
)

// CompleteFunc is told once per batch lease that all its tasks exited and
// its outputs are sealed: the Merkle root of the outputs (proof.ItemsRoot)
// and each task's exit code (-1 when killed or unknown). The daemon sends
// MsgCompleteLease from it. It must not call Stop of the same lease.
type CompleteFunc func(leaseID uint64, outputsRoot [32]byte, exitCodes map[string]int)

// Config configures a Manager.
type Config struct {
	// Dir holds one state file per lease. Required.
	Dir string
	// StopGrace is how long a stopped task has between SIGTERM and SIGKILL.
	StopGrace time.Duration
	// MaxOutputBytes caps each output file; 0 means no cap.
	MaxOutputBytes int64
	// AssignGPUs returns the GPU UUIDs for one task asking units GPUs; nil
	// refuses manifests that ask for GPUs.
	AssignGPUs func(leaseID uint64, taskID string, units uint32) ([]string, error)
	// Images is which images a manifest may name: its lease's uploads, and
	// images pinned by digest from the registries it allows. The zero Policy
	// allows uploads only.
	Images imageref.Policy
	// OnComplete is called when a batch lease completes; nil ignores it.
	OnComplete CompleteFunc
	// BeforeSeal, if set, is given a finished batch lease's outputs (the executor's)
	// just before they are sealed, and returns the outputs to seal instead. Kiln's
	// demo sets it to play a provider that fakes part of its work (`kiln demo
	// --cheaters`), so that verification has a real cheat to catch; a real daemon
	// leaves it nil.
	BeforeSeal func(leaseID uint64, outs fs.ReadDirFS) (fs.ReadDirFS, error)
	// OnStart is called when a lease's workload has started, before Deploy
	// returns and before OnComplete can be called for it; nil ignores it.
	OnStart func(leaseID uint64)
	// Hold is asked when every task of a batch lease has exited and one failed:
	// true keeps the lease as it is, its outputs neither sealed nor cleared and
	// nothing reported, until Restart starts its tasks again or Finish seals and
	// reports it. A cluster member whose rank failed because another member was
	// lost is held so that the job can restart from its checkpoints. nil holds
	// nothing.
	Hold func(leaseID uint64) bool
	// Unseal opens inputs named NAME.sealed (api.SealedInputSuffix): inputs a tenant
	// sealed to the key this provider's TEE attestation binds (kiln tee seal). The
	// workload reads them as NAME, in plaintext inside the attested environment. nil
	// (a provider that does not attest): such an input fails the deploy, named.
	Unseal age.Identity
	// Clock stamps state changes; nil means time.Now.
	Clock func() time.Time
	// Logger receives the manager's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a config with StopGrace set.
func DefaultConfig() Config {
	// 10 s: Docker's default stop timeout; long enough to flush a checkpoint.
	return Config{StopGrace: 10 * time.Second}
}

// Validate checks the config.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("lease manager: dir: must be set")
	}
	if c.StopGrace < 0 || c.MaxOutputBytes < 0 {
		return fmt.Errorf("lease manager: stop grace and max output bytes must be >= 0 (got %s, %d)", c.StopGrace, c.MaxOutputBytes)
	}
	return nil
}

// ExecLeaseID is the executor's id of a lease: its decimal id.
func ExecLeaseID(id uint64) string { return strconv.FormatUint(id, 10) }

// Manager runs leases. It is safe for concurrent use. Create it with New;
// call Recover once before the first Deploy.
type Manager struct {
	cfg Config
	ex  executor.Executor
	v   *vault.Vault
	log *slog.Logger
	now func() time.Time

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	leases map[uint64]*run
	// images are the IDs of the images loaded for each lease, deployed or
	// not; an image is removed when no lease holding it is left.
	images map[uint64][]string
}

var _ api.Runner = (*Manager)(nil)

// run is one deployed lease.
type run struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the watcher returns

	mu sync.Mutex // guards st
	st state
}

// state is what a lease's state file holds.
type state struct {
	Lease    api.LeaseInfo `json:"lease"`
	Manifest api.Manifest  `json:"manifest"`
	State    string        `json:"state"`
	Error    string        `json:"error,omitempty"`
	Tasks    []taskState   `json:"tasks"`
	// ServiceAddr is where the ingress reaches the lease's service
	// (executor.Handle.Endpoints).
	ServiceAddr string `json:"service_addr,omitempty"`
	// Images are the images loaded for the lease (LoadImage), removed when it stops.
	Images      []string       `json:"images,omitempty"`
	DeployedAt  time.Time      `json:"deployed_at"`
	Outputs     []api.FileInfo `json:"outputs,omitempty"`
	OutputsRoot string         `json:"outputs_root,omitempty"`
	// Skipped and SkippedTotal are what sealing left out (api.LeaseStatus).
	Skipped      []api.SkippedOutput `json:"skipped,omitempty"`
	SkippedTotal int                 `json:"skipped_total,omitempty"`
	// Reported is true once OnComplete returned.
	Reported bool `json:"reported,omitempty"`
	// Net, for a cluster member, is how its tasks run (DeployIn, Restart).
	Net *Net `json:"net,omitempty"`
	// Held is true for a failed batch lease that Config.Hold kept: not sealed,
	// not reported, until Restart or Finish.
	Held bool `json:"held,omitempty"`
}

// Net is how a cluster member's tasks run: in the lease's network namespace,
// where its overlay link is, with the rendezvous environment.
type Net struct {
	// NetNS is the lease's network namespace (executor.Namespacer.LeaseNetNS).
	NetNS string `json:"netns"`
	// Env is added to every task's environment (rendezvous.Env).
	Env []string `json:"env,omitempty"`
	// Files are put among the lease's inputs before its tasks start, name to
	// content (the MPI hostfile).
	Files map[string]string `json:"files,omitempty"`
	// Epoch numbers the starts of the lease's tasks: the tasks of epoch N > 0
	// are named with a -eN suffix, so that a restart's tasks never take the
	// names of those they replace.
	Epoch uint32 `json:"epoch"`
}

// taskID names replica i of service svc of lease eid in epoch.
func taskID(eid, svc string, i int, epoch uint32) string {
	id := executor.TaskID(eid, svc, i)
	if epoch > 0 {
		id += "-e" + strconv.FormatUint(uint64(epoch), 10)
	}
	return id
}

type taskState struct {
	ID        string         `json:"id"`
	Service   string         `json:"service"`
	Replica   int            `json:"replica"`
	Endpoints map[int]string `json:"endpoints,omitempty"`
	StartedAt time.Time      `json:"started_at"`
	Exit      *exitState     `json:"exit,omitempty"`
}

type exitState struct {
	Code       int       `json:"code"`
	Err        string    `json:"err,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
}

// New returns a manager running tasks on ex with files in v.
func New(cfg Config, ex executor.Executor, v *vault.Vault) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ex == nil || v == nil {
		return nil, errors.New("lease manager: executor and vault must be set")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lease manager: create %s: %w", cfg.Dir, err)
	}
	m := &Manager{cfg: cfg, ex: ex, v: v, log: cfg.Logger, now: cfg.Clock, leases: map[uint64]*run{}, images: map[uint64][]string{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.log = m.log.With("component", "lease")
	if m.now == nil {
		m.now = time.Now
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Executor returns the executor the manager runs tasks on.
func (m *Manager) Executor() executor.Executor { return m.ex }

// Close stops watching tasks, which keep running for Recover to find.
func (m *Manager) Close() {
	m.cancel()
	m.mu.Lock()
	runs := make([]*run, 0, len(m.leases))
	for _, r := range m.leases {
		runs = append(runs, r)
	}
	m.mu.Unlock()
	for _, r := range runs {
		<-r.done
	}
}

func (m *Manager) stateFile(id uint64) string {
	return filepath.Join(m.cfg.Dir, strconv.FormatUint(id, 10)+".json")
}

func (m *Manager) save(st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := m.stateFile(st.Lease.ID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save state of lease %d: %w", st.Lease.ID, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("save state of lease %d: %w", st.Lease.ID, err)
	}
	return nil
}

// Deploy starts m's services for lease: one task per replica, named
// lease-service-replica, after decrypting the lease's inputs into the
// executor (executor.Data.PutInput). Batch tasks are watched until they all exit; then outputs are sealed
// and OnComplete called. A failed start destroys what it started and leaves
// the lease deployable again.
func (m *Manager) Deploy(ctx context.Context, lease api.LeaseInfo, man api.Manifest) error {
	return m.deploy(ctx, lease, man, nil)
}

// DeployIn deploys a cluster member's lease as Deploy does, its tasks in
// net.NetNS with net.Env added and net.Files among its inputs.
func (m *Manager) DeployIn(ctx context.Context, lease api.LeaseInfo, man api.Manifest, net Net) error {
	if net.NetNS == "" {
		return fmt.Errorf("deploy lease %d: no network namespace given", lease.ID)
	}
	if _, ok := m.ex.(executor.Namespacer); !ok {
		return fmt.Errorf("deploy lease %d: %w: the %T executor cannot run tasks in a network namespace of the lease", lease.ID, executor.ErrUnsupported, m.ex)
	}
	return m.deploy(ctx, lease, man, &net)
}

func (m *Manager) deploy(ctx context.Context, lease api.LeaseInfo, man api.Manifest, net *Net) error {
	if err := api.CheckManifest(man, lease.Resources); err != nil {
		return fmt.Errorf("deploy lease %d: %w", lease.ID, err)
	}
	r := &run{done: make(chan struct{}), st: state{Lease: lease, Manifest: man, State: api.StateRunning, DeployedAt: m.now(), Net: net}}
	m.mu.Lock()
	if _, ok := m.leases[lease.ID]; ok {
		m.mu.Unlock()
		return fmt.Errorf("deploy lease %d: %w", lease.ID, api.ErrAlreadyDeployed)
	}
	r.st.Images = append([]string(nil), m.images[lease.ID]...)
	if _, ok := m.ex.(executor.ImageLoader); !ok {
		for _, s := range man.Services {
			if s.Image != "" {
				m.mu.Unlock()
				return fmt.Errorf("deploy lease %d: service %s names image %q: %w: this provider's executor runs host commands, not container images", lease.ID, s.Name, s.Image, api.ErrImagesUnsupported)
			}
		}
	}
	if err := m.checkImages(man, r.st.Images); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("deploy lease %d: %w", lease.ID, err)
	}
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		return fmt.Errorf("deploy lease %d: manager closed", lease.ID)
	}
	m.leases[lease.ID] = r
	m.mu.Unlock()

	if err := m.start(ctx, r); err != nil {
		m.mu.Lock()
		delete(m.leases, lease.ID)
		m.mu.Unlock()
		return fmt.Errorf("%w: %w", api.ErrStartFailed, err)
	}
	if m.cfg.OnStart != nil {
		m.cfg.OnStart(lease.ID)
	}
	m.watch(r)
	m.log.Info("lease deployed", "lease", lease.ID, "kind", lease.Kind, "tasks", len(r.st.Tasks))
	return nil
}

// checkImages refuses a manifest naming an image the lease may not run
// (Config.Images): a tag anyone can re-point, a registry the provider does
// not allow, or the ID of an image another lease or the operator put on the
// same Docker host. A service without an image runs a host command (the
// process executor) and is not checked here.
func (m *Manager) checkImages(man api.Manifest, loaded []string) error {
	for _, s := range man.Services {
		if s.Image == "" {
			continue
		}
		if err := m.cfg.Images.Check(s.Image, loaded); err != nil {
			return fmt.Errorf("manifest: service %q: %w", s.Name, apiError{api.ErrImageNotAllowed, err})
		}
	}
	return nil
}

// apiError is err, matching an api sentinel too. It reads as err alone: the
// sentinel's words are already in err's (executor.ErrImageDigest and
// api.ErrImageDigest say the same), and a tenant should read them once.
type apiError struct{ api, err error }

func (e apiError) Error() string   { return e.err.Error() }
func (e apiError) Unwrap() []error { return []error{e.api, e.err} }

// LoadImage loads a tenant's image archive through the executor, if it is an
// executor.ImageLoader, for a lease not yet deployed, and records that the
// image belongs to the lease: its manifest may then name it by ID, and Stop
// removes it (executor.ImageRemover) once no other lease holds it. Images
// loaded before a daemon restart for a lease not yet deployed are forgotten
// (the next upload records them again); they stay on the host as untagged
// images until `docker image prune`.
func (m *Manager) LoadImage(ctx context.Context, id uint64, r io.Reader, maxBytes int64, wantID string) (string, error) {
	il, ok := m.ex.(executor.ImageLoader)
	if !ok {
		return "", fmt.Errorf("load image for lease %d: %w: the %T executor runs host programs", id, api.ErrImagesUnsupported, m.ex)
	}
	if _, err := m.get(id); err == nil {
		return "", fmt.Errorf("load image for lease %d: %w", id, api.ErrAlreadyDeployed)
	}
	img, err := il.LoadImage(ctx, r, maxBytes, wantID)
	if err != nil {
		for _, e := range []struct{ ex, api error }{
			{executor.ErrImageTooLarge, api.ErrImageTooLarge},
			{executor.ErrImageDigest, api.ErrImageDigest},
			{executor.ErrImageArchive, api.ErrBadImage},
		} {
			if errors.Is(err, e.ex) {
				return "", fmt.Errorf("load image for lease %d: %w", id, apiError{e.api, err})
			}
		}
		return "", fmt.Errorf("load image for lease %d: %w", id, err)
	}
	m.mu.Lock()
	if !slices.Contains(m.images[id], img) {
		m.images[id] = append(m.images[id], img)
	}
	m.mu.Unlock()
	m.log.Info("image loaded", "lease", id, "image", img)
	return img, nil
}

// releaseImages forgets lease id's images and removes those no other lease
// holds, if the executor can.
func (m *Manager) releaseImages(ctx context.Context, id uint64) {
	m.mu.Lock()
	imgs := m.images[id]
	delete(m.images, id)
	var free []string
	for _, img := range imgs {
		held := false
		for _, other := range m.images {
			held = held || slices.Contains(other, img)
		}
		if !held {
			free = append(free, img)
		}
	}
	m.mu.Unlock()
	rm, ok := m.ex.(executor.ImageRemover)
	if !ok {
		return
	}
	for _, img := range free {
		// NB: an image that cannot be removed must not keep the lease's data
		// from being erased; it is logged and left for `docker image prune`.
		if err := rm.RemoveImage(ctx, img); err != nil {
			m.log.Error("remove image of stopped lease", "lease", id, "image", img, "err", err)
		}
	}
}

func (m *Manager) start(ctx context.Context, r *run) (err error) {
	lease, eid := r.st.Lease, ExecLeaseID(r.st.Lease.ID)
	vl, err := m.v.Lease(lease.ID)
	if err != nil {
		return fmt.Errorf("deploy lease %d: %w", lease.ID, err)
	}
	defer func() {
		if err == nil {
			return
		}
		if cerr := m.ex.ClearData(context.WithoutCancel(ctx), eid); cerr != nil {
			m.log.Error("clear inputs after failed deploy", "lease", lease.ID, "err", cerr)
		}
	}()
	if err := vl.CopyInputs(func(name string, r io.Reader) error {
		name, r, err := m.unseal(name, r)
		if err != nil {
			return err
		}
		return m.ex.PutInput(ctx, eid, name, r)
	}); err != nil {
		return fmt.Errorf("deploy lease %d: %w", lease.ID, err)
	}
	tasks, addr, err := m.startTasks(ctx, r.st)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.st.Tasks, r.st.ServiceAddr = tasks, addr
	err = m.save(r.st)
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("deploy lease %d: %w", lease.ID, err)
	}
	return nil
}

// startTasks puts st.Net's files among the lease's inputs and starts one task
// per replica of st's manifest (in st.Net's namespace and epoch, if any). It
// destroys the tasks it started when one fails to start.
func (m *Manager) startTasks(ctx context.Context, st state) (tasks []taskState, addr string, err error) {
	lease, eid := st.Lease, ExecLeaseID(st.Lease.ID)
	var started []string
	defer func() {
		if err == nil {
			return
		}
		for _, id := range started {
			if derr := m.ex.Destroy(context.WithoutCancel(ctx), id); derr != nil && !errors.Is(derr, executor.ErrTaskNotFound) {
				m.log.Error("destroy task after failed deploy", "task", id, "err", derr)
			}
		}
	}()
	var net Net
	if st.Net != nil {
		net = *st.Net
	}
	names := make([]string, 0, len(net.Files))
	for name := range net.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := m.ex.PutInput(ctx, eid, name, strings.NewReader(net.Files[name])); err != nil {
			return nil, "", fmt.Errorf("deploy lease %d: %w", lease.ID, err)
		}
	}
	for _, s := range st.Manifest.Services {
		for i := 0; i < int(s.Count); i++ {
			t := executor.Task{
				ID: taskID(eid, s.Name, i, net.Epoch), LeaseID: eid, NetNS: net.NetNS,
				Image: s.Image, Command: s.Command, Args: s.Args, Env: append(slices.Clip(s.Env), net.Env...), User: s.User,
				Resources: executor.Resources{
					CPUMilli: int64(s.Resources.CPUMilli), MemoryBytes: int64(s.Resources.MemoryBytes),
					StorageBytes: int64(s.Resources.StorageBytes),
				},
			}
			if lease.Kind == api.KindBatch {
				t.TimeLimit = lease.TimeLimit
			}
			if s.Resources.GPUUnits > 0 {
				if m.cfg.AssignGPUs == nil {
					return nil, "", fmt.Errorf("deploy lease %d: service %s asks %d GPUs: %w", lease.ID, s.Name, s.Resources.GPUUnits, executor.ErrUnsupported)
				}
				if t.Resources.GPUDeviceUUIDs, err = m.cfg.AssignGPUs(lease.ID, t.ID, s.Resources.GPUUnits); err != nil {
					return nil, "", fmt.Errorf("deploy lease %d: assign GPUs to %s: %w", lease.ID, t.ID, err)
				}
			}
			for _, e := range s.Expose {
				t.Ports = append(t.Ports, executor.Port{ContainerPort: int(e.Port), Protocol: strings.ToLower(e.Proto)})
			}
			h, err := m.ex.Start(ctx, t)
			if err != nil {
				return nil, "", fmt.Errorf("deploy lease %d: start %s: %w", lease.ID, t.ID, err)
			}
			started = append(started, t.ID)
			tasks = append(tasks, taskState{ID: t.ID, Service: s.Name, Replica: i, Endpoints: h.Endpoints, StartedAt: h.StartedAt})
			if addr == "" && i == 0 {
				for _, e := range s.Expose {
					if e.Global && (e.Proto == "" || strings.EqualFold(e.Proto, "tcp")) {
						addr = h.Endpoints[int(e.Port)]
						break
					}
				}
			}
		}
	}
	return tasks, addr, nil
}

// watch waits for r's tasks in the background.
func (m *Manager) watch(r *run) {
	ctx, cancel := context.WithCancel(m.ctx)
	r.cancel = cancel
	go func() {
		defer close(r.done)
		defer cancel()
		m.wait(ctx, r)
	}()
}

func (m *Manager) wait(ctx context.Context, r *run) {
	r.mu.Lock()
	tasks := append([]taskState(nil), r.st.Tasks...)
	id, kind := r.st.Lease.ID, r.st.Lease.Kind
	r.mu.Unlock()
	var wg sync.WaitGroup
	for i, t := range tasks {
		if t.Exit != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.ex.Wait(ctx, t.ID)
			if ctx.Err() != nil {
				return // stopped or closed: not an exit to record
			}
			ex := &exitState{Code: res.ExitCode, FinishedAt: res.FinishedAt}
			if err != nil {
				ex.Code, ex.Err = -1, err.Error()
			} else if res.Err != nil {
				ex.Err = res.Err.Error()
			}
			if res.OOMKilled {
				ex.Err = "out of memory: " + ex.Err
			}
			if ex.FinishedAt.IsZero() {
				ex.FinishedAt = m.now()
			}
			r.mu.Lock()
			r.st.Tasks[i].Exit = ex
			if kind == api.KindService && r.st.State == api.StateRunning {
				r.st.State, r.st.Error = api.StateFailed, fmt.Sprintf("task %s exited with %d %s", t.ID, ex.Code, ex.Err)
			}
			if err := m.save(r.st); err != nil {
				m.log.Error("save task exit", "task", t.ID, "err", err)
			}
			r.mu.Unlock()
			m.log.Info("task exited", "lease", id, "task", t.ID, "code", ex.Code, "err", ex.Err)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil || kind != api.KindBatch {
		return
	}
	m.complete(r)
}

// unseal returns the input as the workload gets it: an input named NAME.sealed is
// opened with the attestation's sealing identity and named NAME; others as they are.
func (m *Manager) unseal(name string, r io.Reader) (string, io.Reader, error) {
	base, ok := strings.CutSuffix(name, api.SealedInputSuffix)
	if !ok {
		return name, r, nil
	}
	if m.cfg.Unseal == nil {
		return "", nil, fmt.Errorf("input %s is sealed to a TEE's key and this provider does not attest ([tee] attest = false): nothing here can open it", name)
	}
	dr, err := age.Decrypt(r, m.cfg.Unseal)
	if err != nil {
		return "", nil, fmt.Errorf("unseal input %s: %w (is it sealed to this provider's current attestation? kiln tee seal reads the key from the chain)", name, err)
	}
	return base, dr, nil
}

// complete seals a batch lease's outputs once every task exited, and reports.
//
// NB: the seal (reading, hashing and encrypting every output: minutes for large ones)
// runs without r.mu, so Status, Held and Logs answer meanwhile; the lease stays
// "running" until its outputs are sealed. Stop and Restart wait for the watcher, and
// so for the seal.
func (m *Manager) complete(r *run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &r.st
	if st.State == api.StateRunning {
		state, why := api.StateCompleted, st.Error
		for _, t := range st.Tasks {
			if t.Exit == nil || t.Exit.Code != 0 || t.Exit.Err != "" {
				state = api.StateFailed
				if why == "" && t.Exit != nil {
					why = fmt.Sprintf("task %s exited with %d %s", t.ID, t.Exit.Code, t.Exit.Err)
				}
			}
		}
		if state == api.StateFailed && !st.Held && m.cfg.Hold != nil && m.cfg.Hold(st.Lease.ID) {
			st.State, st.Error, st.Held = state, why, true
			if err := m.save(*st); err != nil {
				m.log.Error("save held lease", "lease", st.Lease.ID, "err", err)
			}
			m.log.Info("lease held: a task failed; outputs kept for a restart", "lease", st.Lease.ID, "error", st.Error)
			return
		}
		st.Held = false
		sealed := *st
		r.mu.Unlock()
		files, err := m.seal(&sealed)
		clearErr := m.ex.ClearData(m.ctx, ExecLeaseID(sealed.Lease.ID))
		r.mu.Lock()
		st.State, st.Error = state, why
		st.Skipped, st.SkippedTotal = sealed.Skipped, sealed.SkippedTotal
		if err != nil {
			st.State, st.Error = api.StateFailed, err.Error()
			m.log.Error("seal outputs", "lease", st.Lease.ID, "err", err)
		}
		if clearErr != nil {
			m.log.Error("clear plaintext inputs and outputs", "lease", st.Lease.ID, "err", clearErr)
		}
		root := proof.ItemsRoot(vault.Items(files))
		st.OutputsRoot = hex.EncodeToString(root[:])
		st.Outputs = st.Outputs[:0]
		for _, f := range files {
			st.Outputs = append(st.Outputs, api.FileInfo{Name: f.Name, Size: f.Size, SHA256: f.SHA256Hex()})
		}
		if err := m.save(*st); err != nil {
			m.log.Error("save completion", "lease", st.Lease.ID, "err", err)
		}
		m.log.Info("lease completed", "lease", st.Lease.ID, "state", st.State, "outputs", len(files), "root", st.OutputsRoot)
	}
	if st.Held || st.Reported || (st.State != api.StateCompleted && st.State != api.StateFailed) {
		return // NB: a held lease waits for Restart or Finish, also after a daemon restart
	}
	if m.cfg.OnComplete != nil {
		var root [32]byte
		hex.Decode(root[:], []byte(st.OutputsRoot))
		codes := map[string]int{}
		for _, t := range st.Tasks {
			codes[t.ID] = -1
			if t.Exit != nil {
				codes[t.ID] = t.Exit.Code
			}
		}
		m.cfg.OnComplete(st.Lease.ID, root, codes)
	}
	st.Reported = true
	if err := m.save(*st); err != nil {
		m.log.Error("save completion report", "lease", st.Lease.ID, "err", err)
	}
}

// seal seals the lease's outputs, read through the executor, and records in
// st what it skipped.
func (m *Manager) seal(st *state) ([]vault.File, error) {
	vl, err := m.v.Lease(st.Lease.ID)
	if err != nil {
		return nil, err
	}
	outs, err := m.ex.Outputs(m.ctx, ExecLeaseID(st.Lease.ID))
	if err != nil {
		return nil, err
	}
	if m.cfg.BeforeSeal != nil && st.Lease.Kind == api.KindBatch {
		if outs, err = m.cfg.BeforeSeal(st.Lease.ID, outs); err != nil {
			return nil, err
		}
	}
	res, err := vl.Seal(outs, m.cfg.MaxOutputBytes)
	st.Skipped, st.SkippedTotal = nil, res.SkippedTotal
	for _, s := range res.Skipped {
		st.Skipped = append(st.Skipped, api.SkippedOutput{Name: s.Name, Reason: s.Reason})
	}
	if err != nil {
		return nil, err
	}
	return res.Files, nil
}

// CountStates returns how many of the leases it runs are in each state (running,
// completed, failed).
func (m *Manager) CountStates() map[string]int {
	m.mu.Lock()
	runs := make([]*run, 0, len(m.leases))
	for _, r := range m.leases {
		runs = append(runs, r)
	}
	m.mu.Unlock()
	out := map[string]int{}
	for _, r := range runs {
		r.mu.Lock()
		out[r.st.State]++
		r.mu.Unlock()
	}
	return out
}

func (m *Manager) get(id uint64) (*run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.leases[id]
	if !ok {
		return nil, fmt.Errorf("lease %d: %w", id, api.ErrNotDeployed)
	}
	return r, nil
}

// Status reports the lease's tasks, or api.ErrNotDeployed.
func (m *Manager) Status(_ context.Context, id uint64) (api.LeaseStatus, error) {
	r, err := m.get(id)
	if err != nil {
		return api.LeaseStatus{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := api.LeaseStatus{
		LeaseID: id, Kind: r.st.Lease.Kind, State: r.st.State, Error: r.st.Error,
		Outputs: append([]api.FileInfo(nil), r.st.Outputs...), OutputsRoot: r.st.OutputsRoot,
		Skipped: append([]api.SkippedOutput(nil), r.st.Skipped...), SkippedTotal: r.st.SkippedTotal,
	}
	for _, t := range r.st.Tasks {
		ts := api.TaskStatus{ID: t.ID, Service: t.Service, Replica: t.Replica, State: api.StateRunning, StartedAt: t.StartedAt, Endpoints: t.Endpoints}
		if t.Exit != nil {
			code, fin := t.Exit.Code, t.Exit.FinishedAt
			ts.ExitCode, ts.FinishedAt, ts.Error = &code, &fin, t.Exit.Err
			ts.State = api.StateCompleted
			if code != 0 || t.Exit.Err != "" {
				ts.State = api.StateFailed
			}
		}
		st.Tasks = append(st.Tasks, ts)
	}
	return st, nil
}

// Logs streams one task's log.
func (m *Manager) Logs(ctx context.Context, id uint64, sel api.LogSelector, follow bool) (io.ReadCloser, error) {
	r, err := m.get(id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	svc := sel.Service
	if svc == "" && len(r.st.Manifest.Services) > 0 {
		svc = r.st.Manifest.Services[0].Name
	}
	var taskID string
	for _, t := range r.st.Tasks {
		if t.Service == svc && t.Replica == sel.Replica {
			taskID = t.ID
		}
	}
	r.mu.Unlock()
	if taskID == "" {
		return nil, fmt.Errorf("logs of lease %d: service %q replica %d: %w", id, svc, sel.Replica, api.ErrNotDeployed)
	}
	rc, err := m.ex.Logs(ctx, taskID, follow)
	if err != nil {
		return nil, fmt.Errorf("logs of lease %d: %w", id, err)
	}
	return rc, nil
}

// ServiceAddr returns the address of the lease's first global TCP port
// while the lease runs.
func (m *Manager) ServiceAddr(id uint64) (string, bool) {
	r, err := m.get(id)
	if err != nil {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.ServiceAddr, r.st.ServiceAddr != "" && r.st.State == api.StateRunning
}

// Stop ends the lease: it stops and destroys its tasks, erases its vault
// (key, inputs and outputs) and forgets it. It is what the daemon calls the
// moment a lease closes on chain; stopping a lease never deployed still
// erases its uploaded inputs.
func (m *Manager) Stop(ctx context.Context, id uint64) error {
	m.mu.Lock()
	r, ok := m.leases[id]
	delete(m.leases, id)
	m.mu.Unlock()
	var errs []error
	if ok {
		r.cancel()
		// NB: the watcher first: a seal in progress (complete) reads the outputs and
		// saves the lease's state, which the rest of Stop removes.
		<-r.done
		r.mu.Lock()
		tasks := append([]taskState(nil), r.st.Tasks...)
		r.mu.Unlock()
		for _, t := range tasks {
			if err := m.ex.Stop(ctx, t.ID, m.cfg.StopGrace); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
				errs = append(errs, fmt.Errorf("stop %s: %w", t.ID, err))
			}
			if err := m.ex.Destroy(ctx, t.ID); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
				errs = append(errs, fmt.Errorf("destroy %s: %w", t.ID, err))
			}
		}
	}
	m.releaseImages(ctx, id)
	if err := m.ex.ClearData(ctx, ExecLeaseID(id)); err != nil {
		errs = append(errs, err)
	}
	if err := m.v.Erase(id); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(m.stateFile(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove state: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop lease %d: %w", id, err)
	}
	m.log.Info("lease stopped and erased", "lease", id)
	return nil
}

// Leases lists the leases the manager runs or holds results of.
func (m *Manager) Leases() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(m.leases))
	for id := range m.leases {
		out = append(out, id)
	}
	return out
}

// Recover is called once after a restart, before any Deploy: it reads the
// lease state files, re-attaches to the executor's tasks (executor.Recover),
// records tasks lost meanwhile as exited with an unknown status, destroys
// tasks of leases it has no state for, resumes watching, and reports
// completions not yet reported. It returns the leases it knows, for the
// daemon to Stop those the chain has closed meanwhile.
func (m *Manager) Recover(ctx context.Context) ([]uint64, error) {
	handles, err := m.ex.Recover(ctx)
	if err != nil {
		return nil, fmt.Errorf("recover leases: %w", err)
	}
	live := map[string]executor.Handle{}
	for _, h := range handles {
		live[h.TaskID] = h
	}
	ents, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("recover leases: %w", err)
	}
	known := map[string]bool{}
	var ids []uint64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.cfg.Dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("recover leases: %w", err)
		}
		var st state
		if err := json.Unmarshal(b, &st); err != nil {
			m.log.Error("skip unreadable lease state", "file", e.Name(), "err", err)
			continue
		}
		for i, t := range st.Tasks {
			known[t.ID] = true
			if _, ok := live[t.ID]; !ok && t.Exit == nil {
				st.Tasks[i].Exit = &exitState{Code: -1, Err: executor.ErrExitUnknown.Error() + ": task lost while the daemon was down", FinishedAt: m.now()}
				if st.Lease.Kind == api.KindService && st.State == api.StateRunning {
					st.State, st.Error = api.StateFailed, "task "+t.ID+" lost while the daemon was down"
				}
			}
		}
		r := &run{done: make(chan struct{}), st: st}
		m.mu.Lock()
		m.leases[st.Lease.ID] = r
		if len(st.Images) > 0 {
			m.images[st.Lease.ID] = append([]string(nil), st.Images...)
		}
		m.mu.Unlock()
		ids = append(ids, st.Lease.ID)
		m.watch(r)
	}
	for id := range live {
		if !known[id] {
			m.log.Warn("destroy task of no known lease", "task", id)
			if err := m.ex.Destroy(ctx, id); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
				m.log.Error("destroy orphan task", "task", id, "err", err)
			}
		}
	}
	return ids, nil
}

// Restart starts a cluster member's tasks again in net, whose Epoch must be
// later than the tasks': it stops the lease's tasks, starts the new ones, and
// only then destroys the old, so that the lease's inputs and outputs (rank 0's
// checkpoints) are kept for the job to resume from. The lease is running again,
// watched as after Deploy. A lease already reported complete cannot restart.
func (m *Manager) Restart(ctx context.Context, id uint64, net Net) error {
	r, err := m.get(id)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	r.mu.Lock()
	st := r.st
	st.Tasks = append([]taskState(nil), r.st.Tasks...)
	r.mu.Unlock()
	switch {
	case st.Net == nil:
		return fmt.Errorf("restart lease %d: not a cluster member (deployed without a network namespace)", id)
	case net.Epoch <= st.Net.Epoch:
		return fmt.Errorf("restart lease %d: epoch %d: its tasks run in epoch %d already", id, net.Epoch, st.Net.Epoch)
	case st.Reported:
		return fmt.Errorf("restart lease %d: it completed (%s) and was reported", id, st.State)
	case net.NetNS == "":
		return fmt.Errorf("restart lease %d: no network namespace given", id)
	}
	r.cancel()
	<-r.done
	r.mu.Lock()
	reported := r.st.Reported
	r.mu.Unlock()
	if reported { // NB: it completed (and sealed) while Restart waited for the watcher
		return fmt.Errorf("restart lease %d: it completed and was reported", id)
	}
	for _, t := range st.Tasks {
		if err := m.ex.Stop(ctx, t.ID, m.cfg.StopGrace); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
			m.log.Error("stop task before restart", "task", t.ID, "err", err)
		}
	}
	st.Net = &net
	r2 := &run{done: make(chan struct{}), st: st}
	tasks, addr, err := m.startTasks(ctx, st)
	if err != nil {
		// NB: the old tasks are kept (stopped), so is the lease's data; watched
		// again, their exits fail (or hold) the lease as before.
		r2.st.Net = r.st.Net
		m.swap(id, r, r2)
		return fmt.Errorf("restart lease %d: %w", id, err)
	}
	// NB: the new tasks run: destroying the old ones no longer removes the
	// lease's files or namespace with its last task.
	for _, t := range st.Tasks {
		if err := m.ex.Destroy(ctx, t.ID); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
			m.log.Error("destroy task replaced by a restart", "task", t.ID, "err", err)
		}
	}
	r2.st.Tasks, r2.st.ServiceAddr = tasks, addr
	r2.st.State, r2.st.Error, r2.st.Held = api.StateRunning, "", false
	r2.st.Outputs, r2.st.OutputsRoot, r2.st.Skipped, r2.st.SkippedTotal = nil, "", nil, 0
	if err := m.save(r2.st); err != nil {
		m.log.Error("save restarted lease", "lease", id, "err", err)
	}
	m.swap(id, r, r2)
	m.log.Info("lease restarted", "lease", id, "epoch", net.Epoch, "tasks", len(tasks))
	return nil
}

// swap replaces lease id's run old with r (unless a Stop took old away) and
// watches r.
func (m *Manager) swap(id uint64, old, r *run) {
	m.mu.Lock()
	if m.leases[id] != old || m.ctx.Err() != nil {
		m.mu.Unlock()
		return
	}
	m.leases[id] = r
	m.mu.Unlock()
	m.watch(r)
}

// Finish seals and reports a lease Config.Hold kept (as failed): what a held
// member does when its cluster will not restart. It does nothing to a lease
// that is not held.
func (m *Manager) Finish(id uint64) error {
	r, err := m.get(id)
	if err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	r.mu.Lock()
	held := r.st.Held && !r.st.Reported
	if held {
		// NB: Held stays set, so complete seals without asking Hold again.
		r.st.State = api.StateRunning
	}
	r.mu.Unlock()
	if held {
		m.complete(r)
	}
	return nil
}

// Held reports whether lease id is held (Config.Hold).
func (m *Manager) Held(id uint64) bool {
	r, err := m.get(id)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Held && !r.st.Reported
}
