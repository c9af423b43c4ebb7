package tenant

import (
	"strings"
	"testing"
)

// A service's user goes into its manifest service; a malformed one is refused
// at load, naming the field.
func TestLoadServiceUser(t *testing.T) {
	spec := func(user string) string {
		return "max_price: 100ukiln\ngroups: [{name: g, cpu: \"1\", memory: 1Gi}]\nservices: [{name: job, command: [true], user: \"" + user + "\"}]\n"
	}
	plans, _, err := Load(write(t, "ok.yaml", spec("1000:1000")))
	if err != nil {
		t.Fatal(err)
	}
	if u := plans[0].Manifest.Services[0].User; u != "1000:1000" {
		t.Errorf("user of service job = %q, want 1000:1000", u)
	}
	for _, bad := range []string{"1000:", "root; rm -rf /"} {
		if _, _, err := Load(write(t, "bad.yaml", spec(bad))); err == nil || !strings.Contains(err.Error(), "user") {
			t.Errorf("Load(user %q) = %v, want an error naming the user", bad, err)
		}
	}
}
