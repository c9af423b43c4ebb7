package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kiln-network/kiln/gpu"
	"github.com/kiln-network/kiln/provider/imageref"
	"github.com/kiln-network/kiln/quantity"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Duration is a time.Duration written as "10m", "200ms" in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Config is the provider daemon's TOML file.
type Config struct {
	// Listen is the address the tenant API (HTTPS, mutual TLS) listens on, e.g.
	// "0.0.0.0:8443". Port 0 picks a free port (tests, the demo).
	Listen string `toml:"listen"`
	// Endpoint is the public https://HOST:PORT URL registered on chain, where tenants
	// reach Listen. Empty: https://<the address Listen got>.
	Endpoint string `toml:"endpoint"`
	// StateDir holds the daemon's state: TLS key and certificate, lease state, the
	// encrypted vault and the executor's own files. Required.
	StateDir string `toml:"state_dir"`
	// Executor is the [executor] table: the kind that runs workloads and each
	// executor's own settings ([executor.docker], [executor.process]).
	Executor ExecutorConfig `toml:"executor"`
	// AllowedRegistries are the registries the docker executor pulls images from,
	// and only images pinned by digest (repo@sha256:…): "docker.io", "ghcr.io",
	// "registry.example.com:5000", or a repository prefix such as "ghcr.io/acme".
	// Empty: leases run only images they uploaded. A manifest naming an image by
	// tag, or from another registry, is refused before anything starts.
	AllowedRegistries []string `toml:"allowed_registries"`
	// Inventory is the hardware offered: detected, or declared in the file.
	Inventory InventoryConfig `toml:"inventory"`
	// Stake is what the provider bonds when it registers, e.g. "100000000ukiln"; at
	// least the chain's min_provider_stake.
	Stake string `toml:"stake"`
	// Pricing is the price table bids are computed from.
	Pricing Pricing `toml:"pricing"`
	// OrderBook posts standing asks in the order book (pricing: market) from the
	// price table: one per GPU model in the inventory (all its GPUs, at the table's
	// per-GPU price) and one for the CPU cores.
	OrderBook bool `toml:"order_book"`
	// RTTEndpoints are the client locations the provider measures its round-trip
	// time to, location → host:port (a TCP endpoint there): published on chain
	// (MsgRTTProbe) so that sessions limited to a location can go to it.
	RTTEndpoints map[string]string `toml:"rtt_endpoints"`
	// OverlayIP is the address other providers send a cluster member's overlay
	// (WireGuard over UDP) to; each member's socket binds a free port on it.
	// Empty: the IP the tenant API listens on, when listen names one (not
	// 0.0.0.0); with neither the provider bids on no cluster order.
	OverlayIP string `toml:"overlay_ip"`
	// OutputRetention is how long the outputs of a completed batch lease stay
	// downloadable before its vault is erased.
	OutputRetention Duration `toml:"output_retention"`
	// HeartbeatEvery is how often, in blocks, each lease gets a MsgHeartbeat; 0 uses
	// the chain's heartbeat_interval_blocks.
	HeartbeatEvery int64 `toml:"heartbeat_every"`
	// PollInterval is how often the daemon asks the node for a new block. It bounds
	// how late in a block the daemon bids: keep it well under the block time.
	PollInterval Duration `toml:"poll_interval"`
	// MetricsListen, if set, serves Prometheus metrics on http://MetricsListen/metrics.
	// Port 0 picks a free port, logged at start (Daemon.MetricsAddr).
	MetricsListen string `toml:"metrics_listen"`
	// MaxInputBytes caps one lease's uploaded inputs in total, with a unit ("1Gi");
	// empty keeps the API's default.
	MaxInputBytes string `toml:"max_input_bytes"`
	// MaxImageBytes caps one uploaded image archive, with a unit ("2Gi"); empty keeps
	// the API's default.
	MaxImageBytes string `toml:"max_image_bytes"`
	// TEE is the [tee] table: whether the daemon attests by itself, and how.
	TEE TEEConfig `toml:"tee"`
}

