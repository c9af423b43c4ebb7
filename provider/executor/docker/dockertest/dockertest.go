// Package dockertest gives tests a client of the local Docker daemon, and finds and removes what they left in a Docker namespace of the docker executor.
package dockertest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/kiln-network/kiln/provider/executor/docker"
)

// Objects are the IDs (containers, networks) and names (volumes) of Docker
// objects labelled with a docker executor namespace.
type Objects struct {
	Containers, Networks, Volumes []string
}

// Empty reports whether there are none.
func (o Objects) Empty() bool {
	return len(o.Containers)+len(o.Networks)+len(o.Volumes) == 0
}

func (o Objects) String() string {
	return fmt.Sprintf("containers %v, networks %v, volumes %v", o.Containers, o.Networks, o.Volumes)
}

// List returns the containers, networks and volumes carrying the executor's
// namespace label whose namespace match accepts.
func List(ctx context.Context, cli *client.Client, match func(namespace string) bool) (Objects, error) {
	var o Objects
	f := client.Filters{}.Add("label", docker.LabelNamespace)
	cl, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return o, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cl.Items {
		if match(c.Labels[docker.LabelNamespace]) {
			o.Containers = append(o.Containers, c.ID)
		}
	}
	nl, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return o, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nl.Items {
		if match(n.Labels[docker.LabelNamespace]) {
			o.Networks = append(o.Networks, n.ID)
		}
	}
	vl, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return o, fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vl.Items {
		if match(v.Labels[docker.LabelNamespace]) {
			o.Volumes = append(o.Volumes, v.Name)
		}
	}
	return o, nil
}

// Remove force-removes o: containers first, which the networks and volumes
// may still be in use by.
func Remove(ctx context.Context, cli *client.Client, o Objects) error {
	var errs []error
	for _, c := range o.Containers {
		if _, err := cli.ContainerRemove(ctx, c, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c, err))
		}
	}
	for _, n := range o.Networks {
		if _, err := cli.NetworkRemove(ctx, n, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n, err))
		}
	}
	for _, v := range o.Volumes {
		if _, err := cli.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveNamespace removes everything of namespace, and returns what it found.
func RemoveNamespace(ctx context.Context, cli *client.Client, namespace string) (Objects, error) {
	o, err := List(ctx, cli, func(ns string) bool { return ns == namespace })
	if err != nil {
		return o, err
	}
	return o, Remove(ctx, cli, o)
}

// CheckNamespaceEmpty fails tb if anything of namespace is left (containers,
// networks or volumes), and removes it, so that a failing test leaves the
// Docker host clean all the same.
func CheckNamespaceEmpty(tb testing.TB, cli *client.Client, namespace string) {
	tb.Helper()
	o, err := RemoveNamespace(context.Background(), cli, namespace)
	if err != nil {
		tb.Errorf("clean namespace %s: %v", namespace, err)
	}
	if !o.Empty() {
		tb.Errorf("namespace %s left %s", namespace, o)
	}
}

// Client returns a client of the local Docker daemon, closed when tb ends, or skips
// tb, saying why and what it would have done (uses), when none answers.
func Client(tb testing.TB, uses string) *client.Client {
	tb.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		tb.Skipf("skipping: no Docker client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	// 10 s: a local daemon answers a ping in milliseconds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		tb.Skipf("skipping: no Docker daemon answers (%v); this test %s", err, uses)
	}
	return cli
}
