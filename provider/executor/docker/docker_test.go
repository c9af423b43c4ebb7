package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/docker"
	"github.com/kiln-network/kiln/provider/executor/docker/dockertest"
	"github.com/kiln-network/kiln/provider/executor/executortest"
)

var (
	// dockerErr is why the Docker tests are skipped; nil when a daemon answers.
	dockerErr error
	// cli is a client for checks from outside the executor.
	cli *client.Client
	// testImage is the image with testprog at /testprog, built by TestMain.
	testImage string
	// runID prefixes every namespace of this run, so that the final check
	// looks at this run's objects only.
	runID = "kt" + randHex(4)
	nsSeq atomic.Int64
)

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		cli, err = client.New(client.FromEnv)
		if err != nil {
			dockerErr = fmt.Errorf("create docker client: %w", err)
			return m.Run()
		}
		defer cli.Close()
		// 10 s: a local daemon answers a ping in milliseconds.
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Ping(pctx, client.PingOptions{}); err != nil {
			dockerErr = fmt.Errorf("no Docker daemon answers: %w", err)
			return m.Run()
		}
		// 3 min: building testprog on a cold Go cache compiles the standard
		// library, which takes well over 10 s on a 2-core machine.
		bctx, bcancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer bcancel()
		testImage, err = buildImage(bctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build test image:", err)
			return 1
		}
		defer cli.ImageRemove(context.Background(), testImage, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		code := m.Run()
		// Whatever test left them, no container, network or volume of this
		// run may be left once all have ended.
		o, err := dockertest.List(context.Background(), cli, func(ns string) bool { return strings.HasPrefix(ns, runID) })
		if err == nil && !o.Empty() {
			fmt.Fprintf(os.Stderr, "FAIL: this run left %s\n", o)
			err = dockertest.Remove(context.Background(), cli, o)
			code = 1
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: check for leftovers:", err)
			code = 1
		}
		return code
	}()
	os.Exit(code)
}

// buildImage builds FROM scratch an image holding testprog, tagged with the
// hash of its source and this run's id.
func buildImage(ctx context.Context) (string, error) {
	prog, err := executortest.TestProg()
	if err != nil {
		return "", err
	}
	hash, err := executortest.TestProgHash()
	if err != nil {
		return "", err
	}
	bin, err := os.ReadFile(prog)
	if err != nil {
		return "", err
	}
	tag := "kiln-executortest:" + hash + "-" + runID
	res, err := cli.ImageBuild(ctx, tarOf(map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY testprog /testprog\n"),
		"testprog":   bin,
	}), client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: map[string]string{"kiln.test": runID}})
	if err != nil {
		return "", fmt.Errorf("image build: %w", err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if bytes.Contains(out, []byte(`"error"`)) {
		return "", fmt.Errorf("image build: %s", out)
	}
	return tag, nil
}

func tarOf(files map[string][]byte) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(b))})
		tw.Write(b)
	}
	tw.Close()
	return &buf
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func needDocker(t *testing.T) {
	t.Helper()
	if dockerErr != nil {
		t.Skipf("skipping Docker executor tests: %v", dockerErr)
	}
}

// newFactory returns executors whose namespace and data dir are one per
// test: two calls in one test see the same tasks, as a restarted daemon does.
// When the test ends, anything left in its namespace fails it and is removed.
func newFactory() func(t *testing.T) executor.Executor {
	type env struct{ ns, dir string }
	var envs sync.Map // *testing.T → env
	return func(t *testing.T) executor.Executor {
		t.Helper()
		v, loaded := envs.LoadOrStore(t, env{ns: fmt.Sprintf("%sx%d", runID, nsSeq.Add(1)), dir: t.TempDir()})
		en := v.(env)
		if !loaded {
			t.Cleanup(func() { checkNamespaceEmpty(t, en.ns) })
		}
		cfg := docker.DefaultConfig()
		cfg.Namespace = en.ns
		cfg.DataDir = en.dir
		ex, err := docker.New(cfg)
		if err != nil {
			t.Fatalf("docker.New() = %v", err)
		}
		t.Cleanup(func() { ex.Close() })
		return ex
	}
}

