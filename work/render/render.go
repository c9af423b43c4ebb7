// Package render is Kiln's rendering workload: frames split into tile units, each tile
// rendered on its own (a Blender border render, or a tile of the built-in Go path
// tracer), tiles assembled into PNG frames.
//
// A job is frames A..B of a scene at W×H with S samples per pixel and seed, cut into an
// N×N tile grid. Unit "f0003-r01-c02" is frame 3, tile row 1, column 2, written as a
// 16-bit PNG, fNNNN-rRR-cCC.png; frame-NNNN.png are assembled from the tiles (not units:
// they follow from them). Every file is at the top of DIR: a provider seals only the top
// level of its output directory.
//
// Tolerance policy (Compare):
//   - Go tracer: bit-exact. Every pixel's random stream is seeded by (seed, frame, x, y),
//     so a tile rendered alone is the same pixels as in the whole frame; floating point is
//     kept out of FMA fusion, so any amd64 machine gives the same bits (the verifier runs
//     the same GOARCH; other architectures are not promised).
//   - Blender Cycles (CPU): Cycles seeds each pixel's samples from the scene seed and the
//     pixel, so a border render of a tile is the tile of the full frame. Measured here
//     (Blender 3.4.1, Debian): re-rendering a tile gives bit-identical pixels (max
//     difference 0, with the same thread count or another). The policy still allows a
//     verifier on another CPU or Blender build a little floating-point noise: PSNR of the
//     claimed tile against the re-render of at least BlenderMinPSNR dB and no pixel
//     channel off by more than BlenderMaxDiff of 65535. The cheats are far outside that
//     (measured in the tests: a quarter of the samples, a half-resolution upscale, a
//     neighbour's or another frame's tile all fall under 40 dB).
//
// Either way the claimed tile must have exactly the tile's width and height.
package render

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path"
	"regexp"
	"runtime"
	"strconv"
	"sync"

	"github.com/kiln-network/kiln/work/units"
)

// Kind is the job kind of render jobs.
const Kind = "render"

// Renderers.
const (
	RendererGo      = "go"
	RendererBlender = "blender"
)

// Limits of a job: generous for real work, small enough that a hostile job.json cannot
// ask a verifier for a 10^12-pixel tile.
const (
	MaxSide    = 8192
	MaxSamples = 1 << 16
	MaxTiles   = 64
	MaxFrames  = 100000
)

// Params are a render job's parameters (job.json "params").
type Params struct {
	Renderer   string `json:"renderer"`        // "go" or "blender"
	Scene      string `json:"scene,omitempty"` // blender: the .blend asset's name in the job
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	FrameStart int    `json:"frame_start"`
	FrameEnd   int    `json:"frame_end"`
	Tiles      int    `json:"tiles"` // the frame is cut into Tiles×Tiles tiles
	Samples    int    `json:"samples"`
	Seed       int64  `json:"seed"`
	Threads    int    `json:"threads,omitempty"` // blender: render threads (0: all CPUs)
}

// DefaultParams is the built-in scene's job: small enough for the demo on two cores.
func DefaultParams() Params {
	return Params{Renderer: RendererGo, Width: 192, Height: 144, FrameStart: 1, FrameEnd: 2, Tiles: 4, Samples: 16, Seed: 1}
}

