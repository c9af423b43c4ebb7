package catalog

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
)

// Every workload kind is verified through the one registry.
func TestRegistryVerifiesEveryKind(t *testing.T) {
	reg := Registry()
	if got := fmt.Sprint(reg.Kinds()); got != "[matmul render train]" {
		t.Fatalf("kinds %s", got)
	}
	ctx := context.Background()
	jobs := map[string]func(dir string) (units.Job, error){
		"render": func(dir string) (units.Job, error) {
			return render.NewJob(render.Params{Renderer: render.RendererGo, Width: 16, Height: 16, FrameStart: 1, FrameEnd: 1, Tiles: 2, Samples: 2, Seed: 1}, "", dir)
		},
		"train": func(dir string) (units.Job, error) {
			p := train.DefaultParams()
			p.Steps, p.Every = 40, 20
			return train.NewJob(p, train.DataGenerated, dir)
		},
		"matmul": func(string) (units.Job, error) {
			return matmul.NewJob(matmul.UnitParams{N: 32, Seed: 1, BlockRows: 4})
		},
	}
	for kind, mk := range jobs {
		dir := t.TempDir()
		job, err := mk(dir)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := reg.Lookup(kind)
		if err := w.Run(ctx, job, dir, nil); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		// Every file at the top of the directory: a provider seals only those.
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !e.Type().IsRegular() {
				t.Errorf("%s: %s is not a regular file at the top of the output directory", kind, e.Name())
			}
		}
		rep, err := reg.Verify(ctx, dir, 3, []byte("seed"), nil)
		if err != nil || rep.Verdict != units.VerdictOK || rep.Checked != 3 || rep.Kind != kind {
			t.Fatalf("%s: %+v %v", kind, rep, err)
		}
	}
}
