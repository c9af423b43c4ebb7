package cheat

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/kiln-network/kiln/verifier"
	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
)

// Every kind's units faked by Dir are well-formed and listed in units.json (the root
// is over the fakes), and re-execution finds exactly the faked ones; the rest stay
// honest. A directory with no job is left alone.
func TestDirFakesWhatPickNames(t *testing.T) {
	ctx := context.Background()
	rp := render.Params{Renderer: render.RendererGo, Width: 16, Height: 16, FrameStart: 1, FrameEnd: 2, Tiles: 2, Samples: 4, Seed: 1}
	tp := train.DefaultParams()
	tp.Steps, tp.Every = 60, 20
	for _, tt := range []struct {
		kind  string
		cheat string
		job   func(dir string) (units.Job, error)
	}{
		{render.Kind, string(render.CheatUpscaled), func(dir string) (units.Job, error) { return render.NewJob(rp, "", dir) }},
		{train.Kind, string(train.CheatSkippedSteps), func(dir string) (units.Job, error) { return train.NewJob(tp, train.DataGenerated, dir) }},
		{matmul.Kind, string(matmul.CheatZeros), func(string) (units.Job, error) {
			return matmul.NewJob(matmul.UnitParams{N: 32, Seed: 2, BlockRows: 8})
		}},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			job, err := tt.job(dir)
			if err != nil {
				t.Fatal(err)
			}
			reg := catalog.Registry()
			w, err := reg.Lookup(job.Kind)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Run(ctx, job, dir, nil); err != nil {
				t.Fatal(err)
			}
			n, err := Dir(ctx, dir, func(_ units.Job, i int, _ string) string {
				if i%2 == 1 {
					return tt.cheat
				}
				return ""
			})
			if err != nil || n == 0 {
				t.Fatalf("Dir = %d, %v; want units faked", n, err)
			}
			set, err := units.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if job, err = units.ReadJob(dir); err != nil {
				t.Fatal(err)
			}
			claimed, want := map[string][]byte{}, []string{}
			for i, id := range set.IDs() {
				if claimed[id], err = set.Load(dir, id); err != nil {
					t.Fatalf("unit %s after faking: %v", id, err)
				}
				if i%2 == 1 {
					want = append(want, id)
				}
			}
			// NB: the checkpoint after a faked one continues the honest run, so it
			// fails too when replayed from the fake: train fails at least the faked.
			failed, why, err := verifier.Check(ctx, reg, job, claimed, claimed, 7)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range want {
				if !slices.Contains(failed, id) {
					t.Errorf("faked unit %s passed the check (failed: %v)", id, failed)
				}
			}
			if tt.kind != train.Kind && len(failed) != len(want) {
				t.Errorf("failed %v (%v), want exactly the faked %v", failed, why, want)
			}
			t.Logf("%s: %d faked with %s, re-execution failed %d: %s", tt.kind, n, tt.cheat, len(failed), fmt.Sprint(failed))
		})
	}
	if n, err := Dir(ctx, t.TempDir(), func(units.Job, int, string) string { return "x" }); n != 0 || err != nil {
		t.Fatalf("Dir of an empty directory = %d, %v; want it left alone", n, err)
	}
}