func checkNamespaceEmpty(t *testing.T, namespace string) {
	t.Helper()
	dockertest.CheckNamespaceEmpty(t, cli, namespace)
}

// checkGone fails t if the task's container or its lease's network or
// volumes still exist.
func checkGone(t *testing.T, h executor.Handle) {
	t.Helper()
	ctx := context.Background()
	if _, err := cli.ContainerInspect(ctx, h.Ref, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("container %s after Destroy: inspect = %v, want not found", h.Ref, err)
	}
	f := client.Filters{}.Add("label", docker.LabelLease+"="+h.LeaseID)
	if nl, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err != nil || len(nl.Items) != 0 {
		t.Errorf("networks of lease %s after Destroy = %v, %v; want none", h.LeaseID, nl.Items, err)
	}
	if vl, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err != nil || len(vl.Items) != 0 {
		t.Errorf("volumes of lease %s after Destroy = %v, %v; want none", h.LeaseID, vl.Items, err)
	}
}

func TestConformance(t *testing.T) {
	needDocker(t)
	executortest.Run(t, newFactory(), executortest.Env{
		Command: []string{"/testprog"},
		Image:   testImage,
		// 64 MiB: the cgroup limit; testprog itself needs a few MiB.
		MemoryHogLimit: 64 << 20,
		CheckGone:      checkGone,
	})
}

func TestNetNS(t *testing.T) {
	needDocker(t)
	executortest.RunNetNS(t, newFactory(), executortest.Env{Command: []string{"/testprog"}, Image: testImage})
}

// dtask returns a task of lease running testprog with args.
func dtask(lease string, replica int, args ...string) executor.Task {
	return executor.Task{
		ID:      executor.TaskID(lease, "svc", replica),
		LeaseID: lease,
		Image:   testImage,
		Command: []string{"/testprog"},
		Args:    args,
	}
}

func startT(t *testing.T, ex executor.Executor, tk executor.Task) executor.Handle {
	t.Helper()
	h, err := ex.Start(context.Background(), tk)
	if err != nil {
		t.Fatalf("Start(%s) = %v", tk.ID, err)
	}
	t.Cleanup(func() {
		if err := ex.Destroy(context.Background(), tk.ID); err != nil && !errors.Is(err, executor.ErrTaskNotFound) {
			t.Errorf("cleanup: Destroy(%s) = %v", tk.ID, err)
		}
	})
	return h
}

