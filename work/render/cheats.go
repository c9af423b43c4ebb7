package render

import (
	"context"
	"fmt"
	"image"

	"github.com/kiln-network/kiln/work/units"
)

// Cheat is a way a dishonest provider fakes a tile more cheaply than rendering it.
type Cheat string

// The cheats Compare must reject (tests and `kiln bench verify` forge each).
const (
	CheatFewerSamples Cheat = "fewer-samples" // a quarter of the samples
	CheatUpscaled     Cheat = "upscaled"      // rendered at half resolution, scaled up
	CheatNeighbour    Cheat = "neighbour"     // the next tile of the same frame
	CheatOtherFrame   Cheat = "other-frame"   // the same tile of another frame
)

// Cheats lists every Cheat.
var Cheats = []Cheat{CheatFewerSamples, CheatUpscaled, CheatNeighbour, CheatOtherFrame}

// Forge returns what a provider cheating with c would claim for tile id: a real PNG of
// the tile's size, made the cheap way.
func (w Workload) Forge(ctx context.Context, job units.Job, id string, c Cheat) ([]byte, error) {
	p, err := params(job)
	if err != nil {
		return nil, err
	}
	t, err := p.TileOf(id)
	if err != nil {
		return nil, err
	}
	var img image.Image
	switch c {
	case CheatFewerSamples:
		q := p
		q.Samples = max(1, p.Samples/4)
		if q.Samples == p.Samples {
			return nil, fmt.Errorf("render: forge %s: %d samples cannot be cut", c, p.Samples)
		}
		img, err = w.one(ctx, job, q, t)
	case CheatUpscaled:
		q := p
		q.Width, q.Height = max(1, p.Width/2), max(1, p.Height/2)
		small := Tile{Frame: t.Frame, Rect: image.Rect(t.Rect.Min.X/2, t.Rect.Min.Y/2, max(t.Rect.Min.X/2+1, t.Rect.Max.X/2), max(t.Rect.Min.Y/2+1, t.Rect.Max.Y/2))}
		var s image.Image
		if s, err = w.one(ctx, job, q, small); err == nil {
			img = upscale(s, t.Rect.Dx(), t.Rect.Dy())
		}
	case CheatNeighbour:
		n := p.tile(t.Frame, t.Row, (t.Col+1)%p.Tiles)
		if p.Tiles == 1 {
			return nil, fmt.Errorf("render: forge %s: a 1x1 grid has no neighbour", c)
		}
		var s image.Image
		if s, err = w.one(ctx, job, p, n); err == nil {
			img = fit(s, t.Rect.Dx(), t.Rect.Dy())
		}
	case CheatOtherFrame:
		o := t
		o.Frame = t.Frame + 1
		img, err = w.one(ctx, job, p, o)
	default:
		return nil, fmt.Errorf("render: unknown cheat %q", c)
	}
	if err != nil {
		return nil, err
	}
	return encode(img)
}

func (w Workload) one(ctx context.Context, job units.Job, p Params, t Tile) (image.Image, error) {
	imgs, err := w.renderTiles(ctx, job, p, []Tile{t}, nil)
	if err != nil {
		return nil, err
	}
	return imgs[0], nil
}

// upscale scales src to w×h, nearest neighbour.
func upscale(src image.Image, w, h int) image.Image {
	b := src.Bounds()
	out := image.NewNRGBA64(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			out.Set(x, y, src.At(b.Min.X+min(b.Dx()-1, x*b.Dx()/w), b.Min.Y+min(b.Dy()-1, y*b.Dy()/h)))
		}
	}
	return out
}

// fit crops or edge-pads src to w×h.
func fit(src image.Image, w, h int) image.Image {
	b := src.Bounds()
	out := image.NewNRGBA64(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			out.Set(x, y, src.At(b.Min.X+min(x, b.Dx()-1), b.Min.Y+min(y, b.Dy()-1)))
		}
	}
	return out
}
