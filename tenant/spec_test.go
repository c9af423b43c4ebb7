package tenant

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/x/market"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadKilnSpec(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "data.csv"), []byte("x"), 0o644)
	spec := filepath.Join(dir, "job.yaml")
	os.WriteFile(spec, []byte(`kind: batch
max_price: 5000ukiln
groups:
  - name: main
    cpu: 500m
    memory: 1Gi
    gpu: {units: 2, models: [{model: a100, memory: 80Gi}]}
services:
  - name: train
    command: [python, train.py]
    env: {B: "2", A: "1"}
inputs: [data.csv]
`), 0o644)
	plans, _, err := Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := plans[0]
	g := p.Groups[0]
	if p.Kind != market.KindBatch || p.MaxPrice != 5000 || p.Deposit.Amount != 5000*DefaultDepositBlocks ||
		g.CPUMilli != 500 || g.GPU.Units != 2 || g.GPU.Models[0].Model != "a100" || g.GPU.Models[0].MemoryBytes != 80<<30 {
		t.Fatalf("plan = %+v", p)
	}
	svc := p.Manifest.Services[0]
	if svc.Resources.Unit != 1 || svc.Resources.GPUUnits != 2 || strings.Join(svc.Env, ",") != "A=1,B=2" || len(p.Inputs) != 1 {
		t.Fatalf("service = %+v, inputs %v", svc, p.Inputs)
	}
}

