package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
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
		{"fast blocks", Options{Bin: "x", Scenario: "kill", BlockTime: time.Microsecond}, "--block-time"},
		{"join height off statesync", Options{Bin: "x", Scenario: "kill", JoinHeight: 100}, "--join-height"},
		{"short period", Options{Bin: "x", Scenario: "soak", Period: time.Second}, "--period"},
		{"short soak", Options{Bin: "x", Scenario: "soak", Duration: 10 * time.Second}, "--duration"},
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

// Each scenario, and a soak, short, against real node processes: nothing acknowledged
// is lost, nothing applied twice, no fork, balances equal the replayed history.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4-5 real node processes per scenario")
	}
	bin := filepath.Join(t.TempDir(), "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/kiln").CombinedOutput(); err != nil {
		t.Fatalf("build kiln: %v\n%s", err, out)
	}
	// Three scenarios at a time (12 node processes): the package stays near 2 minutes
	// even on a busy machine, and the waits follow progress, not fixed deadlines.
	slots := make(chan struct{}, 3)
	for _, s := range append(append([]string(nil), Scenarios...), "soak") {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			if nsScenarios[s] {
				if why := nsAvailable(s); why != "" {
					t.Skipf("scenario %s needs network namespaces: %s", s, why)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var res Result
			var err error
			if s == "soak" {
				// The first perturbations of the cycle on one network.
				res, err = Soak(ctx, Options{Bin: bin, Dir: t.TempDir(), Duration: 25 * time.Second, Period: 5 * time.Second, Log: testLog{t}})
			} else {
				res, err = Run(ctx, Options{Bin: bin, Dir: t.TempDir(), Scenario: s, Duration: 12 * time.Second, Log: testLog{t}})
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if !res.OK() {
				t.Fatalf("history check failed: %+v", res)
			}
			if s == "soak" && len(res.Perturbations) < 2 {
				t.Fatalf("a soak of %d perturbations: %+v", len(res.Perturbations), res.Perturbations)
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

// statusServer answers CometBFT's JSON-RPC status with a height that a test moves.
// With flap, every other call fails, as a node in trouble answers.
func statusServer(t *testing.T, height *atomic.Int64, flap bool) string {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flap && calls.Add(1)%2 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"node_info":{"network":"x"},"sync_info":{"latest_block_height":"%d"}}}`, req.ID, height.Load())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitAllPast waits as long as heights move, however slowly, and gives up soon
// after they stop, even while a node flaps between answering and not.
func TestWaitAllPastFollowsProgress(t *testing.T) {
	var slow, stuck atomic.Int64
	stuck.Store(3)
	n := &net{pids: map[int]int{0: 1, 1: 1}, paused: map[int]bool{}, stall: 400 * time.Millisecond}
	for _, h := range []*atomic.Int64{&slow, &stuck} {
		c, err := client.New(statusServer(t, h, h == &stuck))
		if err != nil {
			t.Fatal(err)
		}
		n.cl = append(n.cl, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			time.Sleep(250 * time.Millisecond) // slower than nothing, faster than the stall limit
			slow.Add(1)
		}
	}()
	start := time.Now()
	if err := n.waitAllPast(ctx, []int{0}, 9); err != nil {
		t.Fatalf("waitAllPast on a slow, moving node: %v", err)
	}
	if d := time.Since(start); d < 4*n.stall {
		t.Fatalf("reached height 10 in %v: the test did not outlast the stall limit %v", d, n.stall)
	}
	err := n.waitAllPast(ctx, []int{1}, 3)
	if err == nil || !strings.Contains(err.Error(), "no node's height moved") {
		t.Fatalf("waitAllPast on a stuck node = %v; want it to give up naming the stall", err)
	}
}
