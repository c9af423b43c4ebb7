// Package process runs tasks as plain host processes in a per-lease work dir, with limits but without isolation.
//
// It is the development executor: a task runs as the daemon's user, sees the
// whole host filesystem and network, and can see other tasks. It therefore
// refuses to be constructed unless Config.AllowUnisolated is set.
//
// Limits. Where Config.CgroupParent names a writable cgroup v2 directory, each
// task gets its own child cgroup (memory.max, cpu.max, pids.max) that the
// process is cloned into (no window without limits), and an OOM kill is read
// from memory.events. Otherwise the limits are rlimits set with prlimit(2) on
// the child right after it starts:
//   - RLIMIT_DATA = Resources.MemoryBytes. Not RLIMIT_AS: Go, JVM and CUDA
//     programs reserve far more address space than they use and die at start
//     under RLIMIT_AS. A program that passes RLIMIT_DATA sees allocations fail;
//     it is reported OOMKilled when it then exits non-zero with a peak RSS of at
//     least half its limit or an out-of-memory message at the end of its log
//     (a heuristic: the kernel gives no OOM signal for rlimits). A task the
//     executor stopped is never OOM, and a peak RSS no higher than the daemon's
//     own is ignored (Go starts children with vfork, and Linux counts the
//     parent's high-water mark in the child's ru_maxrss).
//   - RLIMIT_CPU = TimeLimit × CPUMilli/1000 (+1 s), a total not a rate: rlimits
//     cannot throttle.
//   - RLIMIT_NOFILE = Config.MaxOpenFiles.
//
// NB: rlimits are applied a few microseconds after the child starts, and they
// are per process: a task that forks escapes the memory limit per child.
// PidsLimit needs cgroups and is ignored without them.
//
// Each task runs in its own process group, so Stop and Destroy reach its
// children. The time limit is a timer in the executor that kills the group.
//
// State. <Dir>/tasks/<task>/ holds state.json (pid and the kernel's start time
// of the pid, so a recycled pid is never taken for the task), log (stdout and
// stderr) and exit.json once the exit status is known. <Dir>/leases/<lease>/
// holds in/ and out/. Recover reads the task dirs back.
//
// Network namespaces. LeaseNetNS makes a lease a namespace of its own under
// /run/netns (named kp<hash of Dir>-<lease>); its tasks with Task.NetNS start
// inside it (setns on a locked thread, then fork). Destroy of the lease's last
// task removes it; Recover removes those of leases without a task.
package process

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/hostdir"
)

// Driver is the name the executor reports.
const Driver = "process"

// Config configures the process executor. The fields with a toml key are
// its settings in the provider daemon's config, [executor.process].
type Config struct {
	// AllowUnisolated must be true to construct the executor: it runs tenant
	// code as host processes, which can read host files and reach the host's
	// network. Enable it only for development or fully trusted workloads.
	AllowUnisolated bool `toml:"allow_unisolated"`
	// Dir holds per-task state and logs and per-lease work dirs. Required;
	// the daemon sets <state_dir>/exec.
	Dir string `toml:"-"`
	// CgroupParent is a cgroup v2 directory (e.g. /sys/fs/cgroup/kiln) under
	// which each task gets a child cgroup with its limits. It must have the
	// memory, cpu and pids controllers enabled in cgroup.subtree_control.
	// Empty uses rlimits only.
	CgroupParent string `toml:"cgroup_parent"`
	// MaxOpenFiles caps each task's open file descriptors (RLIMIT_NOFILE).
	MaxOpenFiles uint64 `toml:"max_open_files"`
	// PollInterval is how often a followed log or a recovered task is polled.
	PollInterval time.Duration `toml:"poll_interval"`
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger `toml:"-"`
}

// DefaultConfig returns a config with every field but Dir and AllowUnisolated set.
func DefaultConfig() Config {
	return Config{
		MaxOpenFiles: 4096,
		// 100 ms: log followers see new lines promptly without spinning.
		PollInterval: 100 * time.Millisecond,
	}
}

// Validate checks the config, including the explicit opt-in.
func (c Config) Validate() error {
	if !c.AllowUnisolated {
		return fmt.Errorf("%w: the process executor does not isolate tasks from the host or each other; set AllowUnisolated to use it", executor.ErrNotEnabled)
	}
	if c.Dir == "" {
		return errors.New("process executor: dir: must be set")
	}
	if c.MaxOpenFiles == 0 {
		return errors.New("process executor: max open files: must be > 0")
	}
	if c.PollInterval <= 0 {
		return fmt.Errorf("process executor: poll interval: must be > 0 (got %s)", c.PollInterval)
	}
	if c.CgroupParent != "" {
		if _, err := os.Stat(filepath.Join(c.CgroupParent, "cgroup.subtree_control")); err != nil {
			return fmt.Errorf("process executor: cgroup parent %s: not a cgroup v2 directory: %w", c.CgroupParent, err)
		}
	}
	return nil
}