// Validate says what is wrong with p, naming the field.
func (p Params) Validate() error {
	switch p.Renderer {
	case RendererGo:
		if p.Scene != "" {
			return fmt.Errorf("render scene: the go renderer has one built-in scene (got %q)", p.Scene)
		}
	case RendererBlender:
		if p.Scene == "" {
			return fmt.Errorf("render scene: blender needs a .blend scene")
		}
		if err := units.ValidPath(p.Scene); err != nil {
			return fmt.Errorf("render scene: %w", err)
		}
	default:
		return fmt.Errorf("render renderer: must be %q or %q (got %q)", RendererGo, RendererBlender, p.Renderer)
	}
	if p.Width < 1 || p.Width > MaxSide || p.Height < 1 || p.Height > MaxSide {
		return fmt.Errorf("render resolution: %dx%d, each side must be 1 to %d", p.Width, p.Height, MaxSide)
	}
	if p.FrameStart < 0 || p.FrameEnd < p.FrameStart || p.FrameEnd-p.FrameStart >= MaxFrames {
		return fmt.Errorf("render frames: %d-%d, want 0 <= A <= B and at most %d frames", p.FrameStart, p.FrameEnd, MaxFrames)
	}
	if p.Tiles < 1 || p.Tiles > MaxTiles || p.Tiles > p.Width || p.Tiles > p.Height {
		return fmt.Errorf("render tiles: %d, must be 1 to %d and at most the width and height", p.Tiles, MaxTiles)
	}
	if p.Samples < 1 || p.Samples > MaxSamples {
		return fmt.Errorf("render samples: %d, must be 1 to %d", p.Samples, MaxSamples)
	}
	if p.Threads < 0 || p.Threads > 1024 {
		return fmt.Errorf("render threads: %d, must be 0 to 1024", p.Threads)
	}
	return nil
}

// Tile is one tile of a frame.
type Tile struct {
	Frame, Row, Col int
	Rect            image.Rectangle // pixels of the frame, y = 0 at the top
}

// ID is the tile's unit id.
func (t Tile) ID() string { return fmt.Sprintf("f%04d-r%02d-c%02d", t.Frame, t.Row, t.Col) }

// File is the tile's file under the job directory.
func (t Tile) File() string { return t.ID() + ".png" }

var tileID = regexp.MustCompile(`^f(\d{4,6})-r(\d{2})-c(\d{2})$`)

// TileOf returns the tile of unit id in a job of p.
func (p Params) TileOf(id string) (Tile, error) {
	m := tileID.FindStringSubmatch(id)
	if m == nil {
		return Tile{}, fmt.Errorf("render unit %q: not a tile id (fNNNN-rRR-cCC)", id)
	}
	f, _ := strconv.Atoi(m[1])
	r, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	if f < p.FrameStart || f > p.FrameEnd || r >= p.Tiles || c >= p.Tiles {
		return Tile{}, fmt.Errorf("render unit %q: not in frames %d-%d with %dx%d tiles", id, p.FrameStart, p.FrameEnd, p.Tiles, p.Tiles)
	}
	return p.tile(f, r, c), nil
}

func (p Params) tile(f, r, c int) Tile {
	return Tile{Frame: f, Row: r, Col: c, Rect: image.Rect(c*p.Width/p.Tiles, r*p.Height/p.Tiles, (c+1)*p.Width/p.Tiles, (r+1)*p.Height/p.Tiles)}
}

// FrameTiles returns the tiles of frame f, row by row.
func (p Params) FrameTiles(f int) []Tile {
	var ts []Tile
	for r := 0; r < p.Tiles; r++ {
		for c := 0; c < p.Tiles; c++ {
			ts = append(ts, p.tile(f, r, c))
		}
	}
	return ts
}

// Workload is the render workload (units.Workload). Blender is the blender binary
// ("" finds "blender" on PATH).
type Workload struct {
	Blender string
}

var _ units.Workload = Workload{}

// Kind implements units.Workload.
func (Workload) Kind() string { return Kind }

// NewJob returns the job of p, with the Blender scene (if any) read from scenePath and
// pinned as an asset in out. It does not render.
func NewJob(p Params, scenePath, out string) (units.Job, error) {
	if p.Renderer == RendererBlender && p.Scene == "" {
		p.Scene = "scene.blend"
	}
	if err := p.Validate(); err != nil {
		return units.Job{}, err
	}
	job, err := units.NewJob(Kind, p)
	if err != nil {
		return units.Job{}, err
	}
	if p.Renderer == RendererBlender {
		if err := job.AddAsset(out, p.Scene, scenePath); err != nil {
			return units.Job{}, err
		}
	}
	return job.WithDir(out), nil
}

func params(job units.Job) (Params, error) {
	if job.Kind != Kind {
		return Params{}, fmt.Errorf("render: job kind %q", job.Kind)
	}
	var p Params
	if err := job.DecodeParams(&p); err != nil {
		return Params{}, err
	}
	return p, p.Validate()
}

