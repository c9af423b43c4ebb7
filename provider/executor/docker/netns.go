package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/scratchimage"
)

// Lease network namespaces (executor.Namespacer). A lease's namespace is
// owned by its pause container, <ns>-<lease>-pause, labelled kiln.role=pause:
// the pause program (pause.go) alone in a FROM-scratch image built in memory
// and loaded untagged, network mode none (loopback only), no capabilities,
// read-only, as nobody. LeaseNetNS returns /proc/<its pid>/ns/net, so the
// provider daemon must see the Docker host's processes (run on the host, or
// in its pid namespace). A task with Task.NetNS joins the namespace with
// network mode container:<pause>. The pause container goes with the lease's
// last task (Destroy), with ReleaseLeaseNetNS once none of its tasks runs,
// and in Recover when its lease has no task.

// LabelRole marks the executor's containers that are not tasks.
const LabelRole = "kiln.role"

// rolePause is LabelRole's value on a lease's pause container.
const rolePause = "pause"

var (
	_ executor.Namespacer    = (*Executor)(nil)
	_ executor.NetNSReleaser = (*Executor)(nil)
)

func (e *Executor) pauseName(lease string) string { return e.cfg.Namespace + "-" + lease + "-pause" }

// errNoPause is returned by pause for a lease without a running pause container.
var errNoPause = errors.New("no running pause container")

// pause returns the ID of the lease's pause container and the path of its
// network namespace; errNoPause when it has none or it is not running (the
// ID is then set if the container exists).
func (e *Executor) pause(ctx context.Context, lease string) (id, path string, err error) {
	ins, err := e.cli.ContainerInspect(ctx, e.pauseName(lease), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", "", errNoPause
	}
	if err != nil {
		return "", "", fmt.Errorf("inspect pause container of lease %s: %w", lease, err)
	}
	c := ins.Container
	if c.Config == nil || c.Config.Labels[LabelRole] != rolePause || c.Config.Labels[LabelNamespace] != e.cfg.Namespace {
		return "", "", fmt.Errorf("container %s is not this executor's pause container of lease %s", e.pauseName(lease), lease)
	}
	if c.State == nil || !c.State.Running || c.State.Pid <= 0 {
		return c.ID, "", errNoPause
	}
	return c.ID, fmt.Sprintf("/proc/%d/ns/net", c.State.Pid), nil
}

// LeaseNetNS starts the lease's pause container unless it runs, and returns
// the path of its network namespace.
func (e *Executor) LeaseNetNS(ctx context.Context, leaseID string) (string, error) {
	if err := executor.ValidateID(leaseID); err != nil {
		return "", fmt.Errorf("lease netns: %w", err)
	}
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	id, path, err := e.pause(ctx, leaseID)
	switch {
	case err == nil:
		return path, nil
	case !errors.Is(err, errNoPause):
		return "", fmt.Errorf("lease netns of %s: %w", leaseID, err)
	case id != "":
		// NB: a new namespace would split the lease: its tasks stay in the old one.
		if n := e.leaseTasks(leaseID); n > 0 {
			return "", fmt.Errorf("lease netns of %s: its pause container stopped under %d task(s): destroy them first", leaseID, n)
		}
		if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("lease netns of %s: remove stopped pause container: %w", leaseID, err)
		}
	}
	return e.startPause(ctx, leaseID)
}

func (e *Executor) startPause(ctx context.Context, lease string) (string, error) {
	image, err := e.pauseImage(ctx)
	if err != nil {
		return "", fmt.Errorf("lease netns of %s: %w", lease, err)
	}
	labels := e.labels(lease)
	labels[LabelRole] = rolePause
	// 8: the pause program is one process; runc's setup forks a few briefly.
	pids := int64(8)
	created, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   e.pauseName(lease),
		Config: &container.Config{Image: image, Labels: labels, User: "65534:65534"},
		HostConfig: &container.HostConfig{
			NetworkMode:    "none",
			RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
			LogConfig:      container.LogConfig{Type: "none"},
			CapDrop:        []string{"ALL"},
			SecurityOpt:    []string{"no-new-privileges"},
			IpcMode:        container.IpcMode("private"),
			ReadonlyRootfs: true,
			Resources:      container.Resources{PidsLimit: &pids},
		},
	})
	if err != nil {
		return "", fmt.Errorf("lease netns of %s: create pause container: %w", lease, err)
	}
	if _, err := e.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		e.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
		return "", fmt.Errorf("lease netns of %s: start pause container: %w", lease, err)
	}
	_, path, err := e.pause(ctx, lease)
	if err != nil {
		e.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
		return "", fmt.Errorf("lease netns of %s: %w", lease, err)
	}
	e.log.Info("lease network namespace up", "lease", lease, "pause", created.ID, "netns", path)
	return path, nil
}

// pauseImage loads the pause image unless the daemon has it, and returns its ID.
func (e *Executor) pauseImage(ctx context.Context) (string, error) {
	prog, err := pauseProgram(runtime.GOARCH)
	if err != nil {
		return "", err
	}
	archive, id, err := scratchimage.Build("pause", prog, runtime.GOARCH, "")
	if err != nil {
		return "", err
	}
	if _, err := e.cli.ImageInspect(ctx, id); err == nil {
		return id, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspect pause image: %w", err)
	}
	if _, err := e.LoadImage(ctx, bytes.NewReader(archive), int64(len(archive)), id); err != nil {
		return "", fmt.Errorf("load pause image: %w", err)
	}
	return id, nil
}

// ReleaseLeaseNetNS removes the lease's pause container, and with it the
// namespace, unless a task of the lease still runs or is starting; exited
// task containers stay (their outputs and logs are the tenant's until
// Destroy).
func (e *Executor) ReleaseLeaseNetNS(ctx context.Context, leaseID string) error {
	if err := executor.ValidateID(leaseID); err != nil {
		return fmt.Errorf("release lease netns: %w", err)
	}
	e.leaseMu.Lock()
	defer e.leaseMu.Unlock()
	if e.leaseRuns(leaseID) {
		return nil
	}
	list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.filter(leaseID)})
	if err != nil {
		return fmt.Errorf("release netns of lease %s: list containers: %w", leaseID, err)
	}
	for _, c := range list.Items {
		if c.Labels[LabelRole] != rolePause && c.State == container.StateRunning {
			return nil // a task this executor does not know (yet): Recover's
		}
	}
	return e.removePause(ctx, leaseID, list.Items)
}

// leaseRuns reports whether a task of lease the executor knows runs or is starting.
func (e *Executor) leaseRuns(lease string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tk := range e.tasks {
		if tk.lease != lease {
			continue
		}
		select {
		case <-tk.done:
		default:
			return true
		}
	}
	return false
}

// leaseTasks counts the tasks of lease the executor knows, started or starting.
func (e *Executor) leaseTasks(lease string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, tk := range e.tasks {
		if tk.lease == lease {
			n++
		}
	}
	return n
}

// countTasks counts the containers in cs that are tasks, not pause containers.
func countTasks(cs []container.Summary) int {
	n := 0
	for _, c := range cs {
		if c.Labels[LabelRole] != rolePause {
			n++
		}
	}
	return n
}

// removePause force-removes the pause containers among cs, the lease's.
func (e *Executor) removePause(ctx context.Context, lease string, cs []container.Summary) error {
	var errs []error
	for _, c := range cs {
		if c.Labels[LabelRole] != rolePause {
			continue
		}
		if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove pause container of lease %s: %w", lease, err))
			continue
		}
		e.log.Info("lease network namespace removed", "lease", lease, "pause", c.ID)
	}
	return errors.Join(errs...)
}
