package daemon

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-network/kiln/gpu"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

func TestParseExampleConfig(t *testing.T) {
	c, err := Parse(strings.NewReader(ExampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example config: %v", err)
	}
	inv, err := c.Inventory.declared()
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != "declared" || inv.TotalGPUs() != 8 || inv.GPUs[0].MemoryBytes != 80*registry.Gi || len(inv.Attributes) != 1 {
		t.Fatalf("inventory = %+v", inv)
	}
	if p, err := c.imagePolicy(); err != nil || !slices.Equal(p.Registries(), []string{"docker.io", "ghcr.io", "nvcr.io"}) {
		t.Fatalf("image policy = %v, %v; want docker.io, ghcr.io, nvcr.io", p.Registries(), err)
	}
	if !c.TEE.Attest || c.TEE.CollateralDir != "/var/lib/kiln-provider/collateral" || c.TEE.MaxAttempts != 10 || time.Duration(c.TEE.RetryMax) != time.Minute {
		t.Fatalf("tee = %+v, want the example's attest and collateral_dir over the defaults", c.TEE)
	}
	if time.Duration(c.OutputRetention) != 10*time.Minute || c.Pricing.GPUHour["h100"] != 2_000_000 || c.Pricing.GPUHour["h200"] != 3_000_000 {
		t.Fatalf("retention %v, gpu prices %v (defaults kept beside the file's)", time.Duration(c.OutputRetention), c.Pricing.GPUHour)
	}
}

func TestConfigRefusals(t *testing.T) {
	base := func() Config {
		c, err := Parse(strings.NewReader(ExampleConfig))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name, want string
		edit       func(*Config)
	}{
		{"process without opt-in", "executor.process: allow_unisolated", func(c *Config) { c.Executor.Kind = "process" }},
		{"process opt-in false", "executor.process: allow_unisolated", func(c *Config) {
			c.Executor.Kind = "process"
			c.Executor.Set("process", "allow_unisolated", false)
		}},
		{"unknown executor", "executor.kind", func(c *Config) { c.Executor.Kind = "vm" }},
		{"table of no executor", "executor.dockr", func(c *Config) { c.Executor.Set("dockr", "namespace", "x") }},
		{"unknown docker setting", "executor.docker: namespaces: unknown field", func(c *Config) { c.Executor.Set("docker", "namespaces", "x") }},
		{"bad docker setting", "executor.docker: docker executor: namespace", func(c *Config) { c.Executor.Set("docker", "namespace", "../x") }},
		{"docker setting of the wrong type", "executor.docker", func(c *Config) { c.Executor.Set("docker", "max_open_files", "many") }},
		{"bad process setting", "executor.process: poll_interval", func(c *Config) {
			c.Executor.Kind = "process"
			c.Executor.Set("process", "allow_unisolated", true)
			c.Executor.Set("process", "poll_interval", "-1s")
		}},
		{"no state dir", "state_dir", func(c *Config) { c.StateDir = "" }},
		{"http endpoint", "endpoint", func(c *Config) { c.Endpoint = "http://x:1" }},
		{"bad stake", "stake", func(c *Config) { c.Stake = "lots" }},
		{"bad gpu interface", "interface", func(c *Config) { c.Inventory.GPUs[0].Interface = "nvlink" }},
		{"detect with declared", "inventory.detect", func(c *Config) { c.Inventory.Detect = true }},
		{"zero block time", "pricing.block_time", func(c *Config) { c.Pricing.BlockTime = 0 }},
		{"zero min price", "pricing.min_price", func(c *Config) { c.Pricing.MinPrice = 0 }},
		{"bad input limit", "max_input_bytes", func(c *Config) { c.MaxInputBytes = "lots" }},
		{"bad image limit", "max_image_bytes", func(c *Config) { c.MaxImageBytes = "0" }},
		{"registry without a host", `allowed_registries[1]: "ubuntu"`, func(c *Config) { c.AllowedRegistries = []string{"docker.io", "ubuntu"} }},
		{"registry as a URL", "allowed_registries[0]", func(c *Config) { c.AllowedRegistries = []string{"https://ghcr.io"} }},
		{"listen without port", "listen", func(c *Config) { c.Listen = "127.0.0.1" }},
		{"listen port not a number", "listen", func(c *Config) { c.Listen = "127.0.0.1:https" }},
		{"listen port too big", "listen", func(c *Config) { c.Listen = "127.0.0.1:65536" }},
		{"listen port negative", "listen", func(c *Config) { c.Listen = "127.0.0.1:-1" }},
		{"endpoint with listen port 0", "endpoint", func(c *Config) { c.Listen = "0.0.0.0:0" }},
		{"metrics without port", "metrics_listen", func(c *Config) { c.MetricsListen = "127.0.0.1" }},
		{"metrics port too big", "metrics_listen", func(c *Config) { c.MetricsListen = "127.0.0.1:70000" }},
		{"overlay ip not an ip", "overlay_ip", func(c *Config) { c.OverlayIP = "provider.example.com" }},
		{"overlay ip unspecified", "overlay_ip", func(c *Config) { c.OverlayIP = "0.0.0.0" }},
		{"negative reattest margin", "tee.reattest_margin_blocks", func(c *Config) { c.TEE.ReattestMarginBlocks = -1 }},
		{"no attempts", "tee.max_attempts", func(c *Config) { c.TEE.MaxAttempts = 0 }},
		{"zero retry", "tee.retry_min", func(c *Config) { c.TEE.RetryMin = 0 }},
		{"retry max below min", "tee.retry_max", func(c *Config) { c.TEE.RetryMax = Duration(time.Millisecond) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ toml, want string }{
		{"listen = \"x:1\"\nbogus = 1\n", "bogus"},
		{"allow_unisolated = true\n", "allow_unisolated: moved to [executor.process] allow_unisolated"},
		{"docker_namespace = \"k\"\n", "docker_namespace: moved to [executor.docker] namespace"},
		{"executor = \"docker\"\n", `[executor] kind = "docker", with the executor's settings in [executor.docker]`},
		{"[executor]\nkind = \"docker\"\nnamespace = \"k\"\n", "executor.namespace: unknown field"},
		{"[executor]\nkind = 1\n", "executor.kind"},
	} {
		if _, err := Parse(strings.NewReader(tc.toml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.toml, err, tc.want)
		}
	}
}

// An executor's table reaches the executor: settings decoded with TOML's
// conversions over its defaults, the daemon's own fields untouched.
func TestExecutorSettings(t *testing.T) {
	c, err := Parse(strings.NewReader(`state_dir = "/var/lib/kiln"
[executor]
kind = "process"
[executor.process]
allow_unisolated = true
poll_interval = "250ms"
[inventory]
region = "eu-west"
cpu_cores = 1
memory = "1Gi"
storage = "1Gi"
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	var got struct {
		AllowUnisolated bool          `toml:"allow_unisolated"`
		PollInterval    time.Duration `toml:"poll_interval"`
		MaxOpenFiles    uint64        `toml:"max_open_files"`
	}
	got.MaxOpenFiles = 7
	if err := c.Executor.Settings("process").Decode(&got); err != nil {
		t.Fatalf("Settings(process).Decode() = %v", err)
	}
	if !got.AllowUnisolated || got.PollInterval != 250*time.Millisecond || got.MaxOpenFiles != 7 {
		t.Errorf("decoded settings = %+v, want the table's values over the default 7", got)
	}
	// [executor.process] alone keeps the default kind.
	if c, err := Parse(strings.NewReader("[executor.process]\nallow_unisolated = true\n")); err != nil || c.Executor.Kind != "process" {
		t.Errorf("Parse([executor.process] only) kind = %q, %v; want the default, process", c.Executor.Kind, err)
	}
	var none struct{ X int }
	if err := c.Executor.Settings("docker").Decode(&none); err != nil || none.X != 0 {
		t.Errorf("Settings(no table).Decode() = %v, %+v; want nothing decoded", err, none)
	}
}

func TestPrice(t *testing.T) {
	p := Pricing{GPUHour: map[string]uint64{"h100": 3_600_000}, CPUCoreHour: 36_000, MemoryGiBHour: 3_600, StorageGiBHour: 360,
		BlockTime: Duration(time.Second), MinPrice: 1}
	h100 := market.GPUSpec{Model: "h100", MemoryBytes: 80 * registry.Gi, Interface: "sxm"}
	gpuGroup := market.Group{Name: "g", Count: 2, CPUMilli: 1000, MemoryBytes: registry.Gi, StorageBytes: 10 * registry.Gi, GPU: market.GPURequest{Units: 4}}
	for _, tc := range []struct {
		name   string
		p      func(Pricing) Pricing
		groups []market.Group
		gpus   []market.GPUSpec
		want   uint64
	}{
		// 2 x (4 x 1000 + 10 + 1 + 10 x 0.1) per second = 8024.
		{"gpus cpu memory storage", nil, []market.Group{gpuGroup}, []market.GPUSpec{h100}, 8024},
		// 0.5 core = 5/s, 0.5 GiB = 0.5/s: 5.5 rounds up to 6.
		{"rounds up", nil, []market.Group{{Name: "c", Count: 1, CPUMilli: 500, MemoryBytes: registry.Gi / 2}}, []market.GPUSpec{{}}, 6},
		{"min price", func(p Pricing) Pricing { p.MinPrice = 100; return p }, []market.Group{{Name: "c", Count: 1, CPUMilli: 1, MemoryBytes: 1}}, []market.GPUSpec{{}}, 100},
		// 200 ms blocks: a fifth of 8024 is 1604.8, rounded up.
		{"block time", func(p Pricing) Pricing { p.BlockTime = Duration(200 * time.Millisecond); return p }, []market.Group{gpuGroup}, []market.GPUSpec{h100}, 1605},
		// 10% margin: 8826.4 rounded up.
		{"margin", func(p Pricing) Pricing { p.MarginBps = 1000; return p }, []market.Group{gpuGroup}, []market.GPUSpec{h100}, 8827},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pp := p
			if tc.p != nil {
				pp = tc.p(p)
			}
			got, err := pp.Price(tc.groups, tc.gpus)
			if err != nil || got != tc.want {
				t.Fatalf("Price = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
	if _, err := p.Price([]market.Group{gpuGroup}, []market.GPUSpec{{Model: "a100"}}); err == nil || !strings.Contains(err.Error(), "a100") {
		t.Fatalf("Price of an unpriced model = %v, want an error naming it", err)
	}
}

func TestDetectedInventory(t *testing.T) {
	ic := InventoryConfig{Detect: true, Region: "us-east", Attributes: map[string]string{"tier": "community"}}
	d := gpu.Inventory{Source: gpu.SourceNVML, CPU: gpu.CPUInfo{Cores: 32, Threads: 64}, MemoryBytes: 256 * registry.Gi, DiskBytes: 2 * registry.Ti,
		GPUs: []gpu.GPU{
			{Index: 0, UUID: "GPU-a", ModelKey: "h100", MemoryMiB: 81559, Interface: "sxm"},
			{Index: 1, UUID: "GPU-b", ModelKey: "h100", MemoryMiB: 81559, Interface: "sxm"},
			{Index: 2, UUID: "GPU-c", Name: "Mystery GPU"}, // not in the catalogue: not sold
		}}
	inv, uuids, err := ic.detected(d)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != gpu.SourceNVML || inv.CPUCores != 32 || len(inv.GPUs) != 1 || inv.GPUs[0].Count != 2 || inv.GPUs[0].Model != "h100" ||
		inv.GPUs[0].Interface != "sxm" || inv.GPUs[0].MemoryBytes != 80*registry.Gi || inv.Region != "us-east" {
		t.Fatalf("inventory = %+v", inv)
	}
	if got := strings.Join(uuids["h100"], ","); got != "GPU-a,GPU-b" {
		t.Fatalf("uuids = %v", uuids)
	}
	// No driver: a CPU-only host registers as detected-os, never as declared.
	inv, _, err = ic.detected(gpu.Inventory{Source: gpu.SourceOS, CPU: gpu.CPUInfo{Threads: 4}, MemoryBytes: 8 * registry.Gi, DiskBytes: 100 * registry.Gi})
	if err != nil || inv.Source != gpu.SourceOS || inv.CPUCores != 4 || len(inv.GPUs) != 0 {
		t.Fatalf("CPU-only inventory = %+v, %v", inv, err)
	}
}

// FuzzParseConfig: no config file makes Parse or Validate panic or hang, and a config
// that validates names a state dir and an executor.
func FuzzParseConfig(f *testing.F) {
	f.Add(ExampleConfig)
	f.Add("listen = \"127.0.0.1:0\"\nstate_dir = \"/x\"\n[inventory]\ncpu_cores = 1\n")
	f.Add("[pricing.gpu_hour]\nh100 = -1\n")
	f.Add("output_retention = \"99999999999h\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		if c.Validate() == nil && (c.StateDir == "" || c.Executor.Kind == "") {
			t.Fatalf("Validate accepted a config without state_dir or executor: %+v", c)
		}
	})
}

// FuzzHostPort: no listen address panics the check; one it accepts splits as
// HOST:PORT with a port of 0 to 65535, and the config validates the same way.
func FuzzHostPort(f *testing.F) {
	for _, s := range []string{"127.0.0.1:0", "0.0.0.0:8443", "[::]:1", ":0", "x", "h:65536", "h:-1", "h:+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		port, err := hostPort(s)
		if err != nil {
			return
		}
		if _, p, serr := net.SplitHostPort(s); serr != nil || port < 0 || port > 65535 || strconv.Itoa(port) != strings.TrimLeft(p, "0") && port != 0 {
			t.Fatalf("hostPort(%q) = %d, accepted what net.SplitHostPort reads as %q (%v)", s, port, p, serr)
		}
	})
}
