// Package api holds the wire types of the provider's tenant-facing HTTPS API (manifests, statuses, files, errors and their codes) and the interfaces its server is built on.
//
// The server is provider/api/server, the tenant's client provider/api/apiclient.
// The chain is reached through two small interfaces the daemon implements,
// LeaseSource and CertSource; workloads run through a Runner
// (provider/lease.Manager). A tenant's client certificate carries its account
// address as the Subject CommonName and must be, byte for byte, the one the
// account published on chain (`kiln tx cert publish`).
package api

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"
)

// Sentinel errors the daemon's implementations return and the server maps.
var (
	// ErrLeaseNotFound is returned by LeaseSource for an unknown lease.
	ErrLeaseNotFound = errors.New("lease not found")
	// ErrCertNotPublished is returned by CertSource for an account without a published certificate.
	ErrCertNotPublished = errors.New("certificate not published")
	// ErrNotDeployed is returned by Runner for a lease whose manifest was not deployed.
	ErrNotDeployed = errors.New("lease not deployed")
	// ErrAlreadyDeployed is returned by Runner.Deploy for a lease already deployed.
	ErrAlreadyDeployed = errors.New("lease already deployed")
	// ErrImagesUnsupported is returned by Runner.LoadImage when the
	// provider's executor runs no container images (the process executor).
	ErrImagesUnsupported = errors.New("container images unsupported")
	// ErrImageTooLarge is returned by Runner.LoadImage for an archive over its limit.
	ErrImageTooLarge = errors.New("image archive too large")
	// ErrImageDigest is returned by Runner.LoadImage when the archive's image
	// is not the one the tenant named.
	ErrImageDigest = errors.New("image digest mismatch")
	// ErrStartFailed is returned by Runner.Deploy when the workload could not be
	// started (the executor refused or failed it); the manifest was acceptable.
	ErrStartFailed = errors.New("workload failed to start")
	// ErrBadImage is returned by Runner.LoadImage for an archive that is not
	// one `docker save` image.
	ErrBadImage = errors.New("bad image")
	// ErrImageNotAllowed is returned by Runner.Deploy, before anything
	// starts, for a service whose image the provider refuses to run: named by
	// tag, from a registry it does not allow, or by the ID of an image not
	// uploaded to the lease.
	ErrImageNotAllowed = errors.New("image not allowed")
)

// LeaseElsewhereError is returned by LeaseSource for a lease the chain says another
// provider runs: the tenant asked the wrong provider, and is told which is right.
type LeaseElsewhereError struct {
	LeaseID uint64
	// Provider is the bech32 address of the provider that runs the lease.
	Provider string
}

func (e *LeaseElsewhereError) Error() string {
	return fmt.Sprintf("lease %d is run by provider %s", e.LeaseID, e.Provider)
}

// Kind is what a lease runs.
type Kind string

// Lease kinds.
const (
	// KindBatch runs to completion; its outputs are sealed and committed.
	KindBatch Kind = "batch"
	// KindService runs until the lease ends and may expose ports.
	KindService Kind = "service"
)

// ResourceUnit is one resource unit of an order: Count instances of the
// given size.
type ResourceUnit struct {
	// ID is the unit's id within the order (1-based); manifest services name it.
	ID uint32 `json:"id"`
	// Count is the number of instances.
	Count uint32 `json:"count"`
	// CPUMilli is the CPU per instance in thousandths of a core.
	CPUMilli uint64 `json:"cpu_milli"`
	// MemoryBytes is the memory per instance.
	MemoryBytes uint64 `json:"memory_bytes"`
	// StorageBytes is the storage per instance.
	StorageBytes uint64 `json:"storage_bytes"`
	// GPUUnits is the GPUs per instance.
	GPUUnits uint32 `json:"gpu_units"`
}

// LeaseInfo is what the chain says about a lease.
type LeaseInfo struct {
	// ID is the lease id.
	ID uint64 `json:"id"`
	// Owner is the tenant's bech32 account address.
	Owner string `json:"owner"`
	// Active is true while the lease runs (not closed, not completed).
	Active bool `json:"active"`
	// Kind is batch or service.
	Kind Kind `json:"kind"`
	// Resources are what the order asked for.
	Resources []ResourceUnit `json:"resources"`
	// MaxInputBytes caps the lease's inputs in total; 0 means the server's limit.
	MaxInputBytes int64 `json:"max_input_bytes,omitempty"`
	// TimeLimit is the longest a batch task may run; 0 means none.
	TimeLimit time.Duration `json:"time_limit,omitempty"`
}

