// Package executor defines the interface through which the provider daemon runs, watches and removes tenant workloads, moves their data in and out, and reaches their ports.
//
// Implementations live in child packages named for what they use (process,
// docker) and register themselves by kind (Register) from an init function;
// the daemon builds the one its config names (New), from the executor's own
// table of the config ([executor.<kind>], see Settings). The daemon never
// assumes where a task's files live or on which host its ports listen: inputs
// go in through PutInput, outputs come out through Outputs, and a service is
// reached at the address its Handle gives, so that a remote host or a
// Kubernetes cluster can sit behind the interface.
package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrTaskNotFound is returned for a task id the executor does not know.
	ErrTaskNotFound = errors.New("task not found")
	// ErrTaskExists is returned by Start for a task id that is already running or not yet destroyed.
	ErrTaskExists = errors.New("task already exists")
	// ErrNotEnabled is returned by a constructor whose executor must be enabled explicitly.
	ErrNotEnabled = errors.New("executor not enabled")
	// ErrTimeLimit is wrapped in ExitResult.Err when the task ran past Task.TimeLimit and was killed.
	ErrTimeLimit = errors.New("time limit exceeded")
	// ErrExitUnknown is wrapped in ExitResult.Err when the exit status was lost,
	// e.g. a process that ended while the daemon was down.
	ErrExitUnknown = errors.New("exit status unknown")
	// ErrUnsupported is returned for a task asking for something the executor cannot give (GPUs, ports).
	ErrUnsupported = errors.New("unsupported by this executor")
	// ErrImageTooLarge is returned by ImageLoader.LoadImage for an archive over the size limit.
	ErrImageTooLarge = errors.New("image archive too large")
	// ErrImageDigest is returned by ImageLoader.LoadImage when the archive's image is not the one asked for.
	ErrImageDigest = errors.New("image digest mismatch")
	// ErrImageArchive is returned by ImageLoader.LoadImage for an archive that is not one `docker save` image.
	ErrImageArchive = errors.New("invalid image archive")
)

// Conventional paths and environment seen by a task.
const (
	// InPath is where a containerised task finds its inputs.
	InPath = "/in"
	// OutPath is where a containerised task writes its outputs.
	OutPath = "/out"
	// EnvIn names the environment variable holding the inputs directory as the task sees it.
	EnvIn = "KILN_IN"
	// EnvOut names the environment variable holding the outputs directory as the task sees it.
	EnvOut = "KILN_OUT"
	// EnvTaskID names the environment variable holding the task id.
	EnvTaskID = "KILN_TASK_ID"
	// EnvLeaseID names the environment variable holding the lease id.
	EnvLeaseID = "KILN_LEASE_ID"
	// EnvHostfile names the environment variable holding the path of a
	// cluster lease's MPI hostfile (package rendezvous). Its value names a file
	// under InPath; an executor whose tasks see their inputs elsewhere rewrites
	// that prefix to its inputs directory.
	EnvHostfile = "KILN_HOSTFILE"
)

// Executor runs tasks on this host. Implementations are safe for concurrent use.
//
// A task's lifecycle is Start → (Logs, Stats)* → Wait → Destroy; Stop may come
// at any point before Destroy. Only Destroy frees what the task had (its
// container, its lease's network and volumes once no task of the lease is
// left); an exited task keeps its outputs and logs until then.
type Executor interface {
	// Fingerprint reports what the executor can run on this host. It never
	// fails because the host lacks GPUs; it fails when the backend (e.g. the
	// Docker daemon) does not answer.
	Fingerprint(ctx context.Context) (Fingerprint, error)
	// Start launches t and returns as soon as it runs. ctx bounds the start
	// only; the task outlives it. It returns ErrTaskExists for a known id.
	Start(ctx context.Context, t Task) (Handle, error)
	// Wait blocks until the task exits or ctx ends. It returns ErrTaskNotFound
	// for an unknown id; a task's own failure is in ExitResult, not the error.
	Wait(ctx context.Context, id string) (ExitResult, error)
	// Stop asks the task to exit (SIGTERM), and kills it after grace. It is a
	// no-op for a task that already exited.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Destroy kills the task if it runs and removes everything it had: its
	// process or container, its logs, state and, once the lease has no other
	// task, the lease's network, work dir and volumes. Destroying an unknown
	// id returns ErrTaskNotFound.
	Destroy(ctx context.Context, id string) error
	// Recover is called once after the daemon restarts, on a fresh executor.
	// It re-attaches to the tasks left by a previous instance (running ones,
	// and exited ones whose results were not yet collected) and returns their
	// handles; it removes orphans: objects of this executor that belong to no
	// task.
	Recover(ctx context.Context) ([]Handle, error)
	// Stats samples the task's resource use.
	Stats(ctx context.Context, id string) (Stats, error)
	// Logs returns the task's combined stdout and stderr from the start. With
	// follow it keeps streaming until the task exits or the reader is closed.
	Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error)

	Data
}