// run starts tk, waits for it and returns its result and log.
func run(t *testing.T, ex executor.Executor, tk executor.Task) (executor.ExitResult, string) {
	t.Helper()
	startT(t, ex, tk)
	// 30 s: the programs run here exit within 3 s.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := ex.Wait(ctx, tk.ID)
	if err != nil {
		t.Fatalf("Wait(%s) = %v", tk.ID, err)
	}
	rc, err := ex.Logs(ctx, tk.ID, false)
	if err != nil {
		t.Fatalf("Logs(%s) = %v", tk.ID, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return res, string(b)
}

func containerIP(t *testing.T, id string) string {
	t.Helper()
	ins, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	for _, n := range ins.Container.NetworkSettings.Networks {
		if n.IPAddress.IsValid() {
			return n.IPAddress.String()
		}
	}
	t.Fatalf("container %s has no IP", id)
	return ""
}

func TestIsolation(t *testing.T) {
	needDocker(t)
	newExec := newFactory()

	t.Run("LeasesCannotReachEachOther", func(t *testing.T) {
		t.Parallel()
		ex := newExec(t)
		a, b := "la"+randHex(4), "lb"+randHex(4)
		srv := startT(t, ex, dtask(a, 0, "serve-http", "8080"))
		addr := containerIP(t, srv.Ref) + ":8080"
		// The same lease reaches the server: the refusal below is isolation,
		// not a server that is not up yet.
		replica := 0
		// 30 s: the server binds within a second; each try is a container start.
		poll.WaitFor(t, 30*time.Second, func() error {
			replica++
			if res, out := run(t, ex, dtask(a, replica, "connect", addr)); res.ExitCode != 0 {
				return fmt.Errorf("connect %s from the same lease = %+v, %q; want connected", addr, res, out)
			}
			return nil
		})
		res, out := run(t, ex, dtask(b, 0, "connect", addr))
		if res.ExitCode != 3 {
			t.Errorf("connect %s from another lease = %+v, %q; want exit 3 (cannot connect)", addr, res, out)
		}
	})

	t.Run("CannotSeeHostFiles", func(t *testing.T) {
		t.Parallel()
		ex := newExec(t)
		secret := filepath.Join(t.TempDir(), "secret.txt")
		if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{secret, "/proc/1/root" + secret} {
			res, out := run(t, ex, dtask("lh"+randHex(4), 0, "read-file", p))
			if res.ExitCode != 3 || strings.Contains(out, "host secret") {
				t.Errorf("read-file %s = %+v, %q; want exit 3 and no content", p, res, out)
			}
		}
	})

	t.Run("InputsVisibleReadOnly", func(t *testing.T) {
		t.Parallel()
		ex := newExec(t)
		lease := "li" + randHex(4)
		startT(t, ex, dtask(lease, 0, "sleep", "5m"))
		if err := ex.PutInput(context.Background(), lease, "input.txt", strings.NewReader("tenant input")); err != nil {
			t.Fatalf("PutInput() = %v", err)
		}
		res, out := run(t, ex, dtask(lease, 1, "read-file", "/in/input.txt"))
		if res.ExitCode != 0 || !strings.Contains(out, "tenant input") {
			t.Errorf("read-file /in/input.txt = %+v, %q; want the input", res, out)
		}
		res, out = run(t, ex, dtask(lease, 2, "write-file", "/in/x", "x"))
		if res.ExitCode != 3 {
			t.Errorf("write-file /in/x = %+v, %q; want exit 3 (read-only)", res, out)
		}
	})

	t.Run("PortsBoundToLoopbackOnly", func(t *testing.T) {
		t.Parallel()
		ex := newExec(t)
		tk := dtask("lp"+randHex(4), 0, "serve-http", "8080")
		tk.Ports = []executor.Port{{ContainerPort: 8080}}
		h := startT(t, ex, tk)
		addr := h.Endpoints[8080]
		if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
			t.Fatalf("Start() endpoints = %v, want 8080 published on 127.0.0.1", h.Endpoints)
		}
		ins, err := cli.ContainerInspect(context.Background(), h.Ref, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for port, bs := range ins.Container.NetworkSettings.Ports {
			for _, b := range bs {
				if b.HostIP.String() != "127.0.0.1" {
					t.Errorf("port %s bound on %s:%s, want 127.0.0.1 only", port, b.HostIP, b.HostPort)
				}
			}
		}
		url := "http://" + addr + "/"
		hc := &http.Client{Timeout: 2 * time.Second}
		// 20 s: the server starts within a second.
		poll.WaitFor(t, 20*time.Second, func() error {
			resp, err := hc.Get(url)
			if err != nil {
				return fmt.Errorf("GET %s: %w", url, err)
			}
			defer resp.Body.Close()
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Errorf("GET %s = %q, want ok", url, b)
			}
			return nil
		})
	})

	t.Run("CapabilitiesDropped", func(t *testing.T) {
		t.Parallel()
		ex := newExec(t)
		res, out := run(t, ex, dtask("lc"+randHex(4), 0, "caps"))
		if res.ExitCode != 0 {
			t.Fatalf("caps = %+v, %q", res, out)
		}
		if !strings.Contains(out, "CapEff:\t0000000000000000") || !strings.Contains(out, "NoNewPrivs:\t1") {
			t.Errorf("caps = %q, want no effective capabilities and no-new-privileges", out)
		}
	})

	t.Run("ReadOnlyRootFS", func(t *testing.T) {
		t.Parallel()
		ex := newExec(t)
		tk := dtask("lr"+randHex(4), 0, "write-file", "/tmp/ok", "x", ";", "write-file", "/etc-x", "x")
		tk.ReadOnlyRootFS = true
		res, out := run(t, ex, tk)
		if res.ExitCode != 3 || !strings.Contains(out, "wrote /tmp/ok") {
			t.Errorf("write /tmp then / = %+v, %q; want /tmp written and / refused (exit 3)", res, out)
		}
	})
}

func TestRecoverRemovesOrphans(t *testing.T) {
	needDocker(t)
	newExec := newFactory()
	ex := newExec(t).(*docker.Executor)
	ctx := context.Background()
	// A finished task gives the namespace and a lease to orphan.
	tk := dtask("lo"+randHex(4), 0, "echo", "hi")
	h := startT(t, ex, tk)
	if _, err := ex.Wait(ctx, tk.ID); err != nil {
		t.Fatal(err)
	}
	ins, err := cli.ContainerInspect(ctx, h.Ref, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := ins.Container.Config.Labels[docker.LabelNamespace]
	labels := map[string]string{docker.LabelNamespace: ns, docker.LabelLease: "orphan-lease"}
	if _, err := cli.NetworkCreate(ctx, ns+"-orphan-lease", client.NetworkCreateOptions{Driver: "bridge", Internal: true, Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: ns + "-orphan-lease-out", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: ns + "-never-started",
		Config: &container.Config{Image: testImage, Cmd: []string{"/testprog", "echo"}, Labels: map[string]string{
			docker.LabelNamespace: ns, docker.LabelLease: "orphan-lease", docker.LabelTask: "never-started",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}

	hs, err := newExec(t).Recover(ctx)
	if err != nil {
		t.Fatalf("Recover() = %v", err)
	}
	if len(hs) != 1 || hs[0].TaskID != tk.ID || !hs[0].Exited {
		t.Errorf("Recover() = %+v, want only the exited task %s", hs, tk.ID)
	}
	if _, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("never-started container after Recover: inspect = %v, want not found", err)
	}
	if _, err := cli.NetworkInspect(ctx, ns+"-orphan-lease", client.NetworkInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("orphan network after Recover: inspect = %v, want not found", err)
	}
	if _, err := cli.VolumeInspect(ctx, ns+"-orphan-lease-out", client.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("orphan volume after Recover: inspect = %v, want not found", err)
	}
}

func TestLoadImage(t *testing.T) {
	needDocker(t)
	ctx := context.Background()
	ex := newFactory()(t).(*docker.Executor)

	// An archive of a fresh image that the daemon then forgets, as a tenant
	// would upload it.
	tag := "kiln-executortest-load:" + runID
	res, err := cli.ImageBuild(ctx, tarOf(map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY payload /payload\n"),
		"payload":    []byte("payload " + runID),
	}), client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	ins, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("inspect built image: %v", err)
	}
	id := ins.ID
	removeImage := func() {
		cli.ImageRemove(context.Background(), id, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
	t.Cleanup(removeImage)
	saved, err := cli.ImageSave(ctx, []string{tag})
	if err != nil {
		t.Fatalf("save image: %v", err)
	}
	archive, err := io.ReadAll(saved)
	saved.Close()
	if err != nil {
		t.Fatalf("save image: %v", err)
	}
	removeImage()
	if _, err := cli.ImageInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Fatalf("image %s still present before the load: %v", id, err)
	}

	t.Run("TooLarge", func(t *testing.T) {
		_, err := ex.LoadImage(ctx, bytes.NewReader(archive), int64(len(archive))-1, id)
		if !errors.Is(err, docker.ErrImageTooLarge) {
			t.Errorf("LoadImage(limit %d < %d) = %v, want ErrImageTooLarge", len(archive)-1, len(archive), err)
		}
	})
	t.Run("WrongDigest", func(t *testing.T) {
		wrong := "sha256:" + strings.Repeat("ab", 32)
		_, err := ex.LoadImage(ctx, bytes.NewReader(archive), int64(len(archive)), wrong)
		if !errors.Is(err, docker.ErrImageDigest) {
			t.Errorf("LoadImage(wrong digest) = %v, want ErrImageDigest", err)
		}
		if _, err := cli.ImageInspect(ctx, id); !cerrdefs.IsNotFound(err) {
			t.Errorf("image after refused load: inspect = %v, want not found", err)
		}
	})
	t.Run("NotAnArchive", func(t *testing.T) {
		_, err := ex.LoadImage(ctx, strings.NewReader("not a tar"), 1<<20, id)
		if !errors.Is(err, docker.ErrImageArchive) {
			t.Errorf("LoadImage(garbage) = %v, want ErrImageArchive", err)
		}
	})
	t.Run("LoadsUntagged", func(t *testing.T) {
		got, err := ex.LoadImage(ctx, bytes.NewReader(archive), int64(len(archive)), id)
		if err != nil || got != id {
			t.Fatalf("LoadImage() = %q, %v; want %q", got, err, id)
		}
		ins, err := cli.ImageInspect(ctx, id)
		if err != nil {
			t.Fatalf("inspect loaded image: %v", err)
		}
		if len(ins.RepoTags) != 0 {
			t.Errorf("loaded image tags = %v, want none (tags are stripped)", ins.RepoTags)
		}
	})
	t.Run("RemoveImage", func(t *testing.T) {
		if err := ex.RemoveImage(ctx, id); err != nil {
			t.Fatalf("RemoveImage(%s) = %v", id, err)
		}
		if _, err := cli.ImageInspect(ctx, id); !cerrdefs.IsNotFound(err) {
			t.Errorf("image after RemoveImage: inspect = %v, want not found", err)
		}
		if err := ex.RemoveImage(ctx, id); err != nil {
			t.Errorf("RemoveImage(gone) = %v, want nil", err)
		}
	})
	t.Run("AnyIDWhenNoneNamed", func(t *testing.T) {
		got, err := ex.LoadImage(ctx, bytes.NewReader(archive), int64(len(archive)), "")
		if err != nil || got != id {
			t.Fatalf("LoadImage(no id named) = %q, %v; want %q", got, err, id)
		}
	})
}

// A task runs as the user its manifest names, else its image's USER, else
// the unprivileged default; whoever it runs as reads its inputs and writes
// its outputs.
func TestTaskUser(t *testing.T) {
	needDocker(t)
	ctx := context.Background()
	// An image like the test image whose config sets USER.
	userImage := "kiln-executortest-user:" + runID
	res, err := cli.ImageBuild(ctx, tarOf(map[string][]byte{
		"Dockerfile": []byte("FROM " + testImage + "\nUSER 4321:4321\n"),
	}), client.ImageBuildOptions{Tags: []string{userImage}, Remove: true, ForceRemove: true, Labels: map[string]string{"kiln.test": runID}})
	if err != nil {
		t.Fatalf("build image with USER: %v", err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build image with USER: %s", out)
	}
	t.Cleanup(func() {
		cli.ImageRemove(context.Background(), userImage, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})

	tests := []struct {
		name, image, taskUser string
		rootDefault           bool // Config.User = "": the operator opted out
		uid, gid              uint32
	}{
		{"unprivileged default", testImage, "", false, 65534, 65534},
		{"manifest user", testImage, "1234:5678", false, 1234, 5678},
		{"image USER", userImage, "", false, 4321, 4321},
		{"manifest over image", userImage, "1234:1234", false, 1234, 1234},
		{"operator opted out", testImage, "", true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := docker.DefaultConfig()
			cfg.Namespace = fmt.Sprintf("%sx%d", runID, nsSeq.Add(1))
			cfg.DataDir = t.TempDir()
			if tt.rootDefault {
				cfg.User = ""
			}
			ex, err := docker.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { checkNamespaceEmpty(t, cfg.Namespace); ex.Close() })
			lease := "lu" + randHex(4)
			// The input is there before the task starts, as the lease manager
			// materializes it; its dir made under a strict umask.
			in := filepath.Join(cfg.DataDir, lease, "in")
			if err := os.MkdirAll(in, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, "input.txt"), []byte("tenant input"), 0o644); err != nil {
				t.Fatal(err)
			}
			tk := dtask(lease, 0, "id", ";", "read-file", "/in/input.txt", ";", "write-out", "result.txt", "done")
			tk.Image, tk.User = tt.image, tt.taskUser
			res, log := run(t, ex, tk)
			want := fmt.Sprintf("uid=%d gid=%d", tt.uid, tt.gid)
			if res.ExitCode != 0 || !strings.Contains(log, want) || !strings.Contains(log, "tenant input") {
				t.Fatalf("task = %+v, log %q; want exit 0, %q and the input read", res, log, want)
			}
			fi, err := os.Stat(filepath.Join(cfg.DataDir, lease, "out", "result.txt"))
			if err != nil {
				t.Fatalf("output not written: %v", err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != tt.uid {
				t.Errorf("output owned by uid %d, want %d", st.Uid, tt.uid)
			}
		})
	}
}

// An image that is not on the host is pulled only where allowed, and every way it
// can fail says what to do. The registry is 127.0.0.1:1, where nothing listens: the
// test reaches no network but loopback.
func TestImageNotPresent(t *testing.T) {
	needDocker(t)
	const absentDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, image string
		allowPull   bool
		want        string
	}{
		{"pulling disabled", "127.0.0.1:1/kiln/absent:1", false, "pulling is disabled"},
		{"tag never pulled", "127.0.0.1:1/kiln/absent:1", true, "only images pinned by digest (repo@sha256:…) are pulled"},
		{"registry unreachable", "127.0.0.1:1/kiln/absent@" + absentDigest, true, "pull image 127.0.0.1:1/kiln/absent@" + absentDigest},
		{"uploaded id missing", "sha256:" + strings.Repeat("ab", 32), true, "upload it to the lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := docker.DefaultConfig()
			cfg.Namespace = fmt.Sprintf("%sx%d", runID, nsSeq.Add(1))
			cfg.DataDir = t.TempDir()
			cfg.AllowPull = tt.allowPull
			cfg.PullTimeout = 30 * time.Second // loopback refuses at once; this only bounds a surprise
			ex, err := docker.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ex.Close()
			tk := dtask("pull-"+randHex(4), 0, "echo", "hi")
			tk.Image = tt.image
			_, err = ex.Start(context.Background(), tk)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start with image %s = %v, want an error containing %q", tt.image, err, tt.want)
			}
			checkNamespaceEmpty(t, cfg.Namespace)
		})
	}
}

// TestLateOOMEvent drives the fallback for Docker's OOMKilled race: the
// daemon's "oom" event names the hog's container and not a container we
// killed ourselves.
func TestLateOOMEvent(t *testing.T) {
	needDocker(t)
	ex := newFactory()(t).(*docker.Executor)
	ctx := context.Background()

	hog := dtask("l"+randHex(6), 0, "hog-mem", "512")
	hog.Resources.MemoryBytes = 64 << 20
	if res, _ := run(t, ex, hog); res.ExitCode == 0 {
		t.Fatalf("hog exited %+v, want a kill", res)
	}
	if oom, err := ex.LateOOM(ctx, hog.ID); err != nil || !oom {
		t.Errorf("LateOOM(hog) = %v, %v; want true", oom, err)
	}

	sleeper := dtask("l"+randHex(6), 0, "sleep-ignore-term", "5m")
	startT(t, ex, sleeper)
	// NB: a SIGTERM before testprog ignores it ends it with Go's exit code 2.
	executortest.WaitReady(t, ex, sleeper.ID)
	if err := ex.Stop(ctx, sleeper.ID, 0); err != nil {
		t.Fatalf("Stop(sleeper) = %v", err)
	}
	res, err := ex.Wait(ctx, sleeper.ID)
	if err != nil || res.ExitCode != 137 || res.OOMKilled {
		t.Errorf("Wait(sleeper) = %+v, %v; want a SIGKILL exit, not OOM", res, err)
	}
	if oom, err := ex.LateOOM(ctx, sleeper.ID); err != nil || oom {
		t.Errorf("LateOOM(sleeper) = %v, %v; want false", oom, err)
	}
}
