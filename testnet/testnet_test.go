package testnet

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsRefuseBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"unknown scenario", Options{Bin: "x", Scenario: "meteor"}, "--scenario"},
		{"too few validators", Options{Bin: "x", Scenario: "kill", Validators: 3}, "--validators"},
		{"short duration", Options{Bin: "x", Scenario: "kill", Duration: time.Second}, "--duration"},
		{"fast blocks", Options{Bin: "x", Scenario: "kill", BlockTime: time.Millisecond}, "--block-time"},
		{"no binary", Options{Scenario: "kill"}, "binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.defaults()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
	o := Options{Bin: "x", Scenario: "kill"}
	if err := o.defaults(); err != nil || o.Validators != 4 || o.Accounts != 4 {
		t.Fatalf("defaults: %v %+v", err, o)
	}
}

// Each scenario, short, against real node processes: nothing acknowledged is lost,
// nothing applied twice, no fork, balances equal the replayed history.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4-5 real node processes per scenario")
	}
	bin := filepath.Join(t.TempDir(), "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kiln").CombinedOutput(); err != nil {
		t.Fatalf("build kiln: %v\n%s", err, out)
	}
	for _, s := range Scenarios {
		t.Run(s, func(t *testing.T) {
			if nsScenarios[s] {
				if why := nsAvailable(); why != "" {
					t.Skipf("scenario %s needs network namespaces: %s", s, why)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			res, err := Run(ctx, Options{Bin: bin, Dir: t.TempDir(), Scenario: s, Duration: 12 * time.Second, Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if !res.OK() {
				t.Fatalf("history check failed: %+v", res)
			}
			// The honest validators find the double-sign themselves; the watcher is
			// only the fallback.
			if s == "byzantine" && res.Byzantine.ReportedBy != "validators" {
				t.Fatalf("the double-sign was reported by the %s, not by the validators: %+v", res.Byzantine.ReportedBy, *res.Byzantine)
			}
		})
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
