package api

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Manifest is what the tenant sends the provider once a lease exists: the
// services to run for the lease's order.
type Manifest struct {
	// Services run in order; their names are unique.
	Services []Service `json:"services"`
}

// Service is one service of a manifest.
type Service struct {
	// Name is unique in the manifest; it must match ServiceNamePattern.
	Name string `json:"name"`
	// Image is the container image (docker executor).
	Image string `json:"image,omitempty"`
	// Command and Args are the program to run: the entrypoint and CMD
	// overrides for docker, the executable and its arguments for process.
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// Env is KEY=VALUE each.
	Env []string `json:"env,omitempty"`
	// User is who the service runs as in its container: "uid", "uid:gid",
	// "name" or "name:group" (names resolved in the image), as Docker's
	// --user takes it. Empty: the image's USER if it sets one, else the
	// provider's unprivileged default (65534:65534). The process executor
	// runs every task as the daemon's user and ignores it.
	User string `json:"user,omitempty"`
	// Resources are per instance.
	Resources ServiceResources `json:"resources"`
	// Count is the number of instances, at least 1.
	Count uint32 `json:"count"`
	// Expose lists the service's ports.
	Expose []Expose `json:"expose,omitempty"`
	// Params are the service's volume mounts (informational for now).
	Params *Params `json:"params,omitempty"`
}

// UnitID is the resource unit ID of an order's group at index group: its
// 1-based position. The one place "group i is unit i+1" is written: orders
// (x/market) number groups from 0, manifests name units from 1, as Akash does.
func UnitID(group int) uint32 { return uint32(group) + 1 }

// GroupIndex is the index of the order group that resource unit id is, and
// false for 0, which names no unit.
func GroupIndex(id uint32) (int, bool) {
	if id == 0 {
		return 0, false
	}
	return int(id - 1), true
}

// ServiceResources are the resources of one instance of a service.
type ServiceResources struct {
	// Unit is the order's resource unit the service runs in (ResourceUnit.ID);
	// 0 is allowed when the order has a single unit.
	Unit         uint32 `json:"unit,omitempty"`
	CPUMilli     uint64 `json:"cpu_milli"`
	MemoryBytes  uint64 `json:"memory_bytes"`
	StorageBytes uint64 `json:"storage_bytes"`
	GPUUnits     uint32 `json:"gpu_units"`
}

// Expose is one exposed port.
type Expose struct {
	// Port is the port the service listens on.
	Port uint32 `json:"port"`
	// As is the port seen from outside; 0 means Port.
	As uint32 `json:"as,omitempty"`
	// Proto is "tcp" (default) or "udp".
	Proto string `json:"proto,omitempty"`
	// Global is true when reachable from outside the lease (the ingress).
	Global bool `json:"global"`
}

// Params are a service's volume mounts.
type Params struct {
	Storage []StorageMount `json:"storage,omitempty"`
}