// LeaseSource reads leases from the chain.
type LeaseSource interface {
	// Lease returns the lease, an error wrapping ErrLeaseNotFound, or a
	// *LeaseElsewhereError if another provider runs it.
	Lease(ctx context.Context, leaseID uint64) (LeaseInfo, error)
}

// CertSource reads published client certificates from the chain.
type CertSource interface {
	// ClientCert returns the certificate owner published, or an error
	// wrapping ErrCertNotPublished.
	ClientCert(ctx context.Context, owner string) (*x509.Certificate, error)
}

// LogSelector picks the task whose log to read.
type LogSelector struct {
	// Service is the service name; empty means the manifest's first.
	Service string
	// Replica is the replica index, from 0.
	Replica int
}

// Runner runs leases' workloads; provider/lease.Manager implements it.
type Runner interface {
	// Deploy starts the manifest's services for the lease, with its stored
	// inputs. It returns ErrAlreadyDeployed for a lease already deployed,
	// ErrImagesUnsupported for a manifest naming images on an executor that
	// runs none, and ErrStartFailed when the executor could not start it.
	// The workload outlives ctx.
	Deploy(ctx context.Context, lease LeaseInfo, m Manifest) error
	// Status reports the lease's workload, or ErrNotDeployed.
	Status(ctx context.Context, leaseID uint64) (LeaseStatus, error)
	// Logs streams one task's combined stdout and stderr; with follow, until
	// the task exits or ctx ends.
	Logs(ctx context.Context, leaseID uint64, sel LogSelector, follow bool) (io.ReadCloser, error)
	// LoadImage loads a `docker save` archive of one image, read from r up
	// to maxBytes, for a lease not yet deployed, and returns the image ID
	// ("sha256:<hex>") its manifest's services may then name; with wantID
	// set the image must be that one. Errors wrap ErrImagesUnsupported,
	// ErrImageTooLarge, ErrImageDigest, ErrBadImage or ErrAlreadyDeployed.
	LoadImage(ctx context.Context, leaseID uint64, r io.Reader, maxBytes int64, wantID string) (imageID string, err error)
	// ServiceAddr returns the address ("host:port") the ingress proxies to
	// for a service lease: where the executor gives its first global TCP
	// port exposed.
	ServiceAddr(leaseID uint64) (addr string, ok bool)
}

// Lease and task states in LeaseStatus.
const (
	StatePending   = "pending" // no manifest yet: inputs may be uploaded
	StateWaiting   = "waiting" // a cluster member: manifest taken, waiting for every member to be ready
	StateRunning   = "running"
	StateCompleted = "completed" // batch: every task exited 0, outputs sealed
	StateFailed    = "failed"    // a task failed, or the deploy did
	StateStopped   = "stopped"
	StateClosed    = "closed" // closed on chain before any workload ran, or long gone from this provider
)

// LeaseStatus is the state of a lease's workload.
type LeaseStatus struct {
	LeaseID uint64       `json:"lease_id"`
	Kind    Kind         `json:"kind"`
	State   string       `json:"state"`
	Tasks   []TaskStatus `json:"tasks"`
	// Inputs are the stored inputs (pending leases).
	Inputs []FileInfo `json:"inputs,omitempty"`
	// Outputs are the sealed outputs (batch, once completed or failed).
	Outputs []FileInfo `json:"outputs,omitempty"`
	// OutputsRoot is the hex Merkle root of Outputs (proof.ItemsRoot).
	OutputsRoot string `json:"outputs_root,omitempty"`
	// Skipped are the entries the workload left in its output directory that
	// were not sealed as outputs (directories, links, named pipes, names
	// outside vault.NamePattern), at most vault.MaxSkippedListed of them.
	Skipped []SkippedOutput `json:"skipped,omitempty"`
	// SkippedTotal counts every entry skipped, listed in Skipped or not.
	SkippedTotal int `json:"skipped_total,omitempty"`
	// Error explains a failed state.
	Error string `json:"error,omitempty"`
	// Overlay, for a cluster member, is its end of the cluster's overlay.
	Overlay *OverlayStatus `json:"overlay,omitempty"`
}

// OverlayStatus is a cluster member's overlay link as its provider sees it.
type OverlayStatus struct {
	Cluster uint64 `json:"cluster,string"`
	Rank    int    `json:"rank"`
	// Addr is the member's overlay address, Endpoint its UDP endpoint.
	Addr     string `json:"addr"`
	Endpoint string `json:"endpoint"`
	// Epoch is the cluster epoch the rank was started in; -1 before it started.
	Epoch int64 `json:"epoch"`
	// Peers are the other members the link knows, by rank.
	Peers []OverlayPeer `json:"peers"`
}

