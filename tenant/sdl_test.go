package tenant

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/sdl"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// sdlCorpus returns the Akash SDL corpus beside the repository, or skips.
func sdlCorpus(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "corpus", "akash-sdl")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("Akash SDL corpus not found at %s (it lives in ../shared beside the repository; a user's clone has none): %v", dir, err)
	}
	return dir
}

// Every corpus SDL the tenant turns into orders runs: the order the tenant builds is
// valid on chain, and the manifest it sends passes the provider's own check against
// the resource units the provider derives from that order on chain (daemon.Resources,
// then api.CheckManifest, as the API server and the lease manager run it). Files with
// shm (class ram) volumes were refused here: the order left shm out of storage while
// the manifest counted it.
func TestSDLOrderAndManifestAgree(t *testing.T) {
	dir := sdlCorpus(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	yml, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	files = append(files, yml...)
	sort.Strings(files)
	mustRun := map[string]bool{"Pluralis-Node__deploy.yaml": false, "Llama-3.2-3B__deploy.yaml": false}
	loaded := 0
	for _, f := range files {
		plans, _, err := Load(f)
		if err != nil {
			continue // refused by the SDL parser as Akash refuses it: sdl's corpus test covers those
		}
		loaded++
		name := filepath.Base(f)
		if _, ok := mustRun[name]; ok {
			mustRun[name] = true
		}
		t.Run(strings.TrimSuffix(strings.TrimSuffix(name, ".yaml"), ".yml"), func(t *testing.T) {
			for _, p := range plans {
				msg := &market.MsgCreateOrder{Owner: types.Address{1}, Kind: p.Kind, Groups: p.Groups, MaxPrice: p.MaxPrice, Deposit: p.Deposit}
				if err := msg.ValidateBasic(); err != nil {
					t.Fatalf("order of group %s is invalid: %v", p.Name, err)
				}
				if err := api.CheckManifest(p.Manifest, daemon.Resources(p.Groups)); err != nil {
					t.Errorf("group %s: the provider refuses the manifest the tenant sends: %v", p.Name, err)
				}
			}
		})
	}
	for name, seen := range mustRun {
		if !seen {
			t.Errorf("%s: not loaded from the corpus", name)
		}
	}
	t.Logf("%d of %d corpus files loaded and checked", loaded, len(files))
}

// An SDL unit with a memory-backed volume (class ram, mounted on /dev/shm) and an env
// entry without "=": the order's storage is the disk volumes only, the manifest asks
// exactly that, and the provider accepts it; the bare env name is set to "".
func TestSDLShmVolume(t *testing.T) {
	const doc = `version: "2.0"
services:
  app:
    image: busybox:1.36
    env: [A=1, UPLOAD]
    expose:
      - port: 80
        to: [{global: true}]
    params:
      storage:
        shm: {mount: /dev/shm}
profiles:
  compute:
    app:
      resources:
        cpu: {units: 2}
        memory: {size: 8Gi}
        storage:
          - size: 10Gi
          - name: data
            size: 5Gi
            attributes: {persistent: true, class: beta3}
          - name: shm
            size: 4Gi
            attributes: {class: ram}
  placement:
    dc:
      pricing:
        app: {denom: uakt, amount: 100}
deployment:
  app:
    dc: {profile: app, count: 2}
`
	plans, _, err := Load(write(t, "shm.yaml", doc))
	if err != nil {
		t.Fatal(err)
	}
	p := plans[0]
	g, svc := p.Groups[0], p.Manifest.Services[0]
	if g.StorageBytes != 15<<30 || g.MemoryBytes != 8<<30 || g.Count != 2 {
		t.Errorf("order group = %+v, want 15Gi of storage (10Gi + 5Gi, not the 4Gi shm), 8Gi of memory, count 2", g)
	}
	if want := serviceResources(1, g); svc.Resources != want {
		t.Errorf("service resources = %+v, want %+v (the order group's)", svc.Resources, want)
	}
	if got := strings.Join(svc.Env, ","); got != "A=1,UPLOAD=" {
		t.Errorf("env = %q, want A=1,UPLOAD=", got)
	}
	if err := api.CheckManifest(p.Manifest, daemon.Resources(p.Groups)); err != nil {
		t.Errorf("the provider refuses the manifest: %v", err)
	}
}

func TestSDLUnitPrice(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  bool
	}{
		{"5", 5, false}, {"5.0", 5, false}, {"5.000000000000000001", 6, false}, {"0", 1, false}, {"0.25", 1, false},
		{"18446744073709551615", 1<<64 - 1, false}, {"18446744073709551615.5", 0, true}, {"18446744073709551616", 0, true},
		{"-1", 0, true}, {"1e3", 0, true}, {"", 0, true}, {"1.2.3", 0, true},
	} {
		got, err := sdlUnitPrice(sdl.Coin{Amount: tc.in})
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("sdlUnitPrice(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// The SDL's 2026 additions reach the tenant's order: params.tee becomes the plan's
// TEE and reclamation.min_window its reclaim window; the Console size spellings load
// with a warning instead of refusing the file.
func TestSDL2026OnThePlan(t *testing.T) {
	plans, warnings, err := Load(filepath.Join("..", "sdl", "testdata", "sdl2026", "confidential-inference.yaml"))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if len(plans) != 1 || plans[0].TEE != sdl.TEECPUGPU || plans[0].ReclaimMinWindowSeconds != 86400 {
		t.Fatalf("plans = %+v, want one with TEE cpu-gpu and a 86400 s reclaim window", plans)
	}
	if got := plans[0].Groups[0].MemoryBytes; got != 16<<30 {
		t.Errorf("memory of 16gi = %d, want %d", got, 16<<30)
	}
	n := 0
	for _, w := range warnings {
		if strings.Contains(w, "Akash's Go CLI refuses it") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("warnings = %q, want 3 about Console-only sizes", warnings)
	}
	plans, _, err = Load(filepath.Join("..", "sdl", "testdata", "sdl2026", "confidential-web.yaml"))
	if err != nil || plans[0].TEE != sdl.TEECPU || plans[0].ReclaimMinWindowSeconds != 0 {
		t.Fatalf("Load(confidential-web) = %+v, %v; want TEE cpu and no reclaim window", plans, err)
	}
}
