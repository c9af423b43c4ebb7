// Package docker runs tasks as hardened containers through the Docker Engine API.
//
// Every task is one container; the tasks of a lease share a bridge network and
// two volumes, created with the lease's first task and removed with its last:
//
//   - network <ns>-<lease>: internal (no route out, no port publishing) unless
//     a task of the lease publishes ports or Config.AllowEgress is set; then a
//     plain bridge, with IP masquerading off unless AllowEgress. Docker's
//     isolation rules drop traffic between bridge networks, so leases never
//     reach each other.
//   - volumes <ns>-<lease>-in (mounted read-only on /in) and <ns>-<lease>-out
//     (/out), local volumes bound to <DataDir>/<lease>/in and out so that the
//     daemon reads outputs from the host filesystem.
//
// Containers run without privileges: all capabilities dropped,
// no-new-privileges, a pids limit and an open-files ulimit, optionally a
// read-only root filesystem with a tmpfs /tmp. They run as the task's user,
// else the image's USER, else Config.User (65534:65534, nobody): never as
// root unless the image or the task asks for it. /in is readable and /out
// writable by any user, so that all of a lease's tasks can use them.
// Published ports bind 127.0.0.1 only: the tenant API proxies them. GPUs are
// given by device UUID through a DeviceRequest for the nvidia driver, never
// "all".
//
// Resources.StorageBytes is enforced only with Config.EnforceStorage (it
// needs a storage driver with quotas).
//
// Everything the executor creates carries the labels kiln.namespace,
// kiln.lease and (containers) kiln.task, which is how Recover finds it again.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/hostdir"
	"github.com/kiln-network/kiln/provider/imageref"
)

// Driver is the name the executor reports.
const Driver = "docker"

// Labels set on every object the executor creates.
const (
	LabelNamespace = "kiln.namespace"
	LabelLease     = "kiln.lease"
	LabelTask      = "kiln.task"
	// LabelTimeLimit holds the task's time limit in nanoseconds, so that a
	// recovered task keeps its deadline.
	LabelTimeLimit = "kiln.time-limit"
)

// Config configures the Docker executor. The fields with a toml key are its
// settings in the provider daemon's config, [executor.docker].
type Config struct {
	// Host is the Docker daemon address (unix:///var/run/docker.sock); empty
	// uses DOCKER_HOST or the default socket.
	Host string `toml:"host"`
	// Namespace prefixes every object name and is the kiln.namespace label:
	// two daemons on one Docker host must use different namespaces, since
	// Recover removes what it does not know in its own.
	Namespace string `toml:"namespace"`
	// DataDir holds the lease volumes' contents, <DataDir>/<lease>/{in,out}.
	// It must be on the Docker host. Required; the daemon's default is
	// <state_dir>/docker.
	DataDir string `toml:"data_dir"`
	// AllowEgress lets tasks reach networks outside the host. Off, a lease
	// network is internal, or without IP masquerading when it publishes ports.
	AllowEgress bool `toml:"allow_egress"`
	// User runs tasks whose task and image name no user as this "uid:gid".
	// Empty runs them as the image's default, root.
	User string `toml:"user"`
	// EnforceStorage caps each container's writable layer at
	// Resources.StorageBytes (Docker's StorageOpt size). Only some storage
	// drivers support it (overlay2 on xfs with pquota, devicemapper, zfs,
	// btrfs); where they do not, container creation fails, so it is opt-in.
	// The /out volume is never capped.
	EnforceStorage bool `toml:"enforce_storage"`
	// DefaultPidsLimit caps processes per container when the task sets none.
	DefaultPidsLimit int64 `toml:"default_pids_limit"`
	// MaxOpenFiles is the nofile ulimit of every container.
	MaxOpenFiles int64 `toml:"max_open_files"`
	// TmpfsSize is the size of /tmp for tasks with a read-only root filesystem.
	TmpfsSize string `toml:"tmpfs_size"`
	// LogMaxSize caps a container's json-file log (Docker's max-size syntax).
	LogMaxSize string `toml:"log_max_size"`
	// AllowPull lets Start pull an image that is not present from its
	// registry; only references pinned by digest (repo@sha256:…) are pulled.
	// Off, tasks run only images already on the host or uploaded (LoadImage).
	// The daemon sets it when the provider allows a registry.
	AllowPull bool `toml:"-"`
	// MaxPullBytes is the largest image a pull may bring; a larger one is removed
	// again and the task refused. 0: no limit.
	MaxPullBytes int64 `toml:"max_pull_bytes"`
	// PullTimeout bounds one pull.
	PullTimeout time.Duration `toml:"pull_timeout"`
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger `toml:"-"`
}

