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
	}
}