// TEEConfig is how the daemon keeps a confidential-computing attestation on chain.
type TEEConfig struct {
	// Attest makes the daemon produce TEE evidence (this confidential VM's guest
	// device) and record it on chain at start, and again before each attestation
	// expires; while it holds an active attestation it bids on orders that require
	// a TEE, and never otherwise. The start fails if this machine cannot produce
	// evidence. Off: the provider never bids on TEE orders.
	Attest bool `toml:"attest"`
	// CollateralDir holds collateral sent with every attestation, read again each
	// time so that a job refreshing the files is picked up (file names: kiln tee
	// verify --help): the ARK's CRL sev_crl.der from AMD's KDS, needed where the
	// chain's require_crl is on, or Intel PCS collateral for TDX. Empty: only what
	// the firmware and host give (an SEV-SNP host's VCEK).
	CollateralDir string `toml:"collateral_dir"`
	// ReattestMarginBlocks is how many blocks before its attestation expires the
	// daemon attests again; 0: a quarter of the chain's reattest_blocks, at least 2.
	ReattestMarginBlocks int64 `toml:"reattest_margin_blocks"`
	// MaxAttempts bounds consecutive failed attempts: after that many the daemon
	// stops attesting, says so in its log and kiln_provider_tee_given_up, and takes
	// no TEE order until it is restarted.
	MaxAttempts int `toml:"max_attempts"`
	// RetryMin and RetryMax bound the wait after a failed attempt: it doubles from
	// RetryMin with each failure, up to RetryMax.
	RetryMin Duration `toml:"retry_min"`
	RetryMax Duration `toml:"retry_max"`
}

func (t TEEConfig) validate() error {
	switch {
	case t.ReattestMarginBlocks < 0:
		return fieldErr("tee.reattest_margin_blocks", t.ReattestMarginBlocks, "must be >= 0 (0: a quarter of the chain's reattest_blocks)")
	case t.MaxAttempts < 1 || t.MaxAttempts > 1000:
		return fieldErr("tee.max_attempts", t.MaxAttempts, "must be 1 to 1000")
	case t.RetryMin <= 0:
		return fieldErr("tee.retry_min", time.Duration(t.RetryMin), "must be > 0")
	case t.RetryMax < t.RetryMin:
		return fieldErr("tee.retry_max", time.Duration(t.RetryMax), "must be >= tee.retry_min ("+time.Duration(t.RetryMin).String()+")")
	}
	return nil
}

// limit parses a size field of the config; empty gives 0 (the default).
func limit(field, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := quantity.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<50 {
		return 0, fieldErr(field, v, "must be a size like 512Mi or 2Gi, at most 1Pi")
	}
	return int64(n), nil
}

// InventoryConfig is the hardware the provider registers: detected from the host
// (Detect) or declared. Region and Attributes apply to both.
type InventoryConfig struct {
	// Detect inventories the host with gpu.Detect (NVML, then nvidia-smi; CPU-only
	// without a driver) instead of the declared fields below.
	Detect bool `toml:"detect"`
	// Region is where the provider is, e.g. "eu-west"; 2-63 of [a-z0-9-].
	Region string `toml:"region"`
	// CPUCores offered (declared).
	CPUCores uint64 `toml:"cpu_cores"`
	// Memory offered, with a unit: "64Gi" (declared).
	Memory string `toml:"memory"`
	// Storage offered, with a unit: "1Ti" (declared).
	Storage string `toml:"storage"`
	// GPUs offered, one entry per kind (declared).
	GPUs []GPUConfig `toml:"gpus"`
	// Attributes are free-form key/values advertised to orders (tier, network, ...).
	Attributes map[string]string `toml:"attributes"`
}

// GPUConfig declares Count GPUs of one kind.
type GPUConfig struct {
	// Model is the lowercase model key: h100, a100, rtx4090, ...
	Model string `toml:"model"`
	// Memory per GPU, with a unit: "80Gi".
	Memory string `toml:"memory"`
	// Interface is "pcie" or "sxm".
	Interface string `toml:"interface"`
	// Count of such GPUs.
	Count uint32 `toml:"count"`
}