// DefaultConfig returns a config with every field but DataDir set.
func DefaultConfig() Config {
	return Config{
		Namespace: "kiln",
		// 1024: plenty for a workload's threads, far below a fork bomb's reach.
		DefaultPidsLimit: 1024,
		// 4096: above what most programs need, below the hard limit of daemons
		// started with a small LimitNOFILE (a ulimit over it fails the start).
		MaxOpenFiles: 4096,
		TmpfsSize:    "256m",
		// nobody:nogroup: an id no host account uses, owning no file.
		User: "65534:65534",
		// 100 MB of logs per task: a runaway printer must not fill the disk.
		LogMaxSize: "100m",
		AllowPull:  true,
		// 32 GiB: room for CUDA images with model weights, not for a disk-filling one.
		MaxPullBytes: 32 << 30,
		// 15 min: a large image over a slow link, not a hung registry forever.
		PullTimeout: 15 * time.Minute,
	}
}

// Validate checks the config.
func (c Config) Validate() error {
	if err := executor.ValidateID(c.Namespace); err != nil {
		return fmt.Errorf("docker executor: namespace: %w", err)
	}
	if c.DataDir == "" {
		return errors.New("docker executor: data_dir: must be set")
	}
	if !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("docker executor: data_dir: must be absolute (got %q)", c.DataDir)
	}
	if c.DefaultPidsLimit <= 0 {
		return fmt.Errorf("docker executor: default_pids_limit: must be > 0 (got %d)", c.DefaultPidsLimit)
	}
	if c.MaxOpenFiles <= 0 {
		return fmt.Errorf("docker executor: max_open_files: must be > 0 (got %d)", c.MaxOpenFiles)
	}
	if _, _, ok := numericUser(c.User); c.User != "" && !ok {
		return fmt.Errorf("docker executor: user: must be uid:gid, numbers (got %q)", c.User)
	}
	if c.MaxPullBytes < 0 {
		return fmt.Errorf("docker executor: max_pull_bytes: must be >= 0 (got %d; 0: no limit)", c.MaxPullBytes)
	}
	if c.AllowPull && c.PullTimeout <= 0 {
		return fmt.Errorf("docker executor: pull_timeout: must be > 0 (got %s)", c.PullTimeout)
	}
	return nil
}

// Executor runs tasks as Docker containers. Create it with New.
type Executor struct {
	cfg Config
	cli *client.Client
	log *slog.Logger

	leaseMu sync.Mutex // serialises creating and removing lease networks and volumes

	mu    sync.Mutex
	tasks map[string]*task
}

var _ executor.Executor = (*Executor)(nil)

type task struct {
	id, lease   string
	containerID string
	startedAt   time.Time
	timeLimit   time.Duration
	cancel      context.CancelFunc // stops the waiter
	done        chan struct{}      // closed once res is set

	mu       sync.Mutex
	res      executor.ExitResult
	timedOut bool
	stopping bool // Stop was called: a SIGKILL exit is ours, not the OOM killer's
	timer    *time.Timer
}

// New returns a Docker executor. It does not contact the daemon; Fingerprint does.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("create docker client: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Executor{cfg: cfg, cli: cli, log: log.With("executor", Driver), tasks: map[string]*task{}}, nil
}

// Client returns the executor's Docker client.
func (e *Executor) Client() *client.Client { return e.cli }

// Close releases the client's connections; running tasks are not touched.
func (e *Executor) Close() error { return e.cli.Close() }

// Names of the objects of a task and a lease.
func (e *Executor) containerName(task string) string { return e.cfg.Namespace + "-" + task }
func (e *Executor) networkName(lease string) string  { return e.cfg.Namespace + "-" + lease }
func (e *Executor) volumeName(lease, kind string) string {
	return e.cfg.Namespace + "-" + lease + "-" + kind
}
func (e *Executor) leaseDir(lease string) string { return filepath.Join(e.cfg.DataDir, lease) }

func (e *Executor) labels(lease string) map[string]string {
	return map[string]string{LabelNamespace: e.cfg.Namespace, LabelLease: lease}
}

// Fingerprint asks the daemon for its version and runtimes.
func (e *Executor) Fingerprint(ctx context.Context) (executor.Fingerprint, error) {
	info, err := e.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return executor.Fingerprint{}, fmt.Errorf("docker info: %w", err)
	}
	_, nvidia := info.Info.Runtimes["nvidia"]
	return executor.Fingerprint{
		Driver:     Driver,
		Version:    info.Info.ServerVersion,
		Isolated:   true,
		GPUs:       nvidia,
		Containers: true,
		Attributes: map[string]string{
			"cgroup_version": info.Info.CgroupVersion,
			"cgroup_driver":  info.Info.CgroupDriver,
			"storage_driver": info.Info.Driver,
			"nvidia_runtime": strconv.FormatBool(nvidia),
		},
	}, nil
}

