// Package sdl reads Akash Stack Definition Language files (SDL 2.0 and 2.1)
// and turns them into Kiln order groups and the manifest a provider runs.
//
// # Contract
//
// Parse accepts what Akash's reference Go parser (akash-network/akash-api
// go/sdl, with the chain's deployment validation and the manifest
// validation that its Read runs) accepts, and refuses what it refuses. Where
// Akash's JSON Schema and its parser disagree, the parser wins. Parse MUST
// report every problem of a file, each with file, line and column where the
// YAML gives them, the field path, the value and what is allowed. Parse
// NEVER panics and its work is bounded by the size of its input.
//
// Groups follow Akash: one order group per placement profile used in the
// deployment section, named after it, sorted by name. In SDL 2.0 each
// (service, placement) pair is one resource unit; in SDL 2.1 services of a
// placement that share a compute profile share one unit and their counts
// add up.
//
// # Prices
//
// SDL prices are per Akash block, per instance, in uakt, uact or an IBC
// denomination. Kiln prices are per Kiln block in ukiln (1 KILN = 10^6
// ukiln). A price means the same per hour on both chains:
//
//	ukiln per Kiln block = amount × rate(denom) × KilnBlockTime / AkashBlockTime
//
// with these defaults (Config, DefaultConfig):
//
//	denom            rate (ukiln per unit)   why
//	uact             1                       ACT is USD-pegged; 1 KILN is pegged to 1 USD for conversion
//	uakt             1                       placeholder: AKT floats, override with the day's rate
//	ibc/170C…F2F1    1                       USDC (Noble) on Akash
//	ibc/12C6…2D84    1                       USDC (Axelar) on Akash
//	ibc/*            1                       any other IBC denom, assumed a USD stablecoin (warns)
//	ukiln            1                       already Kiln: no block-time scaling
//	AkashBlockTime   6.098 s
//	KilnBlockTime    1 s
//
// So 1000 uact per Akash block becomes 163.988… ukiln per Kiln block: both
// are 590,357 micro-units per hour. Amounts are exact decimals (18 places); an
// order carries the price rounded up to whole ukiln (Coin.Ceil: 164), which is
// what `kiln sdl show` prints.
// Any other denomination is refused. The SDL price is kept as SourcePrice.
//
// # Rules
//
// Top level: only version, services, profiles, deployment, endpoints,
// reclamation and include (ignored) are allowed. Below the top level unknown keys are
// ignored, as Akash does, with a warning naming the key (Compose's
// depends_on is the usual one: the SDL key is dependencies). Exceptions, as
// in Akash: gpu takes only units and attributes, gpu.attributes only
// vendor, cpu.attributes only arch, storage attributes only persistent and
// class; anything else there is an error. Only the first YAML document is
// read. version is read as tolerant semver: "2", "2.0", "v2.0" are 2.0;
// 2.1.x is 2.1; anything else is refused.
//
// Per instance (resource unit): CPU 10m–384 CPUs ("0.5", 2, "100m"); GPU
// 0–24 units, attributes required when units > 0 (vendor.nvidia: a list of
// {model, ram, interface} or null for any model; interface pcie or sxm; ram
// takes binary suffixes only) and refused when units is 0; memory 1Mi–2Ti;
// each storage volume 5Mi–32Ti; count 1–50 (no default); price > 0 and at
// most 10,000,000 per block, one denomination for the whole deployment.
// Sizes take k, Ki, M, Mi, G, Gi, T, Ti, P, Pi, E, Ei (case-sensitive, no
// "B"). The spellings Akash Console accepts and Akash's Go CLI refuses
// ("16gi", "512mi", "15GB": any case, an optional B; i means binary) are read
// as Console reads them, with a warning naming the portable spelling. Per deployment: at most 20 groups of at most 20 units; group totals
// at most 50 × the per-instance limits.
//
// Storage: a single mapping or a list; one entry may be unnamed (the root
// ephemeral volume, named "default"); names are unique; persistent defaults
// to false; a persistent volume without class gets class default; an
// ephemeral volume must not set a class except ram (memory-backed, e.g.
// /dev/shm), which cannot be persistent (nor readOnly in 2.1). Services
// mount volumes of their compute profile with params.storage.<name>.mount,
// an absolute path used once; in 2.0 a persistent volume requires the
// service to mount something.
//
// Expose: proto tcp (default) or udp; port 1–65535; as defaults to port;
// to entries are {global: true} (public), {service: name} (that service
// only) or {global: true, ip: endpoint}; an expose without to is reachable
// inside the deployment only. A global tcp expose on port (or as) 80 uses
// the shared HTTP ingress; accept (extra host names, DNS names used once in
// the deployment) only applies there. http_options: max_body_size ≤ 100Mi,
// read/send_timeout ≤ 60000 ms, next_cases from error, timeout, 500, 502,
// 503, 504, 403, 404, 429 or off alone. At least one service must be
// exposed globally. Endpoints are {kind: ip}, named in lower case, and must
// be used.
//
// Confidential compute (2026, AEP-83): services.<name>.params.tee is cpu (a
// confidential VM: SEV-SNP or TDX) or cpu-gpu (plus an NVIDIA GPU in CC
// mode, which needs gpu.units > 0 in the service's compute profile); every
// service of a group sets the same value or none does; the group's OrderGroup
// carries it as TEE. It needs no version bump.
//
// Reclamation (2026, AEP-82): top-level reclamation: {min_window: Go
// duration, 1h-720h}, SDL 2.1 only; Result.Reclamation records it for the
// order.
//
// Services: names are DNS labels (lower case, digits, '-'), image is
// required, env entries are NAME=value with a valid variable name,
// credentials need host, username and password. Placement attributes are
// string pairs; null means none. Deployment entries must name an existing
// service, placement and compute profile, and the placement must price the
// profile.
package sdl