// StorageMount mounts a named volume of the service's resources.
type StorageMount struct {
	Name     string `json:"name"`
	Mount    string `json:"mount"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// ServiceNamePattern is the pattern service names must match; it keeps task
// ids (lease-service-replica) valid for every executor.
const ServiceNamePattern = `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`

var serviceName = regexp.MustCompile(ServiceNamePattern)

// maxReplicas bounds Count so that a manifest cannot ask the executor for
// an absurd number of tasks before the order check runs.
const maxReplicas = 1024

// ManifestError is a manifest refused: the service, the field and why.
type ManifestError struct {
	// Service is the service's name ("" for the manifest as a whole).
	Service string
	// Field is the field path, e.g. "resources.memory_bytes".
	Field string
	// Message says what is wrong, e.g. "asks 2048 per instance, the order's unit 1 has 1024".
	Message string
	// Exceeds is true when the manifest asks more than the order.
	Exceeds bool
}

func (e *ManifestError) Error() string {
	if e.Service == "" {
		return fmt.Sprintf("manifest: %s: %s", e.Field, e.Message)
	}
	return fmt.Sprintf("manifest: service %q: %s: %s", e.Service, e.Field, e.Message)
}

// Validate checks the manifest on its own: names, counts, ports, env.
func (m Manifest) Validate() error {
	if len(m.Services) == 0 {
		return &ManifestError{Field: "services", Message: "must list at least one service"}
	}
	seen := map[string]bool{}
	for i, s := range m.Services {
		bad := func(field, format string, a ...any) error {
			name := s.Name
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return &ManifestError{Service: name, Field: field, Message: fmt.Sprintf(format, a...)}
		}
		if !serviceName.MatchString(s.Name) {
			return bad("name", "must match %s (got %q)", ServiceNamePattern, s.Name)
		}
		if seen[s.Name] {
			return bad("name", "appears twice")
		}
		seen[s.Name] = true
		if s.Image == "" && len(s.Command) == 0 {
			return bad("image", "an image or a command must be set")
		}
		if s.Count < 1 || s.Count > maxReplicas {
			return bad("count", "must be 1 to %d (got %d)", maxReplicas, s.Count)
		}
		for _, e := range s.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				return bad("env", "%q: must be KEY=VALUE", e)
			}
		}
		if s.User != "" {
			if err := ValidateUser(s.User); err != nil {
				return bad("user", "%v", err)
			}
		}
		for j, p := range s.Expose {
			if p.Port < 1 || p.Port > 65535 || p.As > 65535 {
				return bad(fmt.Sprintf("expose[%d].port", j), "must be 1 to 65535 (got %d as %d)", p.Port, p.As)
			}
			if pr := strings.ToLower(p.Proto); pr != "" && pr != "tcp" && pr != "udp" {
				return bad(fmt.Sprintf("expose[%d].proto", j), "must be tcp or udp (got %q)", p.Proto)
			}
		}
	}
	return nil
}

// userPart is a user or group: a name as useradd accepts it, or a number.
var userPart = regexp.MustCompile(`^(?:[a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})$`)

// ValidateUser checks a service's user: "uid", "uid:gid", "name" or
// "name:group", each part a name of at most 32 characters ([a-z_][a-z0-9_.-]*)
// or a number below 2^32.
func ValidateUser(u string) error {
	user, group, hasGroup := strings.Cut(u, ":")
	parts := []string{user}
	if hasGroup {
		parts = append(parts, group)
	}
	for _, p := range parts {
		if !userPart.MatchString(p) {
			return fmt.Errorf("must be uid[:gid] or name[:group] (got %q)", u)
		}
		if p[0] >= '0' && p[0] <= '9' {
			if _, err := strconv.ParseUint(p, 10, 32); err != nil {
				return fmt.Errorf("id %s: must be below 2^32 (got %q)", p, u)
			}
		}
	}
	return nil
}

// CheckManifest validates m and checks that it asks no more than the order:
// each service's instances fit its resource unit, and the services sharing a
// unit ask no more instances than the unit's count. The error is a
// *ManifestError naming the service, the field, and asked against ordered.
func CheckManifest(m Manifest, order []ResourceUnit) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if len(order) == 0 {
		return &ManifestError{Field: "services", Message: "the order has no resource units", Exceeds: true}
	}
	used := map[uint32]uint32{}
	for _, s := range m.Services {
		r := s.Resources
		var u *ResourceUnit
		switch {
		case r.Unit == 0 && len(order) == 1:
			u = &order[0]
		case r.Unit == 0:
			ids := make([]string, len(order))
			for i, o := range order {
				ids[i] = fmt.Sprint(o.ID)
			}
			return &ManifestError{Service: s.Name, Field: "resources.unit", Message: fmt.Sprintf("must name one of the order's resource units (%s)", strings.Join(ids, ", "))}
		default:
			i := slices.IndexFunc(order, func(o ResourceUnit) bool { return o.ID == r.Unit })
			if i < 0 {
				return &ManifestError{Service: s.Name, Field: "resources.unit", Message: fmt.Sprintf("the order has no resource unit %d", r.Unit), Exceeds: true}
			}
			u = &order[i]
		}
		for _, c := range []struct {
			field          string
			asked, ordered uint64
		}{
			{"resources.cpu_milli", r.CPUMilli, u.CPUMilli},
			{"resources.memory_bytes", r.MemoryBytes, u.MemoryBytes},
			{"resources.storage_bytes", r.StorageBytes, u.StorageBytes},
			{"resources.gpu_units", uint64(r.GPUUnits), uint64(u.GPUUnits)},
		} {
			if c.asked > c.ordered {
				return &ManifestError{Service: s.Name, Field: c.field, Exceeds: true,
					Message: fmt.Sprintf("asks %d per instance, the order's unit %d has %d", c.asked, u.ID, c.ordered)}
			}
		}
		used[u.ID] += s.Count
		if used[u.ID] > u.Count {
			return &ManifestError{Service: s.Name, Field: "count", Exceeds: true,
				Message: fmt.Sprintf("brings the instances in unit %d to %d, the order has %d", u.ID, used[u.ID], u.Count)}
		}
	}
	return nil
}