// Run renders every tile of every frame, assembles the frames and writes units.json and
// job.json under out.
func (w Workload) Run(ctx context.Context, job units.Job, out string, progress units.Progress) error {
	p, err := params(job)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	job = job.WithDir(out)
	var all []Tile
	for f := p.FrameStart; f <= p.FrameEnd; f++ {
		all = append(all, p.FrameTiles(f)...)
	}
	set := units.Set{}
	done := 0
	for f := p.FrameStart; f <= p.FrameEnd; f++ {
		tiles := p.FrameTiles(f)
		imgs, err := w.renderTiles(ctx, job, p, tiles, func() {
			done++
			if progress != nil {
				progress(done, len(all), fmt.Sprintf("frame %d", f))
			}
		})
		if err != nil {
			return err
		}
		frame := image.NewNRGBA64(image.Rect(0, 0, p.Width, p.Height))
		for i, t := range tiles {
			b, err := encode(imgs[i])
			if err != nil {
				return err
			}
			if err := set.Put(out, t.ID(), t.File(), b); err != nil {
				return err
			}
			place(frame, imgs[i], t.Rect)
		}
		fb, err := encode(frame)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path.Join(out, FrameFile(f)), fb, 0o644); err != nil {
			return fmt.Errorf("render: write frame %d: %w", f, err)
		}
	}
	if err := job.Write(out); err != nil {
		return err
	}
	return set.Write(out)
}

// FrameFile is frame f's assembled PNG under the job directory.
func FrameFile(f int) string { return fmt.Sprintf("frame-%04d.png", f) }

// renderTiles renders tiles of one frame with p's renderer; tick is called (serially)
// after each tile.
func (w Workload) renderTiles(ctx context.Context, job units.Job, p Params, tiles []Tile, tick func()) ([]*image.NRGBA64, error) {
	if p.Renderer == RendererBlender {
		return w.blenderTiles(ctx, job, p, tiles, tick)
	}
	imgs := make([]*image.NRGBA64, len(tiles))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int, len(tiles))
	for i := range tiles {
		next <- i
	}
	close(next)
	for range min(runtime.GOMAXPROCS(0), len(tiles)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					return
				}
				imgs[i] = goTile(p, tiles[i], p.Samples)
				mu.Lock()
				if tick != nil {
					tick()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return imgs, nil
}

// goTile renders tile t of the built-in scene with samples per pixel.
func goTile(p Params, t Tile, samples int) *image.NRGBA64 {
	sc := scene(t.Frame)
	img := image.NewNRGBA64(image.Rect(0, 0, t.Rect.Dx(), t.Rect.Dy()))
	for y := t.Rect.Min.Y; y < t.Rect.Max.Y; y++ {
		for x := t.Rect.Min.X; x < t.Rect.Max.X; x++ {
			c := tracePixel(sc, p.Width, p.Height, x, y, samples, p.Seed, t.Frame)
			img.SetNRGBA64(x-t.Rect.Min.X, y-t.Rect.Min.Y, color.NRGBA64{toneMap(c.x), toneMap(c.y), toneMap(c.z), 0xffff})
		}
	}
	return img
}

// Inputs implements units.Workload: a tile needs nothing but the job.
func (Workload) Inputs(units.Job, string) ([]string, error) { return nil, nil }

// RunUnit renders one tile alone and returns its PNG.
func (w Workload) RunUnit(ctx context.Context, job units.Job, id string, _ map[string][]byte) ([]byte, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	t, err := p.TileOf(id)
	if err != nil {
		return nil, err
	}
	imgs, err := w.renderTiles(ctx, job, p, []Tile{t}, nil)
	if err != nil {
		return nil, err
	}
	return encode(imgs[0])
}