// Data moves a lease's files in and out of wherever its tasks run. A lease's
// tasks share one set of inputs (InPath, or EnvIn) and one of outputs
// (OutPath, or EnvOut). Names are single path elements (no "/", not "." or
// ".."); callers validate them further (vault.NamePattern).
type Data interface {
	// PutInput stores r as the lease's input name, where its tasks read
	// inputs, replacing an input of that name. The caller puts every input
	// before the lease's first task starts. The file is readable by every
	// user the lease's tasks may run as; a link or special file of that name
	// is replaced, never written through. A failed put leaves no partial file.
	PutInput(ctx context.Context, leaseID, name string, r io.Reader) error
	// Outputs returns the lease's outputs as a file system whose root is
	// where its tasks write; it is empty for a lease with no outputs. ReadDir
	// reports links and special files as what they are, and Open refuses to
	// follow a link. Reads after ctx ends may fail.
	Outputs(ctx context.Context, leaseID string) (fs.ReadDirFS, error)
	// ClearData removes the lease's inputs and outputs (plaintext the
	// executor holds), keeping what its tasks need to run: the directories or
	// volumes they mount. It is a no-op for a lease it holds no data of.
	ClearData(ctx context.Context, leaseID string) error
}

// ImageLoader is implemented by executors that run tenant-uploaded container
// images (docker); callers find it with a type assertion. The process
// executor runs host programs and has none.
type ImageLoader interface {
	// LoadImage loads a `docker save` archive holding exactly one image, read
	// from r up to maxBytes, and returns the image's ID ("sha256:<hex>"), by
	// which tasks then name it. With wantID set, the archive's image must be
	// that one. A refused archive's error wraps ErrImageTooLarge,
	// ErrImageDigest or ErrImageArchive. The loaded image has no tags: a
	// tenant can never re-point a name other tasks use.
	LoadImage(ctx context.Context, r io.Reader, maxBytes int64, wantID string) (string, error)
}

// ImageRemover is implemented by image loaders that can remove what they
// loaded once its lease ends.
type ImageRemover interface {
	// RemoveImage removes the image with ID id unless something else still
	// holds it (a tag, a container); it keeps such an image and returns nil,
	// as it does for an image already gone.
	RemoveImage(ctx context.Context, id string) error
}

// Namespacer is implemented by executors that can run a lease's tasks in a
// network namespace of their own (for a cluster overlay); callers find it
// with a type assertion.
type Namespacer interface {
	// LeaseNetNS creates (idempotently) the lease's network namespace, with
	// only its loopback, and returns its path. Tasks with Task.NetNS set to
	// that path run in it; Destroy of the lease's last task removes it, and
	// Recover removes those of leases without a task.
	LeaseNetNS(ctx context.Context, leaseID string) (string, error)
}

// NetNSReleaser is implemented by Namespacers that can remove a lease's
// namespace before its last task is destroyed: a cluster member whose rank
// finished (its outputs kept for the tenant) or never started.
type NetNSReleaser interface {
	// ReleaseLeaseNetNS removes the lease's network namespace unless a task of
	// the lease still runs (or is starting); a namespace already gone is not
	// an error, nor is a running task (then it removes nothing). Callers do
	// not call it while they start a task of the lease.
	ReleaseLeaseNetNS(ctx context.Context, leaseID string) error
}

// Task is one workload to run: one replica of one service of a lease.
type Task struct {
	// ID names the task on this host; see TaskID. It must match IDPattern.
	ID string
	// LeaseID is the lease the task belongs to; tasks of one lease share a
	// network and the input/output volumes. It must match IDPattern.
	LeaseID string
	// Image is the container image to run (docker); it must be present locally.
	Image string
	// Command is the program to run: the entrypoint override for docker (empty
	// keeps the image's), the executable path for process.
	Command []string
	// Args are appended to Command (docker: the image's CMD override).
	Args []string
	// Env is the task's environment, KEY=VALUE each.
	Env []string
	// User is who the task runs as (docker): "uid", "uid:gid", "name" or
	// "name:group". Empty: the image's USER, else the executor's default.
	// The process executor runs every task as its own user and ignores it.
	User string
	// Resources are the limits the task runs under.
	Resources Resources
	// Ports are the task's ports the daemon must reach (Handle.Endpoints).
	Ports []Port
	// TimeLimit kills the task once it ran this long; 0 means no limit.
	TimeLimit time.Duration
	// NetNS, when set, is the path LeaseNetNS returned for the task's lease:
	// the task runs in that network namespace (its loopback and what the
	// caller put there, e.g. an overlay), not the executor's usual network.
	// Such a task cannot have Ports. Executors without Namespacer refuse it.
	NetNS string
	// ReadOnlyRootFS runs the container with a read-only root filesystem and
	// a tmpfs on /tmp (docker; ignored by process).
	ReadOnlyRootFS bool
}

