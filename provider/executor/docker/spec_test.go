package docker

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/kiln-network/kiln/provider/executor"
)

func newTestExecutor(t *testing.T) *Executor {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestContainerSpec(t *testing.T) {
	e := newTestExecutor(t)
	base := executor.Task{ID: "l1-web-0", LeaseID: "l1", Image: "img", Args: []string{"a"}}

	t.Run("GPUsByUUIDOnly", func(t *testing.T) {
		tk := base
		tk.Resources.GPUDeviceUUIDs = []string{"GPU-aaaa", "GPU-bbbb"}
		_, h, err := e.containerSpec(tk, "")
		if err != nil {
			t.Fatal(err)
		}
		want := []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"GPU-aaaa", "GPU-bbbb"}, Capabilities: [][]string{{"gpu"}}}}
		if !reflect.DeepEqual(h.DeviceRequests, want) {
			t.Errorf("DeviceRequests = %+v, want %+v", h.DeviceRequests, want)
		}
		if h.DeviceRequests[0].Count != 0 {
			t.Errorf("DeviceRequests count = %d, want 0 (never all GPUs)", h.DeviceRequests[0].Count)
		}
	})

	t.Run("NoGPUsNoDeviceRequest", func(t *testing.T) {
		_, h, err := e.containerSpec(base, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(h.DeviceRequests) != 0 {
			t.Errorf("DeviceRequests = %+v, want none for a task without GPUs", h.DeviceRequests)
		}
	})

	t.Run("Hardened", func(t *testing.T) {
		tk := base
		tk.Resources = executor.Resources{CPUMilli: 1500, MemoryBytes: 256 << 20}
		tk.Ports = []executor.Port{{ContainerPort: 80}, {ContainerPort: 53, HostPort: 5353, Protocol: "udp"}}
		tk.ReadOnlyRootFS = true
		c, h, err := e.containerSpec(tk, "")
		if err != nil {
			t.Fatal(err)
		}
		if h.Privileged || !slices.Equal(h.CapDrop, []string{"ALL"}) || len(h.CapAdd) != 0 {
			t.Errorf("privileged %t, CapDrop %v, CapAdd %v; want unprivileged, ALL dropped", h.Privileged, h.CapDrop, h.CapAdd)
		}
		if !slices.Contains(h.SecurityOpt, "no-new-privileges") {
			t.Errorf("SecurityOpt = %v, want no-new-privileges", h.SecurityOpt)
		}
		if h.NanoCPUs != 1_500_000_000 || h.Memory != 256<<20 || h.MemorySwap != 256<<20 {
			t.Errorf("NanoCPUs %d, Memory %d, MemorySwap %d; want 1.5 CPUs, 256 MiB, no swap", h.NanoCPUs, h.Memory, h.MemorySwap)
		}
		if h.PidsLimit == nil || *h.PidsLimit != e.cfg.DefaultPidsLimit {
			t.Errorf("PidsLimit = %v, want the default %d", h.PidsLimit, e.cfg.DefaultPidsLimit)
		}
		if len(h.Ulimits) != 1 || h.Ulimits[0].Name != "nofile" {
			t.Errorf("Ulimits = %v, want nofile", h.Ulimits)
		}
		if !h.ReadonlyRootfs || !strings.Contains(h.Tmpfs["/tmp"], "size=") {
			t.Errorf("ReadonlyRootfs %t, Tmpfs %v; want read-only with a sized /tmp", h.ReadonlyRootfs, h.Tmpfs)
		}
		if len(h.PortBindings) != 2 {
			t.Errorf("PortBindings = %v, want 2", h.PortBindings)
		}
		for p, bs := range h.PortBindings {
			for _, b := range bs {
				if b.HostIP.String() != "127.0.0.1" {
					t.Errorf("port %s bound to %s, want 127.0.0.1", p, b.HostIP)
				}
			}
		}
		if c.Labels[LabelTask] != tk.ID || c.Labels[LabelLease] != tk.LeaseID || c.Labels[LabelNamespace] != e.cfg.Namespace {
			t.Errorf("Labels = %v, want task, lease and namespace", c.Labels)
		}
		if string(h.NetworkMode) != e.networkName(tk.LeaseID) {
			t.Errorf("NetworkMode = %s, want the lease network", h.NetworkMode)
		}
	})
}

// A task runs as its own user, else its image's, else the unprivileged default.
func TestContainerUser(t *testing.T) {
	e := newTestExecutor(t)
	tests := []struct {
		task, image, def string
		want             string
	}{
		{"", "", "65534:65534", "65534:65534"},
		{"", "nginx", "65534:65534", ""}, // empty: Docker applies the image's USER
		{"1000:1000", "nginx", "65534:65534", "1000:1000"},
		{"app", "", "65534:65534", "app"},
		{"0", "", "65534:65534", "0"}, // asked for explicitly
		{"", "", "", ""},              // an operator who opted out runs the image's default
	}
	for _, tt := range tests {
		e.cfg.User = tt.def
		c, _, err := e.containerSpec(executor.Task{ID: "l1-web-0", LeaseID: "l1", Image: "img", User: tt.task}, tt.image)
		if err != nil {
			t.Fatal(err)
		}
		if c.User != tt.want {
			t.Errorf("containerSpec(task user %q, image user %q, default %q).User = %q, want %q", tt.task, tt.image, tt.def, c.User, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		errHas string
	}{
		{"default with dir", func(c *Config) {}, ""},
		{"no dir", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"relative dir", func(c *Config) { c.DataDir = "rel" }, "absolute"},
		{"bad namespace", func(c *Config) { c.Namespace = "../x" }, "namespace"},
		{"no pids limit", func(c *Config) { c.DefaultPidsLimit = 0 }, "pids"},
		{"no nofile", func(c *Config) { c.MaxOpenFiles = 0 }, "max_open_files"},
		{"negative pull cap", func(c *Config) { c.MaxPullBytes = -1 }, "max_pull_bytes"},
		{"no pull timeout", func(c *Config) { c.PullTimeout = 0 }, "pull_timeout"},
		{"root by default", func(c *Config) { c.User = "" }, ""},
		{"numeric user", func(c *Config) { c.User = "1000:1000" }, ""},
		{"named user", func(c *Config) { c.User = "nobody" }, "uid:gid"},
		{"uid only", func(c *Config) { c.User = "1000" }, "uid:gid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = "/var/lib/kiln"
			tc.mod(&c)
			err := c.Validate()
			if tc.errHas == "" && err != nil || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Errorf("Validate() = %v, want error containing %q", err, tc.errHas)
			}
		})
	}
}