// Pricing is the provider's price table, in the market's denom (ukiln). Prices are
// per hour; bids are per block, so BlockTime converts them.
type Pricing struct {
	// GPUHour is the price of one GPU for an hour, by model key (h100 = 2000000). An
	// order whose GPU model has no price here gets no bid.
	GPUHour map[string]uint64 `toml:"gpu_hour"`
	// CPUCoreHour is the price of one CPU core for an hour.
	CPUCoreHour uint64 `toml:"cpu_core_hour"`
	// MemoryGiBHour is the price of one GiB of memory for an hour.
	MemoryGiBHour uint64 `toml:"memory_gib_hour"`
	// StorageGiBHour is the price of one GiB of storage for an hour.
	StorageGiBHour uint64 `toml:"storage_gib_hour"`
	// BlockTime is the chain's block time, to turn hourly prices into per-block ones
	// (rounded up).
	BlockTime Duration `toml:"block_time"`
	// TFLOPHour is the price of one benchmark TFLOP-hour of GPU work: what the
	// provider bids on performance-priced orders (the chain bills it by the GPUs'
	// scores).
	TFLOPHour uint64 `toml:"tflop_hour"`
	// ReclaimDiscountBps is taken off the price of an order whose lease the provider
	// may reclaim (its reclamation window), in basis points: the capacity stays the
	// provider's to take back.
	ReclaimDiscountBps uint64 `toml:"reclaim_discount_bps"`
	// MinPrice is the least the provider bids per block, whatever the table says.
	MinPrice uint64 `toml:"min_price"`
	// MarginBps is added on top of the table's price, in basis points (100 = 1%).
	MarginBps uint64 `toml:"margin_bps"`
}

// DefaultConfig returns a config with every field but StateDir and the inventory set
// to a usable default.
func DefaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:8443",
		Executor: ExecutorConfig{Kind: "process"},
		Stake:    "100000000" + types.NativeDenom, // the chain's default min_provider_stake
		Pricing: Pricing{
			// Rough market rates at 1 KILN = 1 USD: an H100 at 2/h, a core at 0.01/h.
			GPUHour:        map[string]uint64{"h100": 2_000_000, "h200": 3_000_000, "a100": 1_200_000, "l40s": 900_000, "rtx4090": 400_000},
			CPUCoreHour:    10_000,
			MemoryGiBHour:  1_000,
			StorageGiBHour: 10,
			BlockTime:      Duration(time.Second), // node.DefaultBlockTime
			MinPrice:       1,
			// An H100's 2/h over its ~67 FP32 TFLOPS.
			TFLOPHour: 30_000,
			// 20% off for capacity the provider may take back (AEP-82's spirit).
			ReclaimDiscountBps: 2000,
		},
		// 10 min: time for the tenant's client to fetch results after completion.
		OutputRetention: Duration(10 * time.Minute),
		// 50 ms: a bid lands in the next block even at the demo's 200 ms block time.
		PollInterval: Duration(50 * time.Millisecond),
		// 10 attempts 1 s to 1 min apart: about 6 minutes of trying, well inside the
		// default hour an attestation lasts (reattest_blocks 3600 at 1 s blocks).
		TEE: TEEConfig{MaxAttempts: 10, RetryMin: Duration(time.Second), RetryMax: Duration(time.Minute)},
	}
}

// Parse reads a TOML config over the defaults, refusing unknown fields. It does not
// validate: call Validate.
func Parse(r io.Reader) (Config, error) {
	c := DefaultConfig()
	md, err := toml.NewDecoder(r).Decode(&c)
	if err != nil {
		return c, fmt.Errorf("provider config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		if where, ok := movedFields[und[0].String()]; ok {
			return c, fmt.Errorf("provider config: %s: moved to %s", und[0].String(), where)
		}
		return c, fmt.Errorf("provider config: unknown field %q", und[0].String())
	}
	return c, nil
}

// movedFields are top-level fields that became an executor's own settings.
var movedFields = map[string]string{
	"allow_unisolated": "[executor.process] allow_unisolated",
	"docker_namespace": "[executor.docker] namespace",
}

func fieldErr(field string, value any, rule string) error {
	return fmt.Errorf("provider config: %s: %s (got %v)", field, rule, value)
}