// Start creates the lease's network and volumes if needed, then creates and
// starts the task's container. The image must be present locally (uploaded with
// LoadImage, or already on the host) or, with AllowPull and a reference pinned
// by digest, is pulled from its registry, within MaxPullBytes; Docker checks
// what it pulls against the digest.
func (e *Executor) Start(ctx context.Context, t executor.Task) (executor.Handle, error) {
	if err := t.Validate(); err != nil {
		return executor.Handle{}, err
	}
	if t.Image == "" {
		return executor.Handle{}, fmt.Errorf("start %s: image: must be set", t.ID)
	}
	e.mu.Lock()
	if _, ok := e.tasks[t.ID]; ok {
		e.mu.Unlock()
		return executor.Handle{}, fmt.Errorf("start %s: %w", t.ID, executor.ErrTaskExists)
	}
	// Reserve the id while the container is created.
	tk := &task{id: t.ID, lease: t.LeaseID, timeLimit: t.TimeLimit, done: make(chan struct{})}
	e.tasks[t.ID] = tk
	e.mu.Unlock()

	h, err := e.start(ctx, t, tk)
	if err != nil {
		e.mu.Lock()
		delete(e.tasks, t.ID)
		e.mu.Unlock()
		if rerr := e.releaseLease(context.WithoutCancel(ctx), t.LeaseID); rerr != nil {
			e.log.Warn("release lease after failed start", "lease", t.LeaseID, "err", rerr)
		}
		return executor.Handle{}, err
	}
	e.log.Info("task started", "task", t.ID, "lease", t.LeaseID, "container", tk.containerID)
	return h, nil
}

func (e *Executor) start(ctx context.Context, t executor.Task, tk *task) (executor.Handle, error) {
	imageUser, err := e.ensureImage(ctx, t.Image)
	if err != nil {
		return executor.Handle{}, fmt.Errorf("start %s: %w", t.ID, err)
	}
	var pauseID string
	if t.NetNS != "" {
		// NB: only the lease's own namespace: a task must never join another's.
		// The pause container cannot go meanwhile: this task, reserved in
		// e.tasks, keeps releaseLease from removing it.
		id, path, err := e.pause(ctx, t.LeaseID)
		if err != nil || path != t.NetNS {
			return executor.Handle{}, fmt.Errorf("start %s: netns %s: not lease %s's namespace (LeaseNetNS gives %q; %v)", t.ID, t.NetNS, t.LeaseID, path, err)
		}
		pauseID = id
	}
	if err := e.ensureLease(ctx, t.LeaseID, len(t.Ports) > 0, pauseID == ""); err != nil {
		return executor.Handle{}, err
	}
	cfg, hcfg, err := e.containerSpec(t, imageUser)
	if err != nil {
		return executor.Handle{}, err
	}
	if pauseID != "" {
		hcfg.NetworkMode = container.NetworkMode("container:" + pauseID)
	}
	created, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: e.containerName(t.ID), Config: cfg, HostConfig: hcfg,
	})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return executor.Handle{}, fmt.Errorf("create container for %s: %w (left by an earlier run; Recover or Destroy it)", t.ID, executor.ErrTaskExists)
		}
		return executor.Handle{}, fmt.Errorf("create container for %s: %w", t.ID, err)
	}
	if _, err := e.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		e.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
		return executor.Handle{}, fmt.Errorf("start container for %s: %w", t.ID, err)
	}
	ins, err := e.cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		e.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
		return executor.Handle{}, fmt.Errorf("inspect container of %s: %w", t.ID, err)
	}
	e.mu.Lock()
	tk.containerID = created.ID // from now on get finds the task
	e.mu.Unlock()
	tk.startedAt = parseTime(ins.Container.State.StartedAt)
	e.watch(tk)
	return e.handle(tk, ins.Container, false), nil
}

