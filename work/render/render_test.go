package render

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/work/units"
)

func smallParams() Params {
	return Params{Renderer: RendererGo, Width: 48, Height: 36, FrameStart: 3, FrameEnd: 4, Tiles: 2, Samples: 4, Seed: 9}
}

// mustRun runs a job of p into a fresh directory and returns it.
func mustRun(tb testing.TB, p Params, scene string) (string, units.Job) {
	tb.Helper()
	dir := tb.TempDir()
	job, err := NewJob(p, scene, dir)
	if err != nil {
		tb.Fatal(err)
	}
	if err := (Workload{}).Run(context.Background(), job, dir, nil); err != nil {
		tb.Fatal(err)
	}
	job, err = units.ReadJob(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return dir, job
}

func TestGoRenderUnits(t *testing.T) {
	p := smallParams()
	dir, job := mustRun(t, p, "")
	set, err := units.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 8 {
		t.Fatalf("2 frames of 2x2 tiles: %d units, want 8", len(set))
	}
	if _, err := units.Root(dir); err != nil {
		t.Fatal(err)
	}
	w := Workload{}
	for _, id := range set.IDs() {
		claimed, err := set.Load(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		again, err := w.RunUnit(context.Background(), job, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Bit-exact: the tile rendered alone is the same PNG, byte for byte.
		if !bytes.Equal(claimed, again) {
			t.Errorf("tile %s rendered alone differs from the job's", id)
		}
		if err := w.Compare(job, id, claimed, again); err != nil {
			t.Errorf("Compare(honest %s) = %v", id, err)
		}
	}
	// Several tiles of several frames at once (a verifier's batch): the same PNGs.
	ids := []string{"f0003-r00-c01", "f0004-r01-c00", "f0004-r01-c01"}
	batch, err := w.RunUnits(context.Background(), job, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if b, _ := set.Load(dir, id); !bytes.Equal(b, batch[id]) {
			t.Errorf("RunUnits: tile %s differs from the job's", id)
		}
	}
	// The assembled frame is the tiles, in place.
	fb, err := os.ReadFile(filepath.Join(dir, FrameFile(3)))
	if err != nil {
		t.Fatal(err)
	}
	frame, err := png.Decode(bytes.NewReader(fb))
	if err != nil || frame.Bounds().Dx() != p.Width || frame.Bounds().Dy() != p.Height {
		t.Fatalf("frame 3: %v %v", frame.Bounds(), err)
	}
	for _, tl := range p.FrameTiles(3) {
		b, _ := set.Load(dir, tl.ID())
		img, _ := png.Decode(bytes.NewReader(b))
		if d := Diff(img, frame.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(tl.Rect)); d.MaxDiff != 0 {
			t.Errorf("frame 3 at tile %s differs from the tile (max %d)", tl.ID(), d.MaxDiff)
		}
	}
	// Frames differ (the glass ball moves): a copied frame is not a rendered one.
	f4, _ := set.Load(dir, "f0004-r01-c00")
	f3, _ := set.Load(dir, "f0003-r01-c00")
	if bytes.Equal(f3, f4) {
		t.Error("tile r01-c00 is the same in frames 3 and 4")
	}
}

func TestCheatsCaught(t *testing.T) {
	p := smallParams()
	p.Samples = 8
	dir, job := mustRun(t, p, "")
	set, _ := units.Read(dir)
	w := Workload{}
	const id = "f0003-r01-c00"
	honest, _ := set.Load(dir, id)
	for _, c := range Cheats {
		t.Run(string(c), func(t *testing.T) {
			forged, err := w.Forge(context.Background(), job, id, c)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := png.Decode(bytes.NewReader(forged))
			hi, _ := png.Decode(bytes.NewReader(honest))
			if fi.Bounds() != hi.Bounds() {
				t.Fatalf("forged tile is %v, honest %v: a size check alone would catch it", fi.Bounds(), hi.Bounds())
			}
			recomputed, _ := w.RunUnit(context.Background(), job, id, nil)
			err = w.Compare(job, id, forged, recomputed)
			if !units.IsMismatch(err) {
				t.Fatalf("Compare(%s tile) = %v, want a mismatch", c, err)
			}
			t.Logf("%s: %v (PSNR vs honest %.1f dB)", c, err, Diff(fi, hi).PSNR)
		})
	}
	if _, err := w.Forge(context.Background(), job, id, "nope"); err == nil {
		t.Fatal("Forge accepted an unknown cheat")
	}
}

func TestVerifyCatchesForgedTile(t *testing.T) {
	p := smallParams()
	dir, job := mustRun(t, p, "")
	reg := units.NewRegistry(Workload{})
	rep, err := reg.Verify(context.Background(), dir, 8, []byte("x"), nil)
	if err != nil || rep.Verdict != units.VerdictOK || rep.Checked != 8 {
		t.Fatalf("honest render: %+v %v", rep, err)
	}
	// The cheat rewrites the tile and its index entry consistently.
	set, _ := units.Read(dir)
	forged, err := (Workload{}).Forge(context.Background(), job, "f0004-r00-c01", CheatNeighbour)
	if err != nil {
		t.Fatal(err)
	}
	delete(set, "f0004-r00-c01")
	if err := set.Put(dir, "f0004-r00-c01", "tiles/forged.png", forged); err != nil {
		t.Fatal(err)
	}
	set.Write(dir)
	rep, err = reg.Verify(context.Background(), dir, 8, []byte("x"), nil)
	if err != nil || rep.Verdict != units.VerdictFraud || len(rep.Failed) != 1 || rep.Failed[0] != "f0004-r00-c01" {
		t.Fatalf("forged tile: %+v %v", rep, err)
	}
}

func TestCompareRefuses(t *testing.T) {
	p := smallParams()
	job, _ := NewJob(p, "", t.TempDir())
	w := Workload{}
	honest, err := w.RunUnit(context.Background(), job, "f0003-r00-c00", nil)
	if err != nil {
		t.Fatal(err)
	}
	small, _ := encode(image.NewNRGBA64(image.Rect(0, 0, 3, 3)))
	for name, claimed := range map[string][]byte{
		"not png":    []byte("hello"),
		"empty":      nil,
		"wrong size": small,
		"truncated":  honest[:len(honest)/2],
	} {
		if err := w.Compare(job, "f0003-r00-c00", claimed, honest); !units.IsMismatch(err) {
			t.Errorf("Compare(%s) = %v, want a mismatch", name, err)
		}
	}
	if err := w.Compare(job, "f0009-r00-c00", honest, honest); err == nil || units.IsMismatch(err) {
		t.Errorf("Compare of a unit outside the job = %v, want a plain error", err)
	}
}

func TestParamsValidate(t *testing.T) {
	ok := smallParams()
	tests := []struct {
		name string
		mod  func(*Params)
		want string
	}{
		{"renderer", func(p *Params) { p.Renderer = "povray" }, "renderer"},
		{"go with scene", func(p *Params) { p.Scene = "x.blend" }, "built-in"},
		{"blender no scene", func(p *Params) { p.Renderer = RendererBlender }, "needs a .blend"},
		{"blender bad scene", func(p *Params) { p.Renderer, p.Scene = RendererBlender, "../x.blend" }, "leaves"},
		{"width", func(p *Params) { p.Width = 0 }, "resolution"},
		{"height", func(p *Params) { p.Height = MaxSide + 1 }, "resolution"},
		{"frames", func(p *Params) { p.FrameEnd = 1 }, "frames"},
		{"tiles", func(p *Params) { p.Tiles = 0 }, "tiles"},
		{"tiles > width", func(p *Params) { p.Tiles, p.Width = 10, 5 }, "tiles"},
		{"samples", func(p *Params) { p.Samples = 0 }, "samples"},
		{"threads", func(p *Params) { p.Threads = -1 }, "threads"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		p := ok
		tt.mod(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.want)
		}
	}
	for _, id := range []string{"f3-r0-c0", "f0003-r02-c00", "f0005-r00-c00", "x", "f0003-r00-c00-"} {
		if _, err := ok.TileOf(id); err == nil {
			t.Errorf("TileOf(%q) accepted", id)
		}
	}
}

func FuzzCompare(f *testing.F) {
	p := smallParams()
	job, _ := NewJob(p, "", f.TempDir())
	honest, err := Workload{}.RunUnit(context.Background(), job, "f0003-r00-c00", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(honest)
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, claimed []byte) {
		err := Workload{}.Compare(job, "f0003-r00-c00", claimed, honest)
		if err != nil && !units.IsMismatch(err) {
			t.Fatalf("Compare of a bad claim is an error, not a mismatch: %v", err)
		}
		if err == nil {
			a, _ := png.Decode(bytes.NewReader(claimed))
			b, _ := png.Decode(bytes.NewReader(honest))
			if Diff(a, b).MaxDiff != 0 {
				t.Fatal("Compare accepted other pixels")
			}
		}
	})
}

// blenderOrSkip returns a Workload with blender, skipping where Debian's blender is absent.
func blenderOrSkip(t *testing.T) Workload {
	t.Helper()
	if _, err := exec.LookPath("blender"); err != nil {
		t.Skip("blender not installed (Debian package blender; .ci/run installs it): Blender tests skipped")
	}
	if testing.Short() {
		t.Skip("-short: Blender renders skipped")
	}
	return Workload{}
}

func TestBlender(t *testing.T) {
	w := blenderOrSkip(t)
	scene := filepath.Join(t.TempDir(), "scene.blend")
	if err := w.MakeScene(context.Background(), scene); err != nil {
		t.Fatal(err)
	}
	p := Params{Renderer: RendererBlender, Width: 64, Height: 48, FrameStart: 5, FrameEnd: 5, Tiles: 2, Samples: 8, Seed: 4, Threads: 2}
	dir, job := mustRun(t, p, scene)
	set, err := units.Read(dir)
	if err != nil || len(set) != 4 {
		t.Fatalf("units: %v %v", set, err)
	}
	const id = "f0005-r00-c01"
	claimed, _ := set.Load(dir, id)
	// A verifier with another thread count re-renders the tile alone.
	q := p
	q.Threads, q.Scene = 1, "scene.blend"
	job1, _ := units.NewJob(Kind, q)
	job1.Assets = job.Assets
	job1 = job1.WithDir(dir)
	again, err := w.RunUnit(context.Background(), job1, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	ci, _ := png.Decode(bytes.NewReader(claimed))
	ai, _ := png.Decode(bytes.NewReader(again))
	d := Diff(ci, ai)
	t.Logf("blender tile re-rendered alone with 1 thread vs the job's 2: max diff %d, PSNR %.1f dB", d.MaxDiff, d.PSNR)
	if err := w.Compare(job, id, claimed, again); err != nil {
		t.Fatalf("Compare(honest blender tile) = %v", err)
	}
	// All four tiles re-rendered in one Blender process: the job's pixels.
	batch, err := w.RunUnits(context.Background(), job1, set.IDs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bid := range set.IDs() {
		b, _ := set.Load(dir, bid)
		if err := w.Compare(job, bid, b, batch[bid]); err != nil {
			t.Errorf("RunUnits: %v", err)
		}
	}
	for _, c := range []Cheat{CheatFewerSamples, CheatNeighbour} {
		forged, err := w.Forge(context.Background(), job, id, c)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := png.Decode(bytes.NewReader(forged))
		err = w.Compare(job, id, forged, again)
		t.Logf("blender %s: PSNR %.1f dB: %v", c, Diff(fi, ai).PSNR, err)
		if !units.IsMismatch(err) {
			t.Errorf("Compare(blender %s) = %v, want a mismatch", c, err)
		}
	}
	// A scene swapped after the job was written is refused, not rendered.
	os.WriteFile(filepath.Join(dir, "scene.blend"), []byte("not the scene"), 0o644)
	if _, err := w.RunUnit(context.Background(), job, id, nil); !errors.Is(err, units.ErrHashMismatch) {
		t.Fatalf("RunUnit on a swapped scene = %v, want ErrHashMismatch", err)
	}
}
