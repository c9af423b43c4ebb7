package imageref_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/kiln-network/kiln/provider/imageref"
)

const (
	dig = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id  = "sha256:" + "ab" + "cdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
)

func TestParseRegistry(t *testing.T) {
	tests := []struct {
		in, want string
		errHas   string
	}{
		{"docker.io", "docker.io", ""},
		{"Docker.IO", "docker.io", ""},
		{"index.docker.io", "docker.io", ""},
		{"ghcr.io/", "ghcr.io", ""},
		{"ghcr.io/acme", "ghcr.io/acme", ""},
		{"ghcr.io/acme/ml-images", "ghcr.io/acme/ml-images", ""},
		{"registry.example.com:5000", "registry.example.com:5000", ""},
		{"localhost", "localhost", ""},
		{"localhost:5000/team", "localhost:5000/team", ""},
		{"127.0.0.1:5000", "127.0.0.1:5000", ""},
		{"", "", "registry host"},
		{"ubuntu", "", "registry host"},
		{"https://ghcr.io", "", "registry host"},
		{"ghcr.io/Acme", "", `component "Acme"`},
		{"ghcr.io//x", "", `component ""`},
		{"ghcr.io/acme:1", "", `component "acme:1"`},
		{"ghcr.io/acme@sha256:00", "", "component"},
	}
	for _, tt := range tests {
		got, err := imageref.ParseRegistry(tt.in)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("ParseRegistry(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.errHas)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRegistry(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNewPolicy(t *testing.T) {
	p, err := imageref.NewPolicy([]string{"docker.io", "index.docker.io", "ghcr.io/acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Registries(), []string{"docker.io", "ghcr.io/acme"}; !slices.Equal(got, want) {
		t.Errorf("Registries() = %v, want %v", got, want)
	}
	if _, err := imageref.NewPolicy([]string{"ghcr.io", "nope"}); err == nil || !strings.Contains(err.Error(), "registries[1]") {
		t.Errorf("NewPolicy(bad second entry) = %v, want an error naming registries[1]", err)
	}
}

func TestCheck(t *testing.T) {
	p, err := imageref.NewPolicy([]string{"docker.io", "ghcr.io/acme", "localhost:5000"})
	if err != nil {
		t.Fatal(err)
	}
	uploaded := []string{id}
	tests := []struct {
		ref    string
		policy imageref.Policy
		want   imageref.Reason // "" for allowed
	}{
		{id, p, ""},
		{id, imageref.Policy{}, ""},
		{id[:20], p, imageref.NotUploaded}, // an ID prefix resolves among all images
		{strings.TrimPrefix(id, "sha256:"), p, imageref.NotUploaded}, // bare hex: also an ID to Docker
		{"abcdef", p, imageref.NotUploaded},
		{dig, p, imageref.NotUploaded}, // another lease's upload, or the operator's image
		{"ubuntu", p, imageref.NotPinned},
		{"ubuntu:22.04", p, imageref.NotPinned},
		{"ghcr.io/acme/app:v1", p, imageref.NotPinned},
		{"ubuntu@" + dig, p, ""},
		{"library/ubuntu@" + dig, p, ""},
		{"docker.io/bitnami/redis@" + dig, p, ""},
		{"index.docker.io/library/ubuntu@" + dig, p, ""},
		{"ubuntu:22.04@" + dig, p, ""},
		{"ghcr.io/acme/app@" + dig, p, ""},
		{"ghcr.io/acme@" + dig, p, ""},
		{"ghcr.io/acmecorp/app@" + dig, p, imageref.RegistryNotAllowed}, // prefix by path component only
		{"ghcr.io/other/app@" + dig, p, imageref.RegistryNotAllowed},
		{"localhost:5000/x@" + dig, p, ""},
		{"localhost:5001/x@" + dig, p, imageref.RegistryNotAllowed},
		{"evil.io/library/ubuntu@" + dig, p, imageref.RegistryNotAllowed},
		{"ubuntu@" + dig, imageref.Policy{}, imageref.RegistryNotAllowed},
		{"ubuntu", imageref.Policy{}, imageref.NotPinned},
		{"Ubuntu@" + dig, p, imageref.Malformed},
		{"ubuntu@sha256:00", p, imageref.Malformed},
		{"ubuntu latest", p, imageref.Malformed},
	}
	for _, tt := range tests {
		err := tt.policy.Check(tt.ref, uploaded)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Check(%q) = %v, want nil", tt.ref, err)
			}
			continue
		}
		var e *imageref.Error
		if !errors.As(err, &e) || e.Reason != tt.want || !errors.Is(err, imageref.ErrNotAllowed) {
			t.Errorf("Check(%q) = %v, want an *Error with reason %s", tt.ref, err, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.ref) {
			t.Errorf("Check(%q) = %q, want the message to quote the reference", tt.ref, err)
		}
	}
}

// The refusals tell the tenant what to do instead.
func TestCheckMessages(t *testing.T) {
	p, _ := imageref.NewPolicy([]string{"ghcr.io"})
	tests := []struct {
		policy imageref.Policy
		ref    string
		want   string
	}{
		{p, "nginx:1.25", "(nginx@sha256:<64 hex>) from a registry this provider allows (ghcr.io)"},
		{imageref.Policy{}, "nginx:1.25", "pulls no registry images: upload the image"},
		{p, "nginx@" + dig, "docker.io/library/nginx is not in a registry this provider allows (ghcr.io)"},
		{p, "sha256:abc", "uploaded to this lease"},
	}
	for _, tt := range tests {
		if err := tt.policy.Check(tt.ref, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%q) = %v, want it to say %q", tt.ref, err, tt.want)
		}
	}
}

func TestPinned(t *testing.T) {
	for ref, want := range map[string]bool{
		"ubuntu@" + dig:        true,
		"ghcr.io/a/b:1@" + dig: true,
		"ubuntu":               false,
		"ubuntu:22.04":         false,
		id:                     false,
		"":                     false,
	} {
		if got := imageref.Pinned(ref); got != want {
			t.Errorf("Pinned(%q) = %v, want %v", ref, got, want)
		}
	}
}

func FuzzParseRegistry(f *testing.F) {
	for _, s := range []string{"docker.io", "ghcr.io/acme", "localhost:5000", "index.docker.io/", "x", "[::1]:5000/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := imageref.ParseRegistry(s)
		if err != nil {
			return
		}
		// A normalized entry is a fixed point, and names a registry prefix
		// that a digest reference below it is checked against.
		if again, err := imageref.ParseRegistry(n); err != nil || again != n {
			t.Fatalf("ParseRegistry(%q) = %q, but ParseRegistry(%q) = %q, %v", s, n, n, again, err)
		}
		p, err := imageref.NewPolicy([]string{s})
		if err != nil {
			t.Fatalf("NewPolicy([%q]) = %v after ParseRegistry accepted it", s, err)
		}
		ref := n + "/x@" + dig
		if _, perr := reference.ParseNormalizedNamed(ref); perr == nil {
			if err := p.Check(ref, nil); err != nil {
				t.Fatalf("NewPolicy([%q]).Check(%q) = %v, want allowed", s, ref, err)
			}
		}
	})
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"ubuntu", "ubuntu@" + dig, id, id[:12], "ghcr.io/acme/app:1@" + dig, "localhost:5000/x", "UPPER", ""} {
		f.Add(s)
	}
	p, err := imageref.NewPolicy([]string{"docker.io", "ghcr.io/acme"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		err := p.Check(ref, []string{id})
		if err != nil {
			var e *imageref.Error
			if !errors.As(err, &e) || e.Ref != ref || !errors.Is(err, imageref.ErrNotAllowed) {
				t.Fatalf("Check(%q) = %v, want an *imageref.Error wrapping ErrNotAllowed", ref, err)
			}
			return
		}
		// Allowed: the lease's own upload, or a digest from an allowed registry.
		if ref == id {
			return
		}
		named, perr := reference.ParseNormalizedNamed(ref)
		if perr != nil {
			t.Fatalf("Check(%q) allowed a reference that does not parse: %v", ref, perr)
		}
		if _, ok := named.(reference.Digested); !ok {
			t.Fatalf("Check(%q) allowed a reference without a digest", ref)
		}
		name := named.Name()
		if !strings.HasPrefix(name, "docker.io/") && name != "ghcr.io/acme" && !strings.HasPrefix(name, "ghcr.io/acme/") {
			t.Fatalf("Check(%q) allowed %s, outside docker.io and ghcr.io/acme", ref, name)
		}
	})
}