// containerSpec turns a task into the container's config and host config;
// imageUser is the USER of the task's image.
func (e *Executor) containerSpec(t executor.Task, imageUser string) (*container.Config, *container.HostConfig, error) {
	labels := e.labels(t.LeaseID)
	labels[LabelTask] = t.ID
	labels[LabelTimeLimit] = strconv.FormatInt(int64(t.TimeLimit), 10)

	env := append(append([]string{}, t.Env...),
		executor.EnvIn+"="+executor.InPath,
		executor.EnvOut+"="+executor.OutPath,
		executor.EnvTaskID+"="+t.ID,
		executor.EnvLeaseID+"="+t.LeaseID,
	)
	cfg := &container.Config{
		Image:      t.Image,
		Entrypoint: t.Command,
		Cmd:        t.Args,
		Env:        env,
		Labels:     labels,
		User:       taskUser(t.User, imageUser, e.cfg.User),
		StopSignal: "SIGTERM",
	}

	pids := t.Resources.PidsLimit
	if pids == 0 {
		pids = e.cfg.DefaultPidsLimit
	}
	hcfg := &container.HostConfig{
		NetworkMode:   container.NetworkMode(e.networkName(t.LeaseID)),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": e.cfg.LogMaxSize, "max-file": "1",
		}},
		Privileged:     false,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		IpcMode:        container.IpcMode("private"),
		ReadonlyRootfs: t.ReadOnlyRootFS,
		Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: e.volumeName(t.LeaseID, "in"), Target: executor.InPath, ReadOnly: true},
			{Type: mount.TypeVolume, Source: e.volumeName(t.LeaseID, "out"), Target: executor.OutPath},
		},
		Resources: container.Resources{
			NanoCPUs:  t.Resources.CPUMilli * 1_000_000,
			Memory:    t.Resources.MemoryBytes,
			PidsLimit: &pids,
			Ulimits:   []*container.Ulimit{{Name: "nofile", Soft: e.cfg.MaxOpenFiles, Hard: e.cfg.MaxOpenFiles}},
		},
	}
	if t.Resources.MemoryBytes > 0 {
		// No swap: a memory limit that spills to swap is no limit.
		hcfg.Resources.MemorySwap = t.Resources.MemoryBytes
	}
	if e.cfg.EnforceStorage && t.Resources.StorageBytes > 0 {
		hcfg.StorageOpt = map[string]string{"size": strconv.FormatInt(t.Resources.StorageBytes, 10)}
	}
	if t.ReadOnlyRootFS {
		hcfg.Tmpfs = map[string]string{"/tmp": "rw,noexec,nosuid,nodev,size=" + e.cfg.TmpfsSize}
	}
	if len(t.Resources.GPUDeviceUUIDs) > 0 {
		hcfg.Resources.DeviceRequests = []container.DeviceRequest{{
			Driver:       "nvidia",
			DeviceIDs:    append([]string{}, t.Resources.GPUDeviceUUIDs...),
			Capabilities: [][]string{{"gpu"}},
		}}
	}
	if len(t.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		hcfg.PortBindings = network.PortMap{}
		for _, p := range t.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "tcp"
			}
			port, err := network.ParsePort(strconv.Itoa(p.ContainerPort) + "/" + proto)
			if err != nil {
				return nil, nil, fmt.Errorf("task %s: port %d: %w", t.ID, p.ContainerPort, err)
			}
			cfg.ExposedPorts[port] = struct{}{}
			host := ""
			if p.HostPort != 0 {
				host = strconv.Itoa(p.HostPort)
			}
			hcfg.PortBindings[port] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: host}}
		}
	}
	return cfg, hcfg, nil
}

// ensureLease creates the lease's volumes and, with withNetwork, its network,
// unless they exist.
func (e *Executor) ensureLease(ctx context.Context, lease string, publishes, withNetwork bool) error {
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	internal := !e.cfg.AllowEgress && !publishes
	name := e.networkName(lease)
	ins, err := e.cli.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	switch {
	case !withNetwork:
	case err == nil:
		if ins.Network.Internal != internal {
			return fmt.Errorf("network %s of lease %s: internal=%t, but this task needs internal=%t (a lease's tasks must all publish ports or none)", name, lease, ins.Network.Internal, internal)
		}
	case cerrdefs.IsNotFound(err):
		opts := map[string]string{}
		if !internal && !e.cfg.AllowEgress {
			// Ports published, egress not allowed: without masquerading, packets
			// to the outside leave with a private source and never come back.
			opts["com.docker.network.bridge.enable_ip_masquerade"] = "false"
		}
		if _, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge", Internal: internal, Labels: e.labels(lease), Options: opts,
		}); err != nil {
			return fmt.Errorf("create network for lease %s: %w", lease, err)
		}
	default:
		return fmt.Errorf("inspect network of lease %s: %w", lease, err)
	}
	for _, kind := range []string{"in", "out"} {
		dir := filepath.Join(e.leaseDir(lease), kind)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s dir for lease %s: %w", kind, lease, err)
		}
		// NB: the lease's tasks may run as several users (each image's USER,
		// the manifest's, the default), none of them the daemon's: in/ must
		// be readable and out/ writable by all of them, whatever the umask.
		// Only the lease's containers mount them; on the host, DataDir
		// (0750) keeps out the users outside the daemon's group.
		mode := os.FileMode(0o755)
		if kind == "out" {
			mode = 0o777
		}
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("open %s dir of lease %s to the task's user: %w", kind, lease, err)
		}
		if _, err := e.cli.VolumeCreate(ctx, client.VolumeCreateOptions{
			Name:       e.volumeName(lease, kind),
			Driver:     "local",
			DriverOpts: map[string]string{"type": "none", "o": "bind", "device": dir},
			Labels:     e.labels(lease),
		}); err != nil {
			return fmt.Errorf("create %s volume for lease %s: %w", kind, lease, err)
		}
	}
	return nil
}

