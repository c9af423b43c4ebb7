package sdl

// This file holds the output of the package: Kiln order groups (what goes on
// chain) and the manifest (what the winning provider receives). The types are
// plain data with snake_case JSON tags so that the market module can import
// them later without pulling in the parser.

// Result is what Parse returns for one SDL file.
type Result struct {
	// Version is the SDL version as written in the file, e.g. "2.0".
	Version string `json:"version"`
	// Groups are the order groups, one per placement profile used in the
	// deployment section, sorted by name (as Akash does).
	Groups []OrderGroup `json:"groups"`
	// Manifest is what the provider receives once a lease exists.
	Manifest Manifest `json:"manifest"`
	// Warnings lists what was accepted but ignored or is suspicious
	// (unknown keys below the top level, unused services, ...).
	Warnings []Warning `json:"warnings,omitempty"`
	// Reclamation is the top-level reclamation block (SDL 2.1, Akash AEP-82):
	// how long a reclaimable lease must be allowed to run; nil when absent.
	Reclamation *Reclamation `json:"reclamation,omitempty"`
}

// Reclamation says the tenant accepts a reclaimable lease: the provider may
// take the resources back, but not before MinWindow has passed.
type Reclamation struct {
	// MinWindow is the window as written (a Go duration, e.g. "24h").
	MinWindow string `json:"min_window"`
	// MinWindowSeconds is MinWindow in whole seconds.
	MinWindowSeconds uint64 `json:"min_window_seconds"`
}

// TEE types (services.<name>.params.tee): confidential compute on the CPU
// (AMD SEV-SNP or Intel TDX, the provider's choice), or CPU plus an NVIDIA
// GPU in confidential-computing mode.
const (
	TEECPU    = "cpu"
	TEECPUGPU = "cpu-gpu"
)

// OrderGroup is one Kiln order: a set of resource units that must be placed
// together on one provider.
type OrderGroup struct {
	Name         string         `json:"name"`
	Requirements Requirements   `json:"requirements"`
	Resources    []ResourceUnit `json:"resources"`
	// TEE is the group's confidential-compute type (TEECPU, TEECPUGPU), the
	// one every service of the group asks for; "" when none does.
	TEE string `json:"tee,omitempty"`
}

// Requirements are the provider attributes an order demands.
type Requirements struct {
	// Attributes the provider must have, sorted by key.
	Attributes []Attribute `json:"attributes"`
	// SignedBy lists auditors that must have signed those attributes.
	SignedBy SignedBy `json:"signed_by"`
}

// Attribute is a key/value pair. Keys may end in a '*' wildcard (GPU models).
type Attribute struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// SignedBy lists auditor addresses: all of AllOf and at least one of AnyOf
// must have signed the placement attributes.
type SignedBy struct {
	AllOf []string `json:"all_of"`
	AnyOf []string `json:"any_of"`
}

// Resources describes one instance of a service.
type Resources struct {
	// ID is the resource unit's ID within its group (1-based); manifest
	// services point at it.
	ID uint32 `json:"id"`
	// CPUMilli is the CPU in thousandths of a core.
	CPUMilli uint64 `json:"cpu_milli"`
	// CPUAttributes holds e.g. arch=amd64.
	CPUAttributes []Attribute `json:"cpu_attributes,omitempty"`
	// MemoryBytes is the RAM per instance.
	MemoryBytes uint64 `json:"memory_bytes"`
	// Storage lists the volumes, in Akash's canonical order (size, then
	// class, then persistence, then name).
	Storage []Storage `json:"storage"`
	// GPU is the GPU request; Units is 0 when none is wanted.
	GPU GPU `json:"gpu"`
	// Endpoints are the externally reachable endpoints the unit needs.
	Endpoints []Endpoint `json:"endpoints"`
}

// ResourceUnit is Resources times Count at Price per instance.
type ResourceUnit struct {
	Resources
	// Count is the number of instances.
	Count uint32 `json:"count"`
	// Price is the maximum price per instance per Kiln block, in ukiln.
	Price Coin `json:"price"`
	// SourcePrice is the price as written in the SDL (per Akash block).
	SourcePrice Coin `json:"source_price"`
}

// Storage is one volume of a resource unit.
type Storage struct {
	Name  string `json:"name"`
	Bytes uint64 `json:"bytes"`
	// Class is "" for ephemeral storage, "ram" for a memory-backed volume
	// (/dev/shm), or a provider storage class (default, beta1, beta2, beta3).
	Class      string `json:"class,omitempty"`
	Persistent bool   `json:"persistent"`
}

