package render

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-network/kiln/work/units"
)

//go:embed scripts/tiles.py
var tilesScript []byte

//go:embed scripts/scene.py
var sceneScript []byte

// blenderPath returns the blender binary to run.
func (w Workload) blenderPath() (string, error) {
	name := w.Blender
	if name == "" {
		name = "blender"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("render: blender not found (%s): install Debian's blender package: %w", name, err)
	}
	return p, nil
}

// blenderTiles renders tiles (of any frames) in one Blender process, so the scene loads
// once, each a border render cropped to the tile.
func (w Workload) blenderTiles(ctx context.Context, job units.Job, p Params, tiles []Tile, tick func()) ([]*image.NRGBA64, error) {
	bin, err := w.blenderPath()
	if err != nil {
		return nil, err
	}
	scene, err := job.AssetPath(p.Scene)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	tmp, err := os.MkdirTemp("", "kiln-blender-")
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "tiles.py")
	if err := os.WriteFile(script, tilesScript, 0o644); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	type tileArg struct {
		Frame int    `json:"frame"`
		X0    int    `json:"x0"`
		Y0    int    `json:"y0"`
		X1    int    `json:"x1"`
		Y1    int    `json:"y1"`
		Out   string `json:"out"`
	}
	args := struct {
		Samples int       `json:"samples"`
		Seed    int64     `json:"seed"`
		Width   int       `json:"width"`
		Height  int       `json:"height"`
		Threads int       `json:"threads"`
		Tiles   []tileArg `json:"tiles"`
	}{p.Samples, p.Seed, p.Width, p.Height, p.Threads, nil}
	for i, t := range tiles {
		args.Tiles = append(args.Tiles, tileArg{t.Frame, t.Rect.Min.X, t.Rect.Min.Y, t.Rect.Max.X, t.Rect.Max.Y, filepath.Join(tmp, fmt.Sprintf("t%d.png", i))})
	}
	aj, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	// NB: --factory-startup keeps the user's preferences and add-ons out of the render,
	// so provider and verifier run the same Blender.
	cmd := exec.CommandContext(ctx, bin, "--factory-startup", "-noaudio", "-b", scene, "--python", script, "--", string(aj))
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("render: start blender: %w", err)
	}
	var tail []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "KILN_TILE_DONE") && tick != nil {
			tick()
		}
		tail = append(tail, line)
		if len(tail) > 20 {
			tail = tail[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("render: blender: %w: %s%s", err, strings.Join(tail, "\n"), stderr.String())
	}
	imgs := make([]*image.NRGBA64, len(tiles))
	for i, t := range tiles {
		b, err := os.ReadFile(args.Tiles[i].Out)
		if err != nil {
			return nil, fmt.Errorf("render: blender wrote no tile %s: %w (log: %s)", t.ID(), err, strings.Join(tail, "\n"))
		}
		img, err := decode(b)
		if err != nil {
			return nil, fmt.Errorf("render: blender tile %s: %w", t.ID(), err)
		}
		if img.Bounds().Dx() != t.Rect.Dx() || img.Bounds().Dy() != t.Rect.Dy() {
			return nil, fmt.Errorf("render: blender tile %s is %dx%d, want %dx%d", t.ID(), img.Bounds().Dx(), img.Bounds().Dy(), t.Rect.Dx(), t.Rect.Dy())
		}
		// Re-encoded by Go: the unit's bytes carry pixels only, not Blender's metadata.
		n := image.NewNRGBA64(image.Rect(0, 0, t.Rect.Dx(), t.Rect.Dy()))
		draw.Draw(n, n.Bounds(), img, img.Bounds().Min, draw.Src)
		imgs[i] = n
	}
	return imgs, nil
}

// MakeScene writes a small animated Cycles scene (a floor, a ball that rolls across 24
// frames, a gold cube, a torus, an area light) to out with blender: a scene for tests,
// the benchmark and trying the workload without one's own .blend.
func (w Workload) MakeScene(ctx context.Context, out string) error {
	bin, err := w.blenderPath()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "kiln-blender-")
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	defer os.RemoveAll(tmp)
	script := filepath.Join(tmp, "scene.py")
	if err := os.WriteFile(script, sceneScript, 0o644); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin, "--factory-startup", "-noaudio", "-b", "--python", script, "--", abs)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("render: blender make scene: %w: %s", err, lastLines(b, 15))
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("render: blender saved no scene: %w", err)
	}
	return nil
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
