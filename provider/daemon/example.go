package daemon

// ExampleConfig is a provider config with every field explained; `kiln provider
// example-config` prints it and the tests parse it.
const ExampleConfig = `# Kiln provider daemon config (kiln provider run --key NAME --config FILE)

# Tenant API (HTTPS, mutual TLS) listen address, and the public URL registered on
# chain (empty: https://<listen address>).
listen = "0.0.0.0:8443"
endpoint = "https://provider.example.com:8443"
# TLS key and certificate, lease state, encrypted inputs/outputs, and the
# executor's own files (its work dirs).
state_dir = "/var/lib/kiln-provider"
# Registries the docker executor may pull from, and only images pinned by digest
# (repo@sha256:...); an entry may be a repository prefix ("ghcr.io/acme"). Leases
# always run the images they upload; a tag, or another registry, is refused.
# Empty: uploads only. Tasks run as the image's USER, the manifest's user, or
# else 65534:65534, never as root unless one of those asks for it.
allowed_registries = ["docker.io", "ghcr.io", "nvcr.io"]
# Bonded at registration; at least the chain's min_provider_stake.
stake = "100000000ukiln"
# Outputs of a completed batch lease stay downloadable this long, then are erased.
output_retention = "10m"
# Heartbeat every N blocks; 0 follows the chain's heartbeat_interval_blocks.
heartbeat_every = 0
# How often to ask the node for a new block: well under the block time.
poll_interval = "50ms"
# Prometheus metrics at http://ADDR/metrics; empty disables.
metrics_listen = "127.0.0.1:9464"
# Cluster members: the IP other providers send a member's WireGuard overlay to
# (each member binds a free UDP port on it). Empty: listen's IP, when it names
# one; with neither (listen on 0.0.0.0) the provider bids on no cluster order.
overlay_ip = "203.0.113.7"
# Per lease: all uploaded inputs together, and one uploaded image archive.
max_input_bytes = "1Gi"
max_image_bytes = "2Gi"

# What runs workloads: kind = "docker" isolates tenants; "process" runs them as
# host processes and needs [executor.process] allow_unisolated = true
# (development only). Each kind's settings are its own table.
[executor]
kind = "docker"

[executor.docker]
# Names and labels this daemon's containers, networks and volumes; two daemons
# sharing a Docker host need different ones.
namespace = "kiln"
# Lease volumes' contents (on the Docker host); default <state_dir>/docker.
# data_dir = "/var/lib/kiln-provider/docker"
# Let tasks reach networks outside the host.
allow_egress = false
# Who runs tasks whose image and manifest name no user ("uid:gid").
user = "65534:65534"
default_pids_limit = 1024
max_open_files = 4096
# Largest image a pull may bring, in bytes (0: no limit), and how long it may take.
max_pull_bytes = 34359738368
pull_timeout = "15m"

# [executor.process]
# allow_unisolated = true
# cgroup_parent = "/sys/fs/cgroup/kiln"

[inventory]
# detect = true inventories this host (NVML, nvidia-smi, OS) instead of the
# declared fields; region and attributes apply either way.
detect = false
region = "eu-west"
cpu_cores = 64
memory = "512Gi"
storage = "4Ti"

[[inventory.gpus]]
model = "h100"
memory = "80Gi"
interface = "sxm"
count = 8

[inventory.attributes]
tier = "datacenter"

# Prices in ukiln per hour; bids are per block (block_time), rounded up.
[pricing]
cpu_core_hour = 10000
memory_gib_hour = 1000
storage_gib_hour = 10
block_time = "1s"
min_price = 1
margin_bps = 0

[pricing.gpu_hour]
h100 = 2000000
a100 = 1200000

# Confidential compute. attest = true, inside an SEV-SNP or TDX confidential VM:
# the daemon records evidence from the guest device on chain at start, and again
# reattest_margin_blocks before each attestation expires (0: a quarter of the
# chain's reattest_blocks); it bids on orders that require a TEE only while its
# attestation is active. It fails to start where there is no guest device.
# Inputs tenants seal to the attestation open with <state_dir>/tee/seal.key.
[tee]
attest = true
# Sent with every attestation, read again each time: sev_crl.der (AMD KDS, the
# ARK's CRL; needed where the chain's require_crl is on) or the TDX PCS files.
collateral_dir = "/var/lib/kiln-provider/collateral"
reattest_margin_blocks = 0
# Failed attempts wait retry_min, doubling up to retry_max; after max_attempts in
# a row the daemon stops attesting (and taking TEE orders) until restarted.
max_attempts = 10
retry_min = "1s"
retry_max = "1m"
`