// GPU is a GPU request.
type GPU struct {
	Units uint32 `json:"units"`
	// Models lists acceptable models; a single model "*" means any.
	Models []GPUModel `json:"models,omitempty"`
	// Attributes are the same models as Akash attribute keys
	// (vendor/nvidia/model/a100/ram/80Gi/interface/sxm), for matching
	// against provider attributes.
	Attributes []Attribute `json:"attributes,omitempty"`
}

// GPUModel is one acceptable GPU model.
type GPUModel struct {
	Vendor string `json:"vendor"`
	// Model is the model name as written (e.g. "a100"), or "*" for any.
	Model string `json:"model"`
	// RAM is the GPU memory in Akash's notation, whole Gi ("80Gi"); empty
	// when not constrained.
	RAM string `json:"ram,omitempty"`
	// RAMBytes is the GPU memory in bytes; 0 when not constrained.
	RAMBytes uint64 `json:"ram_bytes,omitempty"`
	// Interface is "pcie", "sxm" or empty when not constrained.
	Interface string `json:"interface,omitempty"`
}

// Endpoint kinds.
const (
	EndpointSharedHTTP = "shared_http" // served through the provider's HTTP ingress
	EndpointRandomPort = "random_port" // a TCP/UDP port mapped to a random public port
	EndpointLeasedIP   = "leased_ip"   // a dedicated IP address (SDL endpoints)
)

// Endpoint is an externally reachable endpoint of a resource unit.
type Endpoint struct {
	Kind           string `json:"kind"`
	SequenceNumber uint32 `json:"sequence_number,omitempty"`
}

// Coin is an amount of a denomination. Amount is a non-negative decimal
// string (no exponent) so that no precision is lost.
type Coin struct {
	Denom  string `json:"denom"`
	Amount string `json:"amount"`
}

// Manifest is what the provider receives: the groups with their services.
type Manifest struct {
	Groups []ManifestGroup `json:"groups"`
}

// ManifestGroup is the provider-side view of one order group.
type ManifestGroup struct {
	Name     string    `json:"name"`
	Services []Service `json:"services"`
}

// Service is one container service as the provider runs it.
type Service struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	// Resources are per instance; Resources.ID names the group's unit.
	Resources Resources `json:"resources"`
	Count     uint32    `json:"count"`
	Expose    []Expose  `json:"expose,omitempty"`
	// Dependencies names services that should start first (informational,
	// as in Akash).
	Dependencies []string          `json:"dependencies,omitempty"`
	Params       *ServiceParams    `json:"params,omitempty"`
	Credentials  *ImageCredentials `json:"credentials,omitempty"`
}

// Expose is one exposed port of a service towards one destination.
type Expose struct {
	// Port is the container port.
	Port uint32 `json:"port"`
	// ExternalPort is the port seen from outside (SDL `as`); 0 means Port.
	ExternalPort uint32 `json:"external_port"`
	// Proto is "TCP" or "UDP".
	Proto string `json:"proto"`
	// Service is the in-deployment service allowed to connect ("" when
	// not service-scoped).
	Service string `json:"service,omitempty"`
	// Global is true when reachable from outside the deployment.
	Global bool `json:"global"`
	// Hosts are extra host names accepted by the HTTP ingress.
	Hosts       []string    `json:"hosts,omitempty"`
	HTTPOptions HTTPOptions `json:"http_options"`
	// IP is the name of the SDL IP endpoint, if any.
	IP                     string `json:"ip,omitempty"`
	EndpointSequenceNumber uint32 `json:"endpoint_sequence_number,omitempty"`
}

// HTTPOptions tune the HTTP ingress for an exposed port; zero values in the
// SDL are replaced by Akash's defaults.
type HTTPOptions struct {
	MaxBodySize uint32   `json:"max_body_size"`
	ReadTimeout uint32   `json:"read_timeout"`
	SendTimeout uint32   `json:"send_timeout"`
	NextTries   uint32   `json:"next_tries"`
	NextTimeout uint32   `json:"next_timeout"`
	NextCases   []string `json:"next_cases"`
}

// ServiceParams are the service's volume mounts and permissions.
type ServiceParams struct {
	Storage     []StorageParams `json:"storage,omitempty"`
	Permissions *Permissions    `json:"permissions,omitempty"`
	// TEE is the confidential-compute type the service asks for (params.tee).
	TEE string `json:"tee,omitempty"`
}

// StorageParams mounts a volume of the service's compute profile.
type StorageParams struct {
	Name     string `json:"name"`
	Mount    string `json:"mount"`
	ReadOnly bool   `json:"read_only"`
}

// Permissions grant the service read access to deployment data.
type Permissions struct {
	Read []string `json:"read,omitempty"`
}

// ImageCredentials authenticate to a private registry.
type ImageCredentials struct {
	Host     string `json:"host"`
	Email    string `json:"email,omitempty"`
	Username string `json:"username"`
	Password string `json:"password"`
}