// taskUser is who a task runs as: the task's user, else the image's (empty:
// Docker applies the image's USER), else the executor's default.
func taskUser(task, image, def string) string {
	switch {
	case task != "":
		return task
	case image != "":
		return ""
	}
	return def
}

// numericUser parses "uid:gid".
func numericUser(u string) (uid, gid int, ok bool) {
	a, b, found := strings.Cut(u, ":")
	if !found {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(a)
	gid, err2 := strconv.Atoi(b)
	return uid, gid, err1 == nil && err2 == nil
}

// releaseLease removes the lease's network, volumes, dir and pause container
// unless a task of the lease is known or a task container of the lease is left.
func (e *Executor) releaseLease(ctx context.Context, lease string) error {
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	e.mu.Lock()
	for _, tk := range e.tasks {
		if tk.lease == lease {
			e.mu.Unlock()
			return nil
		}
	}
	e.mu.Unlock()
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.filter(lease)})
	if err != nil {
		return fmt.Errorf("list containers of lease %s: %w", lease, err)
	}
	if countTasks(list.Items) > 0 {
		return nil
	}
	var errs []error
	if err := e.removePause(ctx, lease, list.Items); err != nil {
		errs = append(errs, err)
	}
	if _, err := e.cli.NetworkRemove(ctx, e.networkName(lease), client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove network of lease %s: %w", lease, err))
	}
	for _, kind := range []string{"in", "out"} {
		if _, err := e.cli.VolumeRemove(ctx, e.volumeName(lease, kind), client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s volume of lease %s: %w", kind, lease, err))
		}
	}
	if err := os.RemoveAll(e.leaseDir(lease)); err != nil {
		errs = append(errs, fmt.Errorf("remove dir of lease %s: %w", lease, err))
	}
	return errors.Join(errs...)
}

// filter selects this namespace's objects, of one lease if lease is set.
func (e *Executor) filter(lease string) client.Filters {
	f := client.Filters{}.Add("label", LabelNamespace+"="+e.cfg.Namespace)
	if lease != "" {
		f.Add("label", LabelLease+"="+lease)
	}
	return f
}

// watch waits for the container to stop in the background and arms the time limit.
func (e *Executor) watch(tk *task) {
	ctx, cancel := context.WithCancel(context.Background())
	tk.cancel = cancel
	if tk.timeLimit > 0 {
		tk.mu.Lock()
		tk.timer = time.AfterFunc(time.Until(tk.startedAt.Add(tk.timeLimit)), func() {
			tk.mu.Lock()
			tk.timedOut = true
			tk.mu.Unlock()
			e.log.Info("time limit reached", "task", tk.id, "limit", tk.timeLimit)
			if _, err := e.cli.ContainerKill(ctx, tk.containerID, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
				e.log.Warn("kill at time limit", "task", tk.id, "err", err)
			}
		})
		tk.mu.Unlock()
	}
	go func() {
		defer cancel()
		w := e.cli.ContainerWait(ctx, tk.containerID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-w.Result:
		case err := <-w.Error:
			if ctx.Err() != nil {
				return // destroyed
			}
			e.log.Warn("wait for container", "task", tk.id, "err", err)
		case <-ctx.Done():
			return
		}
		e.finish(ctx, tk)
	}()
}