func TestLoadRefusals(t *testing.T) {
	base := "max_price: 100ukiln\ngroups: [{name: g, cpu: \"1\", memory: 1Gi}]\nservices: [{command: [true]}]\n"
	tests := []struct {
		name, body, want string
	}{
		{"unknown field", base + "replicas: 3\n", "replicas"},
		{"no groups", "max_price: 100ukiln\nservices: [{command: [true]}]\n", "groups"},
		{"no price", "groups: [{name: g, cpu: \"1\", memory: 1Gi}]\nservices: [{command: [true]}]\n", "max_price"},
		{"no services", "max_price: 100ukiln\ngroups: [{name: g, cpu: \"1\", memory: 1Gi}]\n", "services"},
		{"bad memory", strings.Replace(base, "1Gi", "1 gigabyte", 1), "memory"},
		{"unknown group", strings.Replace(base, "command: [true]", "group: nope, command: [true]", 1), "group"},
		{"missing input", base + "inputs: [nope.txt]\n", "inputs"},
		{"deposit denom", base + "deposit: 5uatom\n", "deposit"},
		{"missing image archive", strings.Replace(base, "command: [true]", "image_archive: nope.tar", 1), "image_archive"},
		{"image and archive", strings.Replace(base, "command: [true]", "image: x, image_archive: nope.tar", 1), "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(write(t, "s.yaml", tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// A service's image_archive is uploaded before the manifest and becomes its image.
func TestLoadImageArchive(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "job.tar"), []byte("archive"), 0o644)
	spec := filepath.Join(dir, "job.yaml")
	os.WriteFile(spec, []byte(`kind: batch
max_price: 100ukiln
groups: [{name: g, cpu: "1", memory: 1Gi}]
services:
  - name: job
    image_archive: job.tar
    args: [run]
  - name: side
    image: busybox
`), 0o644)
	plans, _, err := Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	p := plans[0]
	if len(p.Images) != 1 || p.Images["job"] != filepath.Join(dir, "job.tar") {
		t.Fatalf("plan images = %v, want job -> %s", p.Images, filepath.Join(dir, "job.tar"))
	}
	if img := p.Manifest.Services[0].Image; img != "" {
		t.Errorf("image of service job before upload = %q, want empty (set by Deploy)", img)
	}
	if !p.Groups[0].Containers {
		t.Errorf("group of image services: Containers = false, want true (only container runtimes may bid)")
	}
}

// Only the groups whose services run container images ask for a container runtime.
func TestContainersMarkedPerGroup(t *testing.T) {
	plans, _, err := Load(write(t, "job.yaml", `kind: batch
max_price: 100ukiln
groups: [{name: cmd, cpu: "1", memory: 1Gi}, {name: img, cpu: "1", memory: 1Gi}]
services:
  - {name: a, group: cmd, command: [true]}
  - {name: b, group: img, image: "registry.example/app@sha256:`+strings.Repeat("a", 64)+`"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if g := plans[0].Groups; g[0].Containers || !g[1].Containers {
		t.Fatalf("Containers = %v, %v; want false for commands, true for the image", g[0].Containers, g[1].Containers)
	}
}

// An Akash SDL file becomes one order per placement group, with prices converted.
func TestLoadSDL(t *testing.T) {
	corpus := filepath.Join("..", "..", "shared", "corpus", "akash-sdl", "Llama-3.1-8B__deploy.yaml")
	if _, err := os.Stat(corpus); err != nil {
		t.Skip("../shared/corpus/akash-sdl is not beside the repo (a user's clone)")
	}
	plans, _, err := Load(corpus)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		if p.Source != "sdl" || p.MaxPrice == 0 || len(p.Groups) == 0 || len(p.Manifest.Services) == 0 {
			t.Fatalf("plan = %+v", p)
		}
		if err := (&market.MsgCreateOrder{Owner: [20]byte{1}, Kind: p.Kind, Groups: p.Groups, MaxPrice: p.MaxPrice, Deposit: p.Deposit}).ValidateBasic(); err != nil {
			t.Fatalf("the order from %s is invalid: %v", corpus, err)
		}
		for _, g := range p.Groups {
			if !g.Containers {
				t.Errorf("SDL group %s: Containers = false; SDL services always run images", g.Name)
			}
		}
	}
}

// An SDL price becomes the order's max price exactly: each unit's converted price
// rounded up to whole ukiln (what `kiln sdl show` prints), times its count.
func TestSDLMaxPriceExact(t *testing.T) {
	const sdlTmpl = `version: "2.0"
services:
  web: {image: nginx, expose: [{port: 80, to: [{global: true}]}]}
profiles:
  compute:
    web: {resources: {cpu: {units: 1}, memory: {size: 512Mi}, storage: {size: 1Gi}}}
  placement:
    dc: {pricing: {web: PRICE}}
deployment:
  web: {dc: {profile: web, count: 2}}
`
	tests := []struct {
		price string
		want  uint64
	}{
		{"{denom: ukiln, amount: 1000}", 2000},
		{"{denom: ukiln, amount: 1000.0000001}", 2002}, // a float with +0.999999 made this 1000
		{"{denom: uact, amount: 100000}", 2 * 16399},   // 16398.819… per Kiln block
		{"{denom: ukiln, amount: 0.000000000000000001}", 2},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "deploy.yaml")
		if err := os.WriteFile(path, []byte(strings.Replace(sdlTmpl, "PRICE", tt.price, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		plans, _, err := Load(path)
		if err != nil {
			t.Fatalf("Load(pricing %s): %v", tt.price, err)
		}
		if len(plans) != 1 || plans[0].MaxPrice != tt.want {
			t.Errorf("Load(pricing %s) max price = %d, want %d", tt.price, plans[0].MaxPrice, tt.want)
		}
	}
}

// A service naming an image by tag is warned of at load: providers would refuse it.
func TestTagWarned(t *testing.T) {
	digest := "registry.example/app@sha256:" + strings.Repeat("a", 64)
	_, warnings, err := Load(write(t, "job.yaml", `kind: batch
max_price: 100ukiln
groups: [{name: g, cpu: "1", memory: 1Gi}]
services:
  - {name: tagged, image: "busybox:1.36", command: [true]}
  - {name: pinned, image: "`+digest+`", command: [true]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "tagged") || !strings.Contains(warnings[0], "by tag") {
		t.Fatalf("warnings = %q, want one naming service tagged", warnings)
	}
}
