package api

import (
	"strings"
	"testing"
)

func TestValidateUser(t *testing.T) {
	for _, tt := range []struct {
		user string
		ok   bool
	}{
		{"0", true},
		{"65534:65534", true},
		{"4294967295", true},
		{"app", true},
		{"app:staff", true},
		{"_svc.1-a:1000", true},
		{"", false},
		{":", false},
		{"1000:", false},
		{":1000", false},
		{"4294967296", false},
		{"App", false},
		{"a:b:c", false},
		{"1a", false},
		{"root; rm -rf /", false},
		{strings.Repeat("a", 33), false},
	} {
		err := ValidateUser(tt.user)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateUser(%q) = %v, want ok=%v", tt.user, err, tt.ok)
		}
	}
}

func FuzzValidateUser(f *testing.F) {
	for _, s := range []string{"0", "65534:65534", "app:staff", "", ":", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		if ValidateUser(u) != nil {
			return
		}
		// Accepted: one or two parts, each a name or an id that fits in 32 bits.
		parts := strings.Split(u, ":")
		if len(parts) > 2 {
			t.Fatalf("ValidateUser(%q) accepted %d parts", u, len(parts))
		}
		for _, p := range parts {
			if p == "" || len(p) > 32 || strings.ContainsAny(p, " /;\x00") {
				t.Fatalf("ValidateUser(%q) accepted part %q", u, p)
			}
		}
	})
}