// finish reads the exit state of a stopped container and wakes waiters.
func (e *Executor) finish(ctx context.Context, tk *task) {
	res := executor.ExitResult{ExitCode: -1}
	// NB: the wait may have ended on a broken connection, not an exit; poll
	// the state until it really is not running.
	for {
		ins, err := e.cli.ContainerInspect(ctx, tk.containerID, client.ContainerInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			res.Err = fmt.Errorf("%w: inspect container: %v", executor.ErrExitUnknown, err)
			break
		}
		st := ins.Container.State
		if !st.Running && st.Status != container.StateCreated {
			res = exitResult(st)
			if res.ExitCode == sigkillExit && !res.OOMKilled && !tk.killedByUs() && e.lateOOM(ctx, tk) {
				res.OOMKilled = true
				res.Err = errOOM
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	tk.mu.Lock()
	if tk.timer != nil {
		tk.timer.Stop()
	}
	if tk.timedOut {
		res.Err = fmt.Errorf("%w (%s)", executor.ErrTimeLimit, tk.timeLimit)
		if res.ExitCode == 0 {
			res.ExitCode = -1
		}
	}
	tk.res = res
	tk.mu.Unlock()
	e.log.Info("task exited", "task", tk.id, "code", res.ExitCode, "oom", res.OOMKilled, "err", res.Err)
	close(tk.done)
}

// sigkillExit is the exit code Docker reports for a process killed by SIGKILL.
const sigkillExit = 128 + 9

var errOOM = errors.New("killed by the OOM killer: memory limit exceeded")

func (tk *task) killedByUs() bool {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.stopping || tk.timedOut
}

// lateOOM reports whether the daemon saw an OOM kill of the task's container.
// Docker sets State.OOMKilled from containerd's OOM event, which can arrive
// after the exit event; the container's "oom" event is logged either way. So
// for a SIGKILL exit not flagged OOM, look for that event since the start,
// waiting up to lateOOMWait for one still in flight.
func (e *Executor) lateOOM(ctx context.Context, tk *task) bool {
	ctx, cancel := context.WithTimeout(ctx, lateOOMWait+5*time.Second)
	defer cancel()
	since := tk.startedAt
	if since.IsZero() {
		since = time.Now().Add(-time.Hour)
	}
	ev := e.cli.Events(ctx, client.EventsListOptions{
		Since:   strconv.FormatInt(since.Add(-time.Second).Unix(), 10),
		Until:   strconv.FormatInt(time.Now().Add(lateOOMWait).Unix(), 10),
		Filters: client.Filters{}.Add("type", "container").Add("container", tk.containerID).Add("event", "oom"),
	})
	for {
		select {
		case m := <-ev.Messages:
			if string(m.Action) == "oom" {
				return true
			}
		case err := <-ev.Err:
			if err != nil && !errors.Is(err, io.EOF) {
				e.log.Warn("read daemon events for an OOM kill", "task", tk.id, "err", err)
			}
			return false
		}
	}
}

// lateOOMWait is how long after a SIGKILL exit an OOM event may still come.
const lateOOMWait = 2 * time.Second

func exitResult(st *container.State) executor.ExitResult {
	res := executor.ExitResult{ExitCode: st.ExitCode, OOMKilled: st.OOMKilled, FinishedAt: parseTime(st.FinishedAt)}
	switch {
	case st.OOMKilled:
		res.Err = errOOM
	case st.Error != "":
		res.Err = errors.New(st.Error)
	}
	return res
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func (e *Executor) handle(tk *task, c container.InspectResponse, exited bool) executor.Handle {
	h := executor.Handle{
		TaskID:    tk.id,
		LeaseID:   tk.lease,
		Driver:    Driver,
		Ref:       tk.containerID,
		StartedAt: tk.startedAt,
		Exited:    exited,
	}
	if c.NetworkSettings != nil {
		for port, bs := range c.NetworkSettings.Ports {
			for _, b := range bs {
				if hp, err := strconv.Atoi(b.HostPort); err == nil {
					if h.Endpoints == nil {
						h.Endpoints = map[int]string{}
					}
					// NB: published on 127.0.0.1 only (containerSpec).
					h.Endpoints[int(port.Num())] = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
				}
			}
		}
	}
	return h
}

// PutInput writes the input into the host dir the lease's in volume is
// bound to (/in in its containers).
func (e *Executor) PutInput(_ context.Context, leaseID, name string, r io.Reader) error {
	if err := executor.ValidateID(leaseID); err != nil {
		return fmt.Errorf("put input: lease: %w", err)
	}
	if err := hostdir.PutFile(filepath.Join(e.leaseDir(leaseID), "in"), name, r); err != nil {
		return fmt.Errorf("put input %s of lease %s: %w", name, leaseID, err)
	}
	return nil
}

// Outputs reads the host dir the lease's out volume is bound to (/out).
func (e *Executor) Outputs(_ context.Context, leaseID string) (fs.ReadDirFS, error) {
	if err := executor.ValidateID(leaseID); err != nil {
		return nil, fmt.Errorf("outputs: lease: %w", err)
	}
	return hostdir.FS(filepath.Join(e.leaseDir(leaseID), "out")), nil
}

// ClearData empties the lease's in and out dirs; the volumes stay.
func (e *Executor) ClearData(_ context.Context, leaseID string) error {
	if err := executor.ValidateID(leaseID); err != nil {
		return fmt.Errorf("clear data: lease: %w", err)
	}
	for _, kind := range []string{"in", "out"} {
		if err := hostdir.Clear(filepath.Join(e.leaseDir(leaseID), kind)); err != nil {
			return fmt.Errorf("clear data of lease %s: %w", leaseID, err)
		}
	}
	return nil
}

func (e *Executor) get(id string) (*task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tk, ok := e.tasks[id]
	if !ok || tk.containerID == "" {
		return nil, fmt.Errorf("task %s: %w", id, executor.ErrTaskNotFound)
	}
	return tk, nil
}

// Wait blocks until the task's container stops or ctx ends.
func (e *Executor) Wait(ctx context.Context, id string) (executor.ExitResult, error) {
	tk, err := e.get(id)
	if err != nil {
		return executor.ExitResult{}, err
	}
	select {
	case <-tk.done:
		tk.mu.Lock()
		defer tk.mu.Unlock()
		return tk.res, nil
	case <-ctx.Done():
		return executor.ExitResult{}, fmt.Errorf("wait for %s: %w", id, ctx.Err())
	}
}

// Stop sends SIGTERM and, after grace (rounded up to whole seconds, Docker's
// unit), SIGKILL; it returns once the exit is recorded.
func (e *Executor) Stop(ctx context.Context, id string, grace time.Duration) error {
	tk, err := e.get(id)
	if err != nil {
		return err
	}
	select {
	case <-tk.done:
		return nil
	default:
	}
	tk.mu.Lock()
	tk.stopping = true
	tk.mu.Unlock()
	secs := int(math.Ceil(grace.Seconds()))
	if _, err := e.cli.ContainerStop(ctx, tk.containerID, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop container of %s: %w", id, err)
	}
	select {
	case <-tk.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", id, ctx.Err())
	}
}

// Destroy force-removes the task's container and, once the lease has no
// container left, its network, volumes and data dir.
func (e *Executor) Destroy(ctx context.Context, id string) error {
	tk, err := e.get(id)
	if err != nil {
		return err
	}
	if _, err := e.cli.ContainerRemove(ctx, tk.containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container of %s: %w", id, err)
	}
	tk.cancel()
	tk.mu.Lock()
	if tk.timer != nil {
		tk.timer.Stop()
	}
	tk.mu.Unlock()
	e.mu.Lock()
	delete(e.tasks, id)
	e.mu.Unlock()
	if err := e.releaseLease(ctx, tk.lease); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	e.log.Info("task destroyed", "task", id)
	return nil
}

// Recover re-attaches to this namespace's containers: running ones are
// watched again (time limit included), exited ones are returned with Exited
// set so that their results can be collected. Containers that never started,
// and networks, volumes, data dirs and pause containers of leases without a
// task container, are removed.
func (e *Executor) Recover(ctx context.Context) ([]executor.Handle, error) {
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.filter("")})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var hs []executor.Handle
	leases := map[string]bool{}
	for _, c := range list.Items {
		id, lease := c.Labels[LabelTask], c.Labels[LabelLease]
		if c.Labels[LabelRole] == rolePause && lease != "" {
			continue // removeOrphanLeases removes it if its lease has no task
		}
		if id == "" || lease == "" || c.State == container.StateCreated {
			e.log.Warn("removing orphan container", "container", c.ID, "task", id, "state", c.State)
			if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return hs, fmt.Errorf("remove orphan container %s: %w", c.ID, err)
			}
			continue
		}
		leases[lease] = true
		ins, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			return hs, fmt.Errorf("inspect container of %s: %w", id, err)
		}
		e.mu.Lock()
		tk, known := e.tasks[id]
		if !known {
			limit, _ := strconv.ParseInt(c.Labels[LabelTimeLimit], 10, 64)
			tk = &task{
				id: id, lease: lease, containerID: c.ID, timeLimit: time.Duration(limit),
				startedAt: parseTime(ins.Container.State.StartedAt), done: make(chan struct{}),
			}
			e.tasks[id] = tk
		}
		e.mu.Unlock()
		if !known {
			e.watch(tk) // an exited container finishes at once
		}
		hs = append(hs, e.handle(tk, ins.Container, !ins.Container.State.Running))
		e.log.Info("task recovered", "task", id, "state", c.State)
	}
	if err := e.removeOrphanLeases(ctx, leases); err != nil {
		return hs, err
	}
	return hs, nil
}

