// Package imageref decides which container images a lease may run: an image
// uploaded to that lease, named by its ID, or an image pinned by digest
// (repo@sha256:…) from a registry the provider allows.
//
// A tag is a name anyone with push rights, or another tenant's upload on the
// same Docker host, can re-point: a lease that names "ubuntu:22.04" runs
// whatever carries that tag on the provider at the time. An ID or a digest
// names the bytes themselves.
package imageref

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// ErrNotAllowed is wrapped by every refusal of Policy.Check.
var ErrNotAllowed = errors.New("image not allowed")

// Policy is the provider's rule for the images leases may run. The zero
// Policy allows only images uploaded to the lease.
type Policy struct {
	// registries are normalized registry prefixes: a host[:port], optionally
	// followed by repository path components ("ghcr.io/acme").
	registries []string
}

// NewPolicy returns a policy allowing images pinned by digest from the given
// registries. An entry is a registry host ("docker.io", "ghcr.io",
// "registry.example.com:5000", "localhost:5000"), optionally with a
// repository prefix ("ghcr.io/acme" allows ghcr.io/acme/... only).
// "index.docker.io" is Docker Hub's legacy name for docker.io.
func NewPolicy(registries []string) (Policy, error) {
	var p Policy
	for i, r := range registries {
		n, err := ParseRegistry(r)
		if err != nil {
			return Policy{}, fmt.Errorf("registries[%d]: %w", i, err)
		}
		if !slices.Contains(p.registries, n) {
			p.registries = append(p.registries, n)
		}
	}
	return p, nil
}

// Registries returns the normalized registry prefixes the policy allows.
func (p Policy) Registries() []string { return slices.Clone(p.registries) }

var (
	anchoredDomain = regexp.MustCompile(`^(?:` + reference.DomainRegexp.String() + `)$`)
	// pathComponent is a repository path component as the distribution
	// reference grammar defines it.
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
)

// ParseRegistry validates one allowed-registry entry and returns it
// normalized: the host lower-cased, "index.docker.io" as "docker.io", no
// trailing slash.
func ParseRegistry(s string) (string, error) {
	host, path, _ := strings.Cut(strings.TrimSuffix(s, "/"), "/")
	host = strings.ToLower(host)
	if !anchoredDomain.MatchString(host) || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return "", fmt.Errorf("%q: must be a registry host such as docker.io, ghcr.io or registry.example.com:5000 (a host with a dot or a port, or localhost), optionally followed by /path", s)
	}
	if host == "index.docker.io" {
		host = "docker.io"
	}
	if path == "" {
		return host, nil
	}
	for _, c := range strings.Split(path, "/") {
		if !pathComponent.MatchString(c) {
			return "", fmt.Errorf("%q: repository path component %q must be lower-case letters and digits, joined by '.', '_', '__' or '-'", s, c)
		}
	}
	return host + "/" + path, nil
}

// Reason is why Check refused a reference.
type Reason string

// Reasons of an Error.
const (
	// NotUploaded: an image ID (or a prefix of one) that is not one of the lease's uploads.
	NotUploaded Reason = "not_uploaded"
	// NotPinned: a name without a digest (a tag, or no tag: "latest").
	NotPinned Reason = "not_pinned"
	// RegistryNotAllowed: pinned by digest, from a registry the provider does not allow.
	RegistryNotAllowed Reason = "registry_not_allowed"
	// Malformed: not an image reference at all.
	Malformed Reason = "malformed"
)

// Error is a reference Check refused. It wraps ErrNotAllowed.
type Error struct {
	// Ref is the reference as the manifest wrote it.
	Ref string
	// Reason says which rule refused it.
	Reason Reason
	// Detail explains, and says what to do instead.
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("image %q: %v: %s", e.Ref, ErrNotAllowed, e.Detail)
}

func (e *Error) Unwrap() error { return ErrNotAllowed }

// idLike is what the Docker Engine may resolve as an image ID or a prefix of
// one, among all the images on the host.
var idLike = regexp.MustCompile(`^(sha256:)?[0-9a-f]{1,64}$`)

// fullID is an image ID as the Docker Engine writes it.
var fullID = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Check returns nil when a lease that uploaded the images uploaded (their IDs,
// "sha256:<hex>") may run ref, and an *Error saying why not otherwise. ref is
// allowed when it is one of uploaded, written in full, or names a repository
// of an allowed registry pinned by digest (a tag beside the digest is
// ignored, as Docker ignores it).
func (p Policy) Check(ref string, uploaded []string) error {
	refuse := func(r Reason, format string, a ...any) error {
		return &Error{Ref: ref, Reason: r, Detail: fmt.Sprintf(format, a...)}
	}
	if idLike.MatchString(ref) {
		if fullID.MatchString(ref) && slices.Contains(uploaded, ref) {
			return nil
		}
		return refuse(NotUploaded, "an image named by ID must have been uploaded to this lease, and be named by its full ID (sha256:<64 hex>)")
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return refuse(Malformed, "not an image reference: %v", err)
	}
	name := named.Name()
	if _, ok := named.(reference.Digested); !ok {
		if len(p.registries) == 0 {
			return refuse(NotPinned, "a tag can be re-pointed to other content, and this provider pulls no registry images: upload the image to the lease")
		}
		return refuse(NotPinned, "a tag can be re-pointed to other content: name the image by digest (%s@sha256:<64 hex>) from a registry this provider allows (%s), or upload it to the lease",
			reference.FamiliarName(named), strings.Join(p.registries, ", "))
	}
	for _, r := range p.registries {
		if name == r || strings.HasPrefix(name, r+"/") {
			return nil
		}
	}
	if len(p.registries) == 0 {
		return refuse(RegistryNotAllowed, "this provider pulls no registry images: upload the image to the lease")
	}
	return refuse(RegistryNotAllowed, "%s is not in a registry this provider allows (%s): upload the image to the lease instead", name, strings.Join(p.registries, ", "))
}

// Pinned reports whether ref names an image by digest (repo@sha256:…), the
// only kind of reference worth pulling: the registry cannot serve other
// content under it.
func Pinned(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	_, ok := named.(reference.Digested)
	return ok
}