// RunUnits renders several tiles in one pass (one Blender process for all of them):
// units.Batcher, so a verifier pays Blender's start-up once per check, not once per tile.
func (w Workload) RunUnits(ctx context.Context, job units.Job, ids []string, _ map[string][]byte) (map[string][]byte, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	tiles := make([]Tile, len(ids))
	for i, id := range ids {
		if tiles[i], err = p.TileOf(id); err != nil {
			return nil, err
		}
	}
	imgs, err := w.renderTiles(ctx, job, p, tiles, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(ids))
	for i, id := range ids {
		if out[id], err = encode(imgs[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var _ units.Batcher = Workload{}

// Tolerance of Blender tiles (see the package doc).
const (
	BlenderMinPSNR = 60.0
	BlenderMaxDiff = 2048
)

// Compare implements units.Workload with the package's tolerance policy.
func (Workload) Compare(job units.Job, id string, claimed, recomputed []byte) error {
	p, err := params(job)
	if err != nil {
		return err
	}
	t, err := p.TileOf(id)
	if err != nil {
		return err
	}
	want, err := decode(recomputed)
	if err != nil {
		return fmt.Errorf("render: recomputed tile %s: %w", id, err)
	}
	got, err := decode(claimed)
	if err != nil {
		return units.Mismatch(id, "claimed tile is not a PNG: %v", err)
	}
	if got.Bounds().Dx() != t.Rect.Dx() || got.Bounds().Dy() != t.Rect.Dy() {
		return units.Mismatch(id, "claimed tile is %dx%d, the tile is %dx%d", got.Bounds().Dx(), got.Bounds().Dy(), t.Rect.Dx(), t.Rect.Dy())
	}
	d := Diff(got, want)
	switch p.Renderer {
	case RendererGo:
		if d.MaxDiff != 0 {
			return units.Mismatch(id, "pixels differ from the re-render (max channel difference %d/65535, PSNR %.1f dB; the Go tracer is bit-exact)", d.MaxDiff, d.PSNR)
		}
	default:
		if d.PSNR < BlenderMinPSNR || d.MaxDiff > BlenderMaxDiff {
			return units.Mismatch(id, "pixels differ from the re-render: PSNR %.1f dB (need >= %.0f), max channel difference %d/65535 (allowed %d)", d.PSNR, BlenderMinPSNR, d.MaxDiff, BlenderMaxDiff)
		}
	}
	return nil
}

// Difference between two images of the same size.
type Difference struct {
	MaxDiff int     // largest difference of one 16-bit channel
	PSNR    float64 // peak signal-to-noise ratio in dB over RGB (+Inf when identical)
}

// Diff compares a and b (same bounds size) channel by channel over RGB.
func Diff(a, b image.Image) Difference {
	ab, bb := a.Bounds(), b.Bounds()
	var se float64
	var n int
	d := Difference{}
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, _ := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			for _, c := range [3][2]uint32{{r1, r2}, {g1, g2}, {b1, b2}} {
				e := int(c[0]) - int(c[1])
				if e < 0 {
					e = -e
				}
				d.MaxDiff = max(d.MaxDiff, e)
				se += float64(e) * float64(e)
				n++
			}
		}
	}
	if se == 0 {
		d.PSNR = math.Inf(1)
	} else {
		d.PSNR = 10 * math.Log10(65535.0*65535.0/(se/float64(n)))
	}
	return d
}

func encode(img image.Image) ([]byte, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, fmt.Errorf("render: encode PNG: %w", err)
	}
	return b.Bytes(), nil
}

// maxTilePixels bounds what decode accepts, so a hostile "tile" cannot claim a huge
// image and exhaust a verifier's memory.
const maxTilePixels = MaxSide * MaxSide / 4

func decode(b []byte) (image.Image, error) {
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if cfg.Width*cfg.Height > maxTilePixels {
		return nil, fmt.Errorf("%dx%d pixels, more than a tile may have", cfg.Width, cfg.Height)
	}
	return png.Decode(bytes.NewReader(b))
}

// place copies tile img into frame at r.
func place(frame *image.NRGBA64, img image.Image, r image.Rectangle) {
	ib := img.Bounds()
	for y := 0; y < r.Dy() && y < ib.Dy(); y++ {
		for x := 0; x < r.Dx() && x < ib.Dx(); x++ {
			frame.Set(r.Min.X+x, r.Min.Y+y, img.At(ib.Min.X+x, ib.Min.Y+y))
		}
	}
}