func (e *Executor) removeOrphanLeases(ctx context.Context, live map[string]bool) error {
	orphans := map[string]bool{}
	nets, err := e.cli.NetworkList(ctx, client.NetworkListOptions{Filters: e.filter("")})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets.Items {
		if l := n.Labels[LabelLease]; !live[l] {
			orphans[l] = true
		}
	}
	cs, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.filter("").Add("label", LabelRole+"="+rolePause)})
	if err != nil {
		return fmt.Errorf("list pause containers: %w", err)
	}
	for _, c := range cs.Items {
		if l := c.Labels[LabelLease]; !live[l] {
			orphans[l] = true
		}
	}
	vols, err := e.cli.VolumeList(ctx, client.VolumeListOptions{Filters: e.filter("")})
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vols.Items {
		if l := v.Labels[LabelLease]; !live[l] {
			orphans[l] = true
		}
	}
	if dirs, err := os.ReadDir(e.cfg.DataDir); err == nil {
		for _, d := range dirs {
			if !live[d.Name()] && executor.ValidateID(d.Name()) == nil {
				orphans[d.Name()] = true
			}
		}
	}
	var errs []error
	for l := range orphans {
		if l == "" {
			continue
		}
		e.log.Warn("removing orphan lease objects", "lease", l)
		errs = append(errs, e.releaseLease(ctx, l))
	}
	return errors.Join(errs...)
}