// Resources are the limits a task runs under; a zero field means the
// executor's default.
type Resources struct {
	// CPUMilli is the CPU share in thousandths of a core.
	CPUMilli int64
	// MemoryBytes caps the task's memory.
	MemoryBytes int64
	// StorageBytes caps the task's writable storage where the backend can.
	StorageBytes int64
	// GPUDeviceUUIDs are the GPUs (by UUID, as NVML reports them) given to the task; never more.
	GPUDeviceUUIDs []string
	// PidsLimit caps the number of processes and threads.
	PidsLimit int64
}

// Port is a port the task listens on, which the daemon reaches at the
// address Handle.Endpoints gives (docker: published on the host's loopback).
type Port struct {
	// ContainerPort is the port the task listens on.
	ContainerPort int
	// HostPort asks for the port to publish it on where the executor
	// publishes ports; 0 lets the executor pick.
	HostPort int
	// Protocol is "tcp" (default) or "udp".
	Protocol string
}

// Handle describes a started task.
type Handle struct {
	// TaskID and LeaseID are the task's ids.
	TaskID  string
	LeaseID string
	// Driver names the executor ("process", "docker").
	Driver string
	// Ref is the backend's name for the task: a pid, a container id.
	Ref string
	// StartedAt is when the task started.
	StartedAt time.Time
	// Endpoints maps each Port.ContainerPort to the address ("host:port")
	// at which the daemon reaches it; the daemon dials nothing else.
	Endpoints map[int]string
	// Exited is true for a recovered task that had already exited.
	Exited bool
}

// ExitResult is how a task ended.
type ExitResult struct {
	// ExitCode is the task's exit status; -1 when it was killed by a signal or the status is unknown.
	ExitCode int
	// OOMKilled is true when the task was killed (or failed) for exceeding its memory limit.
	OOMKilled bool
	// Err explains an abnormal end (ErrTimeLimit, ErrExitUnknown, a signal); nil for a normal exit.
	Err error
	// FinishedAt is when the task ended, when known.
	FinishedAt time.Time
}

// Stats is one sample of a task's resource use.
type Stats struct {
	// CPUNanos is the CPU time used so far.
	CPUNanos uint64
	// MemoryBytes is the current resident memory.
	MemoryBytes uint64
	// Pids is the number of processes.
	Pids uint64
	// Time is when the sample was taken.
	Time time.Time
}

// Fingerprint is what an executor reports about itself and the host.
type Fingerprint struct {
	// Driver names the executor ("process", "docker").
	Driver string
	// Version is the backend's version (kernel, Docker Engine).
	Version string
	// Isolated is true when tasks cannot see each other or the host.
	Isolated bool
	// GPUs is true when the executor can hand GPUs to tasks.
	GPUs bool
	// Containers is true when the executor runs container images (Task.Image).
	Containers bool
	// Attributes carry backend details (cgroup mode, runtimes).
	Attributes map[string]string
}

// idPattern keeps ids usable as container, network, volume and file names.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// IDPattern is the pattern task and lease ids must match.
const IDPattern = `^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`

// TaskID returns the id of one replica of one service of a lease.
func TaskID(leaseID, service string, replica int) string {
	return leaseID + "-" + service + "-" + strconv.Itoa(replica)
}

// ValidateID checks that id is usable as a task or lease id.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("id %q: must match %s", id, IDPattern)
	}
	return nil
}

// Validate checks the fields every executor relies on.
func (t Task) Validate() error {
	if err := ValidateID(t.ID); err != nil {
		return fmt.Errorf("task: %w", err)
	}
	if err := ValidateID(t.LeaseID); err != nil {
		return fmt.Errorf("task %s: lease: %w", t.ID, err)
	}
	r := t.Resources
	if r.CPUMilli < 0 || r.MemoryBytes < 0 || r.StorageBytes < 0 || r.PidsLimit < 0 {
		return fmt.Errorf("task %s: resources must be >= 0 (got %+v)", t.ID, r)
	}
	if t.TimeLimit < 0 {
		return fmt.Errorf("task %s: time limit must be >= 0 (got %s)", t.ID, t.TimeLimit)
	}
	for _, p := range t.Ports {
		if p.ContainerPort < 1 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return fmt.Errorf("task %s: port %+v out of range", t.ID, p)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("task %s: port %d: protocol must be tcp or udp (got %q)", t.ID, p.ContainerPort, p.Protocol)
		}
	}
	if t.NetNS != "" && (!strings.HasPrefix(t.NetNS, "/") || len(t.Ports) > 0) {
		return fmt.Errorf("task %s: netns %q: must be an absolute path, for a task without ports", t.ID, t.NetNS)
	}
	for _, e := range t.Env {
		if len(e) == 0 || e[0] == '=' || !strings.Contains(e, "=") {
			return fmt.Errorf("task %s: env %q: must be KEY=VALUE", t.ID, e)
		}
	}
	return nil
}