// OverlayPeer is what a member's link knows of one peer.
type OverlayPeer struct {
	Rank int `json:"rank"`
	// LastHandshake is when the last WireGuard handshake with the peer completed;
	// zero when none has.
	LastHandshake time.Time `json:"last_handshake"`
	// RxBytes and TxBytes count the encrypted bytes from and to the peer.
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
}

// TaskStatus is one replica of one service.
type TaskStatus struct {
	ID         string     `json:"id"`
	Service    string     `json:"service"`
	Replica    int        `json:"replica"`
	State      string     `json:"state"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Endpoints maps exposed ports to the addresses the provider reaches
	// them at (its side of the ingress).
	Endpoints map[int]string `json:"endpoints,omitempty"`
}

// FileInfo describes one input or output.
type FileInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the lower-case hex SHA-256 of the plaintext.
	SHA256 string `json:"sha256"`
}

// SkippedOutput is an entry of a workload's output directory that was not
// sealed as an output, and why.
type SkippedOutput struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Error codes of the JSON error body; they are stable, clients branch on them.
const (
	CodeClientCertRequired   = "client_certificate_required"
	CodeCertExpired          = "certificate_expired"
	CodeCertNotYetValid      = "certificate_not_yet_valid"
	CodeCertNotPublished     = "certificate_not_published"
	CodeCertMismatch         = "certificate_mismatch"
	CodeNotLeaseOwner        = "not_lease_owner"
	CodeBadLeaseID           = "bad_lease_id"
	CodeLeaseNotFound        = "lease_not_found"
	CodeLeaseElsewhere       = "lease_other_provider"
	CodeLeaseNotActive       = "lease_not_active"
	CodeBadManifest          = "bad_manifest"
	CodeManifestExceedsOrder = "manifest_exceeds_order"
	CodeManifestTooLarge     = "manifest_too_large"
	CodeImageNotAllowed      = "image_not_allowed" // a manifest's image: a tag, a registry not allowed, another lease's upload
	CodeAlreadyDeployed      = "already_deployed"
	CodeNotDeployed          = "not_deployed"
	CodeBadName              = "bad_name"
	CodeInputTooLarge        = "input_too_large"
	CodeUploadInProgress     = "upload_in_progress"
	CodeNotFound             = "not_found"
	CodeNoServicePort        = "no_service_port"
	CodeServiceUnavailable   = "service_unavailable"
	CodeBadRequest           = "bad_request"
	CodeChainUnavailable     = "chain_unavailable"
	CodeInternal             = "internal"
	CodeHashMismatch         = "hash_mismatch" // client side: a download did not match its hash
	CodeImagesUnsupported    = "images_unsupported"
	CodeImageTooLarge        = "image_too_large"
	CodeImageDigestMismatch  = "image_digest_mismatch"
	CodeBadImage             = "bad_image"
	CodeStartFailed          = "start_failed"
)

// HeaderImageID carries, on an image upload, the ID ("sha256:<hex>") of the
// image the tenant expects the archive to hold.
const HeaderImageID = "X-Kiln-Image-ID"

// SealedInputSuffix ends the name of an input the tenant sealed to the sealing key
// of the provider's TEE attestation (kiln tee seal): the provider opens it inside
// the attested environment and the workload reads it without the suffix
// ("data.csv.sealed" is read as data.csv).
const SealedInputSuffix = ".sealed"

// ImageInfo describes an uploaded image.
type ImageInfo struct {
	// ID is the image ID, "sha256:<hex>": manifest services name the image by it.
	ID string `json:"id"`
	// Tags are the image's tags on the provider; none for an upload, whose
	// tags are stripped so that no tenant can re-point a shared name.
	Tags []string `json:"tags,omitempty"`
	// Size is the archive's size in bytes.
	Size int64 `json:"size"`
}

// Error is an error answered by the provider: the HTTP status and the JSON
// body {"code": ..., "message": ...}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("provider: %s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// HeaderSHA256 carries the hex SHA-256 of a downloaded output.
const HeaderSHA256 = "X-Kiln-SHA256"

// Short abbreviates a certificate fingerprint (Fingerprint) for messages.
func Short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "…"
	}
	return fp
}

// CountingWriter counts the bytes written to it: how much of a transfer
// passed, for the messages on both sides of the API.
type CountingWriter int64

func (c *CountingWriter) Write(p []byte) (int, error) {
	*c += CountingWriter(len(p))
	return len(p), nil
}