// Stats takes one sample of the container's cgroup counters.
func (e *Executor) Stats(ctx context.Context, id string) (executor.Stats, error) {
	tk, err := e.get(id)
	if err != nil {
		return executor.Stats{}, err
	}
	res, err := e.cli.ContainerStats(ctx, tk.containerID, client.ContainerStatsOptions{Stream: false})
	if err != nil {
		return executor.Stats{}, fmt.Errorf("stats of %s: %w", id, err)
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		return executor.Stats{}, fmt.Errorf("decode stats of %s: %w", id, err)
	}
	mem := s.MemoryStats.Usage
	// Page cache is reclaimable: report what `docker stats` does.
	for _, k := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v < mem {
			mem -= v
			break
		}
	}
	return executor.Stats{
		CPUNanos:    s.CPUStats.CPUUsage.TotalUsage,
		MemoryBytes: mem,
		Pids:        s.PidsStats.Current,
		Time:        s.Read,
	}, nil
}

// Logs streams the container's stdout and stderr, demultiplexed into one stream.
func (e *Executor) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	tk, err := e.get(id)
	if err != nil {
		return nil, err
	}
	rc, err := e.cli.ContainerLogs(ctx, tk.containerID, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: follow,
	})
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, src: rc}, nil
}

// logReader closes the API stream with the pipe.
type logReader struct {
	*io.PipeReader
	src io.Closer
}

func (r *logReader) Close() error {
	r.src.Close()
	return r.PipeReader.Close()
}

// ensureImage makes ref present locally: it is, or it is pulled (see Start).
// It returns the USER of the image's config.
func (e *Executor) ensureImage(ctx context.Context, ref string) (user string, err error) {
	if ins, err := e.cli.ImageInspect(ctx, ref); err == nil {
		return imageUser(ins), nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if strings.HasPrefix(ref, "sha256:") {
		return "", fmt.Errorf("image %s is not on this provider: upload it to the lease first", ref)
	}
	if !e.cfg.AllowPull {
		return "", fmt.Errorf("image %s is not on this provider and pulling is disabled: upload it to the lease (docker save archive)", ref)
	}
	if !imageref.Pinned(ref) {
		return "", fmt.Errorf("image %s is not on this provider, and only images pinned by digest (repo@sha256:…) are pulled: a tag can be re-pointed", ref)
	}
	pctx := ctx
	if e.cfg.PullTimeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, e.cfg.PullTimeout)
		defer cancel()
	}
	e.log.Info("pulling image", "image", ref)
	resp, err := e.cli.ImagePull(pctx, ref, client.ImagePullOptions{})
	if err != nil {
		return "", fmt.Errorf("pull image %s: %w", ref, err)
	}
	if err := resp.Wait(pctx); err != nil {
		return "", fmt.Errorf("pull image %s: %w", ref, err)
	}
	ins, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("pull image %s: inspect after pull: %w", ref, err)
	}
	if e.cfg.MaxPullBytes > 0 && ins.Size > e.cfg.MaxPullBytes {
		e.cli.ImageRemove(context.WithoutCancel(ctx), ref, client.ImageRemoveOptions{})
		return "", fmt.Errorf("image %s is %d bytes, over this provider's limit of %d", ref, ins.Size, e.cfg.MaxPullBytes)
	}
	return imageUser(ins), nil
}

func imageUser(ins client.ImageInspectResult) string {
	if ins.Config == nil {
		return ""
	}
	return ins.Config.User
}