// Validate checks every field, naming the field, the value and the rule.
func (c Config) Validate() error {
	if _, err := limit("max_input_bytes", c.MaxInputBytes); err != nil {
		return err
	}
	if _, err := limit("max_image_bytes", c.MaxImageBytes); err != nil {
		return err
	}
	if _, err := c.imagePolicy(); err != nil {
		return err
	}
	if c.StateDir == "" {
		return fieldErr("state_dir", `""`, "must be set")
	}
	listenPort, err := hostPort(c.Listen)
	if err != nil {
		return fieldErr("listen", c.Listen, "must be HOST:PORT, port 0 to 65535 (0: any free port)")
	}
	if c.Endpoint != "" {
		if err := registry.ValidateEndpoint(c.Endpoint); err != nil {
			return fieldErr("endpoint", c.Endpoint, "must be https://HOST:PORT")
		}
		if listenPort == 0 {
			return fieldErr("endpoint", c.Endpoint, "must be empty when listen asks for any free port (port 0): the port is known only at start, and the endpoint registered is then https://<the address listen got>")
		}
	}
	if c.OverlayIP != "" {
		if a, err := netip.ParseAddr(c.OverlayIP); err != nil || a.IsUnspecified() || a.Zone() != "" {
			return fieldErr("overlay_ip", c.OverlayIP, "must be an IP address other providers reach this one at (not 0.0.0.0 or ::), or empty")
		}
	}
	if c.MetricsListen != "" {
		if _, err := hostPort(c.MetricsListen); err != nil {
			return fieldErr("metrics_listen", c.MetricsListen, "must be HOST:PORT, port 0 to 65535 (0: any free port), or empty")
		}
	}
	if err := c.Executor.validate(); err != nil {
		return err
	}
	if _, err := types.ParseCoin(c.Stake); err != nil {
		return fieldErr("stake", c.Stake, "must be an amount with a denom, e.g. 100000000ukiln")
	}
	if !c.Inventory.Detect {
		if _, err := c.Inventory.declared(); err != nil {
			return fmt.Errorf("provider config: %w", err)
		}
	} else if len(c.Inventory.GPUs) > 0 || c.Inventory.CPUCores > 0 || c.Inventory.Memory != "" || c.Inventory.Storage != "" {
		return fieldErr("inventory.detect", true, "must not be combined with declared cpu_cores, memory, storage or gpus")
	}
	if c.Pricing.BlockTime <= 0 {
		return fieldErr("pricing.block_time", time.Duration(c.Pricing.BlockTime), "must be > 0")
	}
	if c.Pricing.MinPrice < 1 {
		return fieldErr("pricing.min_price", c.Pricing.MinPrice, "must be >= 1 (the chain refuses zero bids)")
	}
	if c.Pricing.ReclaimDiscountBps > 9_000 {
		return fieldErr("pricing.reclaim_discount_bps", c.Pricing.ReclaimDiscountBps, "must be <= 9000")
	}
	if c.Pricing.MarginBps > 100_000 {
		return fieldErr("pricing.margin_bps", c.Pricing.MarginBps, "must be <= 100000")
	}
	for _, loc := range slices.Sorted(maps.Keys(c.RTTEndpoints)) {
		if err := (&market.MsgRTTProbe{Location: loc, RTTMicros: 1}).ValidateBasic(); err != nil {
			return fieldErr("rtt_endpoints", loc, "a location must be 2-63 of [a-z0-9-]")
		}
		if _, _, err := net.SplitHostPort(c.RTTEndpoints[loc]); err != nil {
			return fieldErr("rtt_endpoints."+loc, c.RTTEndpoints[loc], "must be host:port")
		}
	}
	if c.OutputRetention < 0 {
		return fieldErr("output_retention", time.Duration(c.OutputRetention), "must be >= 0")
	}
	if c.HeartbeatEvery < 0 {
		return fieldErr("heartbeat_every", c.HeartbeatEvery, "must be >= 0 (0: the chain's heartbeat_interval_blocks)")
	}
	if c.PollInterval <= 0 {
		return fieldErr("poll_interval", time.Duration(c.PollInterval), "must be > 0")
	}
	return c.TEE.validate()
}

// imagePolicy is the images leases may run: their uploads, and images pinned by
// digest from AllowedRegistries.
func (c Config) imagePolicy() (imageref.Policy, error) {
	for i, r := range c.AllowedRegistries {
		if _, err := imageref.ParseRegistry(r); err != nil {
			return imageref.Policy{}, fmt.Errorf("provider config: allowed_registries[%d]: %w", i, err)
		}
	}
	return imageref.NewPolicy(c.AllowedRegistries)
}