// Executor runs tasks as host processes. Create it with New.
type Executor struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	tasks map[string]*task
}

var (
	_ executor.Executor      = (*Executor)(nil)
	_ executor.Namespacer    = (*Executor)(nil)
	_ executor.NetNSReleaser = (*Executor)(nil)
)

// task is the executor's view of one task.
type task struct {
	st   state
	done chan struct{} // closed once res is set

	// parentRSS is this process's own peak RSS (bytes) just after the child started.
	// Go starts children with vfork (CLONE_VM): at exec Linux folds the shared
	// memory's high-water mark, this process's, into the child's ru_maxrss, so a
	// child's peak at or below parentRSS says nothing of the child itself.
	parentRSS int64

	mu       sync.Mutex
	res      executor.ExitResult
	timedOut bool
	stopped  bool // Stop or Destroy signalled it: its exit is not a failure of its own
	timer    *time.Timer
}

// state is what state.json holds.
type state struct {
	TaskID      string        `json:"task_id"`
	LeaseID     string        `json:"lease_id"`
	PID         int           `json:"pid"`
	StartTicks  uint64        `json:"start_ticks"` // field 22 of /proc/<pid>/stat
	StartedAt   time.Time     `json:"started_at"`
	TimeLimit   time.Duration `json:"time_limit"`
	MemoryBytes int64         `json:"memory_bytes"`
	Cgroup      string        `json:"cgroup,omitempty"`
	Ports       map[int]int   `json:"ports,omitempty"`
}