func (ic InventoryConfig) attributes() []registry.Attribute {
	var out []registry.Attribute
	for k, v := range ic.Attributes {
		out = append(out, registry.Attribute{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// declared builds the declared inventory, source "declared".
func (ic InventoryConfig) declared() (registry.Inventory, error) {
	inv := registry.Inventory{Source: gpu.SourceDeclared, Region: ic.Region, CPUCores: ic.CPUCores, Attributes: ic.attributes()}
	var err error
	if inv.MemoryBytes, err = quantity.ParseBytes(ic.Memory); err != nil {
		return inv, fmt.Errorf("inventory.memory: %w (got %q)", err, ic.Memory)
	}
	if inv.StorageBytes, err = quantity.ParseBytes(ic.Storage); err != nil {
		return inv, fmt.Errorf("inventory.storage: %w (got %q)", err, ic.Storage)
	}
	for i, g := range ic.GPUs {
		mem, err := quantity.ParseBytes(g.Memory)
		if err != nil {
			return inv, fmt.Errorf("inventory.gpus[%d].memory: %w (got %q)", i, err, g.Memory)
		}
		inv.GPUs = append(inv.GPUs, registry.GPU{Model: g.Model, MemoryBytes: mem, Interface: g.Interface, Count: g.Count})
	}
	return inv, inv.ValidateHardware()
}

// detected converts a gpu.Detect result: GPUs grouped by model key, catalogue memory
// size and interface. GPUs missing from the catalogue are left out (no model key to
// sell them under). A CPU-only host keeps the source detected-os.
func (ic InventoryConfig) detected(d gpu.Inventory) (registry.Inventory, map[string][]string, error) {
	src := d.Source
	if src != gpu.SourceNVML && src != gpu.SourceNVIDIASMI && src != gpu.SourceOS {
		return registry.Inventory{}, nil, fmt.Errorf("inventory.detect: detection gave source %q", src)
	}
	cores := uint64(d.CPU.Cores)
	if cores == 0 {
		cores = uint64(d.CPU.Threads)
	}
	inv := registry.Inventory{Source: src, Region: ic.Region, CPUCores: cores, MemoryBytes: d.MemoryBytes,
		StorageBytes: d.DiskBytes, Attributes: ic.attributes()}
	type spec struct {
		model, iface string
		mem          uint64
	}
	idx := map[spec]int{}
	uuids := map[string][]string{}
	for _, g := range d.GPUs {
		m, v, ok := g.Spec()
		if !ok {
			continue
		}
		s := spec{m.Key, v.Interface, uint64(v.MemoryGiB) * registry.Gi}
		if s.iface == "" {
			s.iface = gpu.InterfacePCIe
		}
		i, seen := idx[s]
		if !seen {
			i = len(inv.GPUs)
			idx[s] = i
			inv.GPUs = append(inv.GPUs, registry.GPU{Model: s.model, MemoryBytes: s.mem, Interface: s.iface})
		}
		inv.GPUs[i].Count++
		uuids[s.model] = append(uuids[s.model], g.UUID)
	}
	return inv, uuids, inv.ValidateHardware()
}

// BuildInventory returns the inventory the config describes: declared, or detected
// on this host. ctx bounds detection.
func (c Config) BuildInventory(ctx context.Context) (registry.Inventory, error) {
	inv, _, err := c.buildInventory(ctx)
	return inv, err
}

// buildInventory also returns the detected GPUs' UUIDs by model key (none when
// declared), which tasks get as their devices.
func (c Config) buildInventory(ctx context.Context) (registry.Inventory, map[string][]string, error) {
	if !c.Inventory.Detect {
		inv, err := c.Inventory.declared()
		return inv, nil, err
	}
	d, err := gpu.Detect(ctx, gpu.Options{DiskPath: c.StateDir})
	if err != nil && !errors.Is(err, gpu.ErrNoDriver) {
		return registry.Inventory{}, nil, fmt.Errorf("detect inventory: %w", err)
	}
	return c.Inventory.detected(d)
}

// endpointFor returns the configured endpoint, or https://addr.
func (c Config) endpointFor(addr net.Addr) string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	return "https://" + addr.String()
}

// hostPort checks a HOST:PORT listen address and returns its port.
func hostPort(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port %q: %w", p, err)
	}
	return int(n), nil
}

// certHosts returns the host names the TLS certificate must name: the endpoint's
// host and the listen host.
func certHosts(endpoint, listen string) []string {
	var hosts []string
	if u, err := url.Parse(endpoint); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" && h != "0.0.0.0" && h != "::" && (len(hosts) == 0 || hosts[0] != h) {
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	return hosts
}

// overlayIP is the address cluster members' overlay sockets bind (OverlayIP, else
// the tenant API's listen IP), or why there is none.
func (c Config) overlayIP() (netip.Addr, string) {
	if c.OverlayIP != "" {
		return netip.MustParseAddr(c.OverlayIP), "" // NB: Validate has checked it
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if a, perr := netip.ParseAddr(host); err == nil && perr == nil && !a.IsUnspecified() {
		return a, ""
	}
	return netip.Addr{}, "overlay_ip is not set and listen (" + c.Listen + ") names no single IP other providers could send the overlay to"
}