// exitRecord is what exit.json holds.
type exitRecord struct {
	ExitCode   int       `json:"exit_code"`
	OOMKilled  bool      `json:"oom_killed"`
	Err        string    `json:"err,omitempty"`
	TimedOut   bool      `json:"timed_out,omitempty"`
	Unknown    bool      `json:"unknown,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
}

// New returns a process executor. It returns an error wrapping
// executor.ErrNotEnabled unless cfg.AllowUnisolated is set.
func New(cfg Config) (*Executor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{tasksDir(cfg.Dir), leasesDir(cfg.Dir)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create process executor dir %s: %w", d, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Executor{cfg: cfg, log: log.With("executor", Driver), tasks: map[string]*task{}}, nil
}

func tasksDir(root string) string  { return filepath.Join(root, "tasks") }
func leasesDir(root string) string { return filepath.Join(root, "leases") }

func (e *Executor) taskDir(id string) string   { return filepath.Join(tasksDir(e.cfg.Dir), id) }
func (e *Executor) leaseDir(id string) string  { return filepath.Join(leasesDir(e.cfg.Dir), id) }
func (e *Executor) inDir(lease string) string  { return filepath.Join(e.leaseDir(lease), "in") }
func (e *Executor) outDir(lease string) string { return filepath.Join(e.leaseDir(lease), "out") }

// nsPrefix starts the names of this executor's lease namespaces: "kp", a hash
// of Dir (two executors on one host never share or sweep each other's), "-".
func (e *Executor) nsPrefix() string {
	h := sha256.Sum256([]byte(e.cfg.Dir))
	return "kp" + hex.EncodeToString(h[:4]) + "-"
}

// nsName names the lease's namespace: the prefix and the lease id, or a hash
// of the id where that would be too long a name.
func (e *Executor) nsName(lease string) string {
	if n := e.nsPrefix() + lease; len(n) <= 64 {
		return n
	}
	h := sha256.Sum256([]byte(lease))
	return e.nsPrefix() + "h" + hex.EncodeToString(h[:12])
}

// LeaseNetNS creates the lease's network namespace (loopback only) under
// netns.RunDir unless it exists, and returns its path. It needs root.
func (e *Executor) LeaseNetNS(_ context.Context, leaseID string) (string, error) {
	if err := executor.ValidateID(leaseID); err != nil {
		return "", fmt.Errorf("lease netns: %w", err)
	}
	if why := netns.Available(); why != "" {
		return "", fmt.Errorf("lease netns of %s: %w: %s", leaseID, executor.ErrUnsupported, why)
	}
	p, err := netns.Add(e.nsName(leaseID))
	if err != nil {
		return "", fmt.Errorf("lease netns of %s: %w", leaseID, err)
	}
	return p, nil
}

// ReleaseLeaseNetNS removes the lease's namespace unless a task of the lease
// still runs in it.
func (e *Executor) ReleaseLeaseNetNS(_ context.Context, leaseID string) error {
	if err := executor.ValidateID(leaseID); err != nil {
		return fmt.Errorf("release lease netns: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tk := range e.tasks {
		if tk.st.LeaseID != leaseID {
			continue
		}
		select {
		case <-tk.done:
		default:
			return nil
		}
	}
	if err := netns.Delete(e.nsName(leaseID)); err != nil {
		return fmt.Errorf("release netns of lease %s: %w", leaseID, err)
	}
	return nil
}

// Fingerprint reports the kernel and the limit mechanism in use.
func (e *Executor) Fingerprint(context.Context) (executor.Fingerprint, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return executor.Fingerprint{}, fmt.Errorf("uname: %w", err)
	}
	limits := "rlimit"
	if e.cfg.CgroupParent != "" {
		limits = "cgroup2"
	}
	return executor.Fingerprint{
		Driver:   Driver,
		Version:  unix.ByteSliceToString(uts.Release[:]),
		Isolated: false,
		// NB: a host process sees the host's GPUs; CUDA_VISIBLE_DEVICES names the
		// ones the task was given (advisory, like everything here).
		GPUs:       true,
		Attributes: map[string]string{"limits": limits},
	}, nil
}

// Start runs t.Command with t.Args in the lease's work dir. The environment is
// t.Env plus PATH, HOME (the work dir), KILN_IN, KILN_OUT, KILN_TASK_ID,
// KILN_LEASE_ID and KILN_PORT_<n> per port; nothing of the daemon's own.
// GPUs are passed as CUDA_VISIBLE_DEVICES, which is advisory only. Ports are
// not mapped: the program binds ContainerPort itself (HostPort must be 0 or
// equal), and binding it to 127.0.0.1 only is up to the program. A
// KILN_HOSTFILE under InPath is rewritten to the same file in KILN_IN. With
// t.NetNS (the lease's LeaseNetNS) the process starts inside that network
// namespace.
func (e *Executor) Start(ctx context.Context, t executor.Task) (executor.Handle, error) {
	if err := t.Validate(); err != nil {
		return executor.Handle{}, err
	}
	if len(t.Command) == 0 {
		return executor.Handle{}, fmt.Errorf("start %s: command: must be set", t.ID)
	}
	ports := map[int]int{}
	for _, p := range t.Ports {
		// NB: a host process binds its port itself; there is nothing to map.
		if p.HostPort != 0 && p.HostPort != p.ContainerPort {
			return executor.Handle{}, fmt.Errorf("start %s: port %d→%d: %w: a process binds its own port", t.ID, p.ContainerPort, p.HostPort, executor.ErrUnsupported)
		}
		ports[p.ContainerPort] = p.ContainerPort
	}
	if t.NetNS != "" {
		// NB: only the lease's own namespace: a task must never join another's.
		if want := netns.Path(e.nsName(t.LeaseID)); t.NetNS != want || !netns.Exists(want) {
			return executor.Handle{}, fmt.Errorf("start %s: netns %s: not lease %s's namespace (LeaseNetNS gives %s)", t.ID, t.NetNS, t.LeaseID, want)
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.tasks[t.ID]; ok {
		return executor.Handle{}, fmt.Errorf("start %s: %w", t.ID, executor.ErrTaskExists)
	}
	tdir := e.taskDir(t.ID)
	if err := os.Mkdir(tdir, 0o750); err != nil {
		if errors.Is(err, os.ErrExist) {
			return executor.Handle{}, fmt.Errorf("start %s: %w (left by an earlier run; Recover or Destroy it)", t.ID, executor.ErrTaskExists)
		}
		return executor.Handle{}, fmt.Errorf("create task dir for %s: %w", t.ID, err)
	}
	h, tk, err := e.start(t, tdir, ports)
	if err != nil {
		os.RemoveAll(tdir)
		return executor.Handle{}, err
	}
	e.tasks[t.ID] = tk
	e.log.Info("task started", "task", t.ID, "lease", t.LeaseID, "pid", tk.st.PID)
	return h, nil
}

func (e *Executor) start(t executor.Task, tdir string, ports map[int]int) (executor.Handle, *task, error) {
	in, out := e.inDir(t.LeaseID), e.outDir(t.LeaseID)
	for _, d := range []string{in, out} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return executor.Handle{}, nil, fmt.Errorf("create work dir for %s: %w", t.ID, err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(tdir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return executor.Handle{}, nil, fmt.Errorf("create log for %s: %w", t.ID, err)
	}
	defer logf.Close() // the child has its own copy

	cmd := exec.Command(t.Command[0], append(append([]string{}, t.Command[1:]...), t.Args...)...)
	cmd.Dir = e.leaseDir(t.LeaseID)
	cmd.Env = e.env(t, in, out, ports)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var cgroup string
	if e.cfg.CgroupParent != "" {
		cgroup = filepath.Join(e.cfg.CgroupParent, "kiln-"+t.ID)
		fd, err := makeCgroup(cgroup, t.Resources)
		if err != nil {
			return executor.Handle{}, nil, fmt.Errorf("create cgroup for %s: %w", t.ID, err)
		}
		defer fd.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(fd.Fd())
	}

	startCmd := cmd.Start
	if t.NetNS != "" {
		// NB: the child is cloned from the thread netns.Do moved into the
		// namespace, so it starts there, before it runs any of its code.
		startCmd = func() error { return netns.Do(t.NetNS, cmd.Start) }
	}
	if err := startCmd(); err != nil {
		removeCgroup(cgroup)
		return executor.Handle{}, nil, fmt.Errorf("start process for %s: %w", t.ID, err)
	}
	pid := cmd.Process.Pid
	if err := e.setRlimits(pid, t); err != nil {
		killGroup(pid, syscall.SIGKILL)
		cmd.Wait()
		removeCgroup(cgroup)
		return executor.Handle{}, nil, fmt.Errorf("set limits for %s: %w", t.ID, err)
	}
	ticks, _ := startTicks(pid) // the child cannot be reaped yet: we have not waited
	st := state{
		TaskID: t.ID, LeaseID: t.LeaseID, PID: pid, StartTicks: ticks,
		StartedAt: time.Now(), TimeLimit: t.TimeLimit, MemoryBytes: t.Resources.MemoryBytes,
		Cgroup: cgroup, Ports: ports,
	}
	if err := writeJSON(filepath.Join(tdir, "state.json"), st); err != nil {
		killGroup(pid, syscall.SIGKILL)
		cmd.Wait()
		removeCgroup(cgroup)
		return executor.Handle{}, nil, fmt.Errorf("write state for %s: %w", t.ID, err)
	}
	tk := &task{st: st, done: make(chan struct{}), parentRSS: selfPeakRSS()}
	e.armTimeLimit(tk)
	go e.reap(tk, cmd)
	return e.handle(tk, false), tk, nil
}

func (e *Executor) env(t executor.Task, in, out string, ports map[int]int) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + e.leaseDir(t.LeaseID),
		"TMPDIR=" + e.leaseDir(t.LeaseID),
	}
	for _, kv := range t.Env {
		// The hostfile's path names it as a container sees its inputs.
		if v, ok := strings.CutPrefix(kv, executor.EnvHostfile+"="+executor.InPath+"/"); ok {
			kv = executor.EnvHostfile + "=" + filepath.Join(in, v)
		}
		env = append(env, kv)
	}
	env = append(env,
		executor.EnvIn+"="+in,
		executor.EnvOut+"="+out,
		executor.EnvTaskID+"="+t.ID,
		executor.EnvLeaseID+"="+t.LeaseID,
	)
	for c := range ports {
		env = append(env, "KILN_PORT_"+strconv.Itoa(c)+"="+strconv.Itoa(c))
	}
	if len(t.Resources.GPUDeviceUUIDs) > 0 {
		env = append(env, "CUDA_VISIBLE_DEVICES="+strings.Join(t.Resources.GPUDeviceUUIDs, ","))
	}
	return env
}

func (e *Executor) setRlimits(pid int, t executor.Task) error {
	set := func(name string, res int, v uint64) error {
		lim := unix.Rlimit{Cur: v, Max: v}
		if err := unix.Prlimit(pid, res, &lim, nil); err != nil {
			return fmt.Errorf("prlimit %s=%d: %w", name, v, err)
		}
		return nil
	}
	if err := set("RLIMIT_NOFILE", unix.RLIMIT_NOFILE, e.cfg.MaxOpenFiles); err != nil {
		return err
	}
	if m := t.Resources.MemoryBytes; m > 0 {
		if err := set("RLIMIT_DATA", unix.RLIMIT_DATA, uint64(m)); err != nil {
			return err
		}
	}
	if t.TimeLimit > 0 && t.Resources.CPUMilli > 0 {
		secs := uint64(t.TimeLimit.Seconds()*float64(t.Resources.CPUMilli)/1000) + 1
		if err := set("RLIMIT_CPU", unix.RLIMIT_CPU, secs); err != nil {
			return err
		}
	}
	return nil
}

// armTimeLimit kills the task's group once it has run for its time limit,
// counted from StartedAt so that a recovered task keeps its deadline.
func (e *Executor) armTimeLimit(tk *task) {
	if tk.st.TimeLimit <= 0 {
		return
	}
	left := time.Until(tk.st.StartedAt.Add(tk.st.TimeLimit))
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.timer = time.AfterFunc(left, func() {
		tk.mu.Lock()
		tk.timedOut = true
		tk.mu.Unlock()
		e.log.Info("time limit reached", "task", tk.st.TaskID, "limit", tk.st.TimeLimit)
		if alive(tk.st.PID, tk.st.StartTicks) {
			killGroup(tk.st.PID, syscall.SIGKILL)
		}
	})
}

// reap waits for a child of this executor and records how it ended.
func (e *Executor) reap(tk *task, cmd *exec.Cmd) {
	err := cmd.Wait()
	res := executor.ExitResult{ExitCode: cmd.ProcessState.ExitCode(), FinishedAt: time.Now()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Err = fmt.Errorf("killed by signal %s", ws.Signal())
	} else if err != nil && !isExitError(err) {
		res.Err = fmt.Errorf("wait for %s: %w", tk.st.TaskID, err)
	}
	tk.mu.Lock()
	stopped := tk.stopped
	tk.mu.Unlock()
	if res.ExitCode != 0 && !stopped {
		res.OOMKilled, res.Err = e.oomVerdict(tk, cmd.ProcessState, res.Err)
	}
	e.finish(tk, res)
}

// selfPeakRSS is this process's peak RSS in bytes (0 if unknown).
func selfPeakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// oomVerdict decides whether a failed task ran out of memory.
func (e *Executor) oomVerdict(tk *task, ps *os.ProcessState, err error) (bool, error) {
	if tk.st.Cgroup != "" {
		if n := cgroupOOMKills(tk.st.Cgroup); n > 0 {
			return true, fmt.Errorf("killed by the cgroup OOM killer (memory.max=%d)", tk.st.MemoryBytes)
		}
		return false, err
	}
	if tk.st.MemoryBytes <= 0 || ps == nil {
		return false, err
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return false, err
	}
	peak := ru.Maxrss * 1024 // kilobytes on Linux
	if peak <= tk.parentRSS {
		peak = 0 // the daemon's own high-water mark, not the child's: unknown
	}
	if (peak > 0 && peak >= tk.st.MemoryBytes/2) || e.logSaysOOM(tk.st.TaskID) {
		rss := "peak RSS unknown, its log says out of memory"
		if peak > 0 {
			rss = fmt.Sprintf("peak RSS %d bytes", peak)
		}
		return true, fmt.Errorf("exited after reaching its memory limit (RLIMIT_DATA=%d bytes, %s)", tk.st.MemoryBytes, rss)
	}
	return false, err
}

// oomMarkers are what common runtimes print when an allocation fails.
var oomMarkers = []string{
	"out of memory",          // Go runtime, CUDA, glibc
	"cannot allocate memory", // strerror(ENOMEM)
	"memoryerror",            // Python
	"std::bad_alloc",         // C++
	"outofmemoryerror",       // JVM
	"failed to allocate",     // PyTorch, Rust
}

// logSaysOOM reports whether the end of the task's log shows a failed allocation.
func (e *Executor) logSaysOOM(id string) bool {
	f, err := os.Open(filepath.Join(e.taskDir(id), "log"))
	if err != nil {
		return false
	}
	defer f.Close()
	// 8 KiB: a runtime's OOM message and the stack trace after it.
	const tail = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		f.Seek(fi.Size()-tail, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, tail))
	low := strings.ToLower(string(b))
	for _, m := range oomMarkers {
		if strings.Contains(low, m) {
			return true
		}
	}
	return false
}

// finish records the result, in memory and in exit.json, and wakes waiters.
func (e *Executor) finish(tk *task, res executor.ExitResult) {
	tk.mu.Lock()
	if tk.timer != nil {
		tk.timer.Stop()
	}
	if tk.timedOut {
		res.ExitCode = -1
		res.Err = fmt.Errorf("%w (%s)", executor.ErrTimeLimit, tk.st.TimeLimit)
	}
	rec := exitRecord{ExitCode: res.ExitCode, OOMKilled: res.OOMKilled, TimedOut: tk.timedOut, FinishedAt: res.FinishedAt}
	if res.Err != nil {
		rec.Err = res.Err.Error()
		rec.Unknown = errors.Is(res.Err, executor.ErrExitUnknown)
	}
	tk.res = res
	tk.mu.Unlock()
	// Best effort: a task destroyed meanwhile has no dir left to write to.
	if _, err := os.Stat(e.taskDir(tk.st.TaskID)); err == nil {
		if err := writeJSON(filepath.Join(e.taskDir(tk.st.TaskID), "exit.json"), rec); err != nil {
			e.log.Warn("record exit", "task", tk.st.TaskID, "err", err)
		}
	}
	removeCgroup(tk.st.Cgroup)
	e.log.Info("task exited", "task", tk.st.TaskID, "code", res.ExitCode, "oom", res.OOMKilled, "err", res.Err)
	close(tk.done)
}

func (rec exitRecord) result(limit time.Duration) executor.ExitResult {
	res := executor.ExitResult{ExitCode: rec.ExitCode, OOMKilled: rec.OOMKilled, FinishedAt: rec.FinishedAt}
	switch {
	case rec.TimedOut:
		res.Err = fmt.Errorf("%w (%s)", executor.ErrTimeLimit, limit)
	case rec.Unknown:
		res.Err = fmt.Errorf("%w: %s", executor.ErrExitUnknown, strings.TrimPrefix(rec.Err, executor.ErrExitUnknown.Error()+": "))
	case rec.Err != "":
		res.Err = errors.New(rec.Err)
	}
	return res
}

func (e *Executor) handle(tk *task, exited bool) executor.Handle {
	return executor.Handle{
		TaskID:    tk.st.TaskID,
		LeaseID:   tk.st.LeaseID,
		Driver:    Driver,
		Ref:       strconv.Itoa(tk.st.PID),
		StartedAt: tk.st.StartedAt,
		Endpoints: endpoints(tk.st.Ports),
		Exited:    exited,
	}
}

// endpoints are where the daemon reaches a task's ports: the host's
// loopback, where the program binds them itself.
func endpoints(ports map[int]int) map[int]string {
	if len(ports) == 0 {
		return nil
	}
	out := make(map[int]string, len(ports))
	for c, h := range ports {
		out[c] = net.JoinHostPort("127.0.0.1", strconv.Itoa(h))
	}
	return out
}

// PutInput writes the input into the lease's in/ dir, which the lease's
// tasks find as KILN_IN.
func (e *Executor) PutInput(_ context.Context, leaseID, name string, r io.Reader) error {
	if err := executor.ValidateID(leaseID); err != nil {
		return fmt.Errorf("put input: lease: %w", err)
	}
	if err := hostdir.PutFile(e.inDir(leaseID), name, r); err != nil {
		return fmt.Errorf("put input %s of lease %s: %w", name, leaseID, err)
	}
	return nil
}

// Outputs reads the lease's out/ dir, KILN_OUT of its tasks.
func (e *Executor) Outputs(_ context.Context, leaseID string) (fs.ReadDirFS, error) {
	if err := executor.ValidateID(leaseID); err != nil {
		return nil, fmt.Errorf("outputs: lease: %w", err)
	}
	return hostdir.FS(e.outDir(leaseID)), nil
}

// ClearData empties the lease's in/ and out/ dirs.
func (e *Executor) ClearData(_ context.Context, leaseID string) error {
	if err := executor.ValidateID(leaseID); err != nil {
		return fmt.Errorf("clear data: lease: %w", err)
	}
	for _, d := range []string{e.inDir(leaseID), e.outDir(leaseID)} {
		if err := hostdir.Clear(d); err != nil {
			return fmt.Errorf("clear data of lease %s: %w", leaseID, err)
		}
	}
	return nil
}

func (e *Executor) get(id string) (*task, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tk, ok := e.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %s: %w", id, executor.ErrTaskNotFound)
	}
	return tk, nil
}

// Wait blocks until the task exits or ctx ends.
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

// Stop sends SIGTERM to the task's process group and SIGKILL after grace.
func (e *Executor) Stop(ctx context.Context, id string, grace time.Duration) error {
	tk, err := e.get(id)
	if err != nil {
		return err
	}
	return e.stop(ctx, tk, grace)
}

func (e *Executor) stop(ctx context.Context, tk *task, grace time.Duration) error {
	select {
	case <-tk.done:
		return nil
	default:
	}
	tk.mu.Lock()
	tk.stopped = true
	tk.mu.Unlock()
	if alive(tk.st.PID, tk.st.StartTicks) {
		killGroup(tk.st.PID, syscall.SIGTERM)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-tk.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if alive(tk.st.PID, tk.st.StartTicks) {
		killGroup(tk.st.PID, syscall.SIGKILL)
	}
	select {
	case <-tk.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", tk.st.TaskID, ctx.Err())
	}
}

// Destroy kills the task and removes its state, logs and cgroup, and the
// lease's work dir once no other task of the lease is known.
func (e *Executor) Destroy(ctx context.Context, id string) error {
	tk, err := e.get(id)
	if err != nil {
		return err
	}
	if err := e.stop(ctx, tk, 0); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	// NB: the leader is gone but children it left in its group may not be;
	// the pgid cannot be reused while any of them lives. Never the bare pid:
	// that may be recycled by now.
	_ = syscall.Kill(-tk.st.PID, syscall.SIGKILL)
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.tasks, id)
	if err := os.RemoveAll(e.taskDir(id)); err != nil {
		return fmt.Errorf("remove task dir of %s: %w", id, err)
	}
	for _, other := range e.tasks {
		if other.st.LeaseID == tk.st.LeaseID {
			return nil
		}
	}
	if err := os.RemoveAll(e.leaseDir(tk.st.LeaseID)); err != nil {
		return fmt.Errorf("remove work dir of lease %s: %w", tk.st.LeaseID, err)
	}
	if err := netns.Delete(e.nsName(tk.st.LeaseID)); err != nil {
		return fmt.Errorf("remove network namespace of lease %s: %w", tk.st.LeaseID, err)
	}
	e.log.Info("task destroyed", "task", id)
	return nil
}

// Recover re-attaches to the tasks in Dir. A task whose process still runs
// (same pid, same kernel start time) is watched until it exits; one that
// ended gets the status its exit.json recorded, or ErrExitUnknown. Task dirs
// without a readable state.json and lease dirs without a task are removed.
func (e *Executor) Recover(ctx context.Context) ([]executor.Handle, error) {
	entries, err := os.ReadDir(tasksDir(e.cfg.Dir))
	if err != nil {
		return nil, fmt.Errorf("list task dirs: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var hs []executor.Handle
	for _, ent := range entries {
		id := ent.Name()
		if tk, ok := e.tasks[id]; ok {
			hs = append(hs, e.handle(tk, isDone(tk)))
			continue
		}
		var st state
		if err := readJSON(filepath.Join(e.taskDir(id), "state.json"), &st); err != nil || st.TaskID != id {
			e.log.Warn("removing orphan task dir", "task", id, "err", err)
			if err := os.RemoveAll(e.taskDir(id)); err != nil {
				return hs, fmt.Errorf("remove orphan task dir %s: %w", id, err)
			}
			continue
		}
		tk := &task{st: st, done: make(chan struct{})}
		e.tasks[id] = tk
		running := alive(st.PID, st.StartTicks)
		if running {
			e.armTimeLimit(tk)
			go e.watch(tk)
		} else {
			e.finish(tk, e.recordedExit(tk))
		}
		hs = append(hs, e.handle(tk, !running))
		e.log.Info("task recovered", "task", id, "running", running)
	}
	leases, err := os.ReadDir(leasesDir(e.cfg.Dir))
	if err != nil {
		return hs, fmt.Errorf("list lease dirs: %w", err)
	}
	for _, l := range leases {
		if !e.leaseHasTask(l.Name()) {
			e.log.Warn("removing orphan lease dir", "lease", l.Name())
			if err := os.RemoveAll(e.leaseDir(l.Name())); err != nil {
				return hs, fmt.Errorf("remove orphan lease dir %s: %w", l.Name(), err)
			}
		}
	}
	return hs, e.removeOrphanNetNS()
}

// removeOrphanNetNS removes this executor's lease namespaces whose lease has no task.
func (e *Executor) removeOrphanNetNS() error {
	names, err := netns.List(e.nsPrefix())
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, tk := range e.tasks {
		live[e.nsName(tk.st.LeaseID)] = true
	}
	for _, n := range names {
		if !live[n] {
			e.log.Warn("removing orphan lease network namespace", "netns", n)
			if err := netns.Delete(n); err != nil {
				return fmt.Errorf("remove orphan network namespace %s: %w", n, err)
			}
		}
	}
	return nil
}

func (e *Executor) leaseHasTask(lease string) bool {
	for _, tk := range e.tasks {
		if tk.st.LeaseID == lease {
			return true
		}
	}
	return false
}

func isDone(tk *task) bool {
	select {
	case <-tk.done:
		return true
	default:
		return false
	}
}

// watch polls a recovered task that is not our child until it is gone.
func (e *Executor) watch(tk *task) {
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for range t.C {
		if !alive(tk.st.PID, tk.st.StartTicks) {
			break
		}
	}
	e.finish(tk, e.recordedExit(tk))
}

// recordedExit reads exit.json of a task that is gone. NB: its parent may be
// an earlier executor in this very process still writing it; give it a
// moment before calling the status lost.
func (e *Executor) recordedExit(tk *task) executor.ExitResult {
	path := filepath.Join(e.taskDir(tk.st.TaskID), "exit.json")
	deadline := time.Now().Add(time.Second)
	for {
		var rec exitRecord
		if err := readJSON(path, &rec); err == nil {
			return rec.result(tk.st.TimeLimit)
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(e.cfg.PollInterval / 4)
	}
	res := executor.ExitResult{ExitCode: -1, FinishedAt: time.Now()}
	tk.mu.Lock()
	timedOut := tk.timedOut
	tk.mu.Unlock()
	if timedOut {
		return res // finish sets ErrTimeLimit
	}
	res.Err = fmt.Errorf("%w: process %d ended while not watched by this executor", executor.ErrExitUnknown, tk.st.PID)
	return res
}

// Stats sums CPU time and resident memory over the task's process group.
func (e *Executor) Stats(ctx context.Context, id string) (executor.Stats, error) {
	tk, err := e.get(id)
	if err != nil {
		return executor.Stats{}, err
	}
	s := executor.Stats{Time: time.Now()}
	if isDone(tk) || !alive(tk.st.PID, tk.st.StartTicks) {
		return s, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return s, fmt.Errorf("stats of %s: list /proc: %w", id, err)
	}
	pageSize := uint64(os.Getpagesize())
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		f, err := procStat(pid)
		if err != nil || len(f) < 24 || f[4] != strconv.Itoa(tk.st.PID) { // field 5: pgrp
			continue
		}
		utime, _ := strconv.ParseUint(f[13], 10, 64)
		stime, _ := strconv.ParseUint(f[14], 10, 64)
		rss, _ := strconv.ParseUint(f[23], 10, 64)
		// NB: USER_HZ is 100 on every Linux architecture Go supports.
		s.CPUNanos += (utime + stime) * uint64(10*time.Millisecond)
		s.MemoryBytes += rss * pageSize
		s.Pids++
	}
	return s, nil
}

// Logs returns the task's log file; with follow, the reader waits for more
// until the task exits and the file is drained.
func (e *Executor) Logs(ctx context.Context, id string, follow bool) (io.ReadCloser, error) {
	tk, err := e.get(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(e.taskDir(id), "log"))
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", id, err)
	}
	if !follow {
		return f, nil
	}
	return &follower{f: f, done: tk.done, poll: e.cfg.PollInterval, closed: make(chan struct{})}, nil
}

// follower tails a log file until the task is done.
type follower struct {
	f         *os.File
	done      <-chan struct{}
	poll      time.Duration
	closeOnce sync.Once
	closed    chan struct{}
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		select {
		case <-r.done:
			// The writer is gone: what is in the file now is all there is.
			n, err := r.f.Read(p)
			if n > 0 {
				return n, nil
			}
			return 0, err
		case <-r.closed:
			return 0, os.ErrClosed
		case <-time.After(r.poll):
		}
	}
}

func (r *follower) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return r.f.Close()
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// killGroup signals the process group led by pid, or pid alone if it leads
// no group; a gone process is not an error.
func killGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(pid, sig)
	}
}

// procStat returns the fields of /proc/<pid>/stat, the command name (which
// may hold spaces) collapsed into one field.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return append([]string{s[:open-1], s[open+1 : close]}, strings.Fields(s[close+1:])...), nil
}

// startTicks returns when pid started, in clock ticks since boot.
func startTicks(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 22 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[21], 10, 64)
}

// alive reports whether pid runs and is the process that started at ticks
// (not a recycled pid); a zombie counts as gone.
func alive(pid int, ticks uint64) bool {
	f, err := procStat(pid)
	if err != nil || len(f) < 22 {
		return false
	}
	if f[2] == "Z" || f[2] == "X" {
		return false
	}
	t, err := strconv.ParseUint(f[21], 10, 64)
	return err == nil && (ticks == 0 || t == ticks)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// makeCgroup creates a cgroup v2 directory with r's limits and returns it
// opened, for clone(2) to place the child in.
func makeCgroup(dir string, r executor.Resources) (*os.File, error) {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	write := func(file, v string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			return fmt.Errorf("write %s=%s: %w", file, v, err)
		}
		return nil
	}
	var err error
	if r.MemoryBytes > 0 {
		err = errors.Join(err, write("memory.max", strconv.FormatInt(r.MemoryBytes, 10)), write("memory.swap.max", "0"))
	}
	if r.CPUMilli > 0 {
		// 100 ms period, the kernel's default: quota is CPUMilli/1000 of it per core.
		err = errors.Join(err, write("cpu.max", strconv.FormatInt(r.CPUMilli*100, 10)+" 100000"))
	}
	if r.PidsLimit > 0 {
		err = errors.Join(err, write("pids.max", strconv.FormatInt(r.PidsLimit, 10)))
	}
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	return f, nil
}

func removeCgroup(dir string) {
	if dir != "" {
		_ = os.Remove(dir) // fails while processes remain; they are killed first
	}
}

// cgroupOOMKills returns the oom_kill count of memory.events.
func cgroupOOMKills(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "memory.events"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}
