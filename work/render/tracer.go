package render

import (
	"math"
)

// The Go path tracer: a smallpt-style Cornell box (walls are huge spheres) with a mirror
// ball, a glass ball that moves from frame to frame, and an area light; diffuse, mirror
// and glass surfaces, Russian roulette after a few bounces.
//
// NB: every floating-point product that could be fused into an FMA is written through
// explicit float64 conversions where the order matters; the Go spec lets a compiler fuse
// x*y+z, and a verifier on another GOARCH must not get other bits from the same tile.
// Bit-exactness is promised on the same GOARCH (see the package doc).

type vec struct{ x, y, z float64 }

func (a vec) add(b vec) vec       { return vec{a.x + b.x, a.y + b.y, a.z + b.z} }
func (a vec) sub(b vec) vec       { return vec{a.x - b.x, a.y - b.y, a.z - b.z} }
func (a vec) scale(s float64) vec { return vec{float64(a.x * s), float64(a.y * s), float64(a.z * s)} }
func (a vec) mul(b vec) vec       { return vec{float64(a.x * b.x), float64(a.y * b.y), float64(a.z * b.z)} }
func (a vec) dot(b vec) float64 {
	return float64(float64(a.x*b.x)+float64(a.y*b.y)) + float64(a.z*b.z)
}
func (a vec) cross(b vec) vec {
	return vec{float64(a.y*b.z) - float64(a.z*b.y), float64(a.z*b.x) - float64(a.x*b.z), float64(a.x*b.y) - float64(a.y*b.x)}
}
func (a vec) norm() vec { return a.scale(1 / math.Sqrt(a.dot(a))) }

type material int

const (
	diffuse material = iota
	mirror
	glass
)

type sphere struct {
	r        float64
	p, e, c  vec // position, emission, colour
	material material
}

// intersect returns the distance along the ray (o, d) to s, or 0 for a miss.
func (s *sphere) intersect(o, d vec) float64 {
	op := s.p.sub(o)
	const eps = 1e-4
	b := op.dot(d)
	det := float64(b*b) - op.dot(op) + float64(s.r*s.r)
	if det < 0 {
		return 0
	}
	det = math.Sqrt(det)
	if t := b - det; t > eps {
		return t
	}
	if t := b + det; t > eps {
		return t
	}
	return 0
}

// scene returns the built-in scene at frame: the glass ball travels along the floor.
func scene(frame int) []sphere {
	phase := float64(frame) * 0.35
	gx := 73 + float64(12*math.Sin(phase))
	gz := 78 + float64(10*math.Cos(phase))
	return []sphere{
		{1e5, vec{1e5 + 1, 40.8, 81.6}, vec{}, vec{.75, .25, .25}, diffuse},   // left
		{1e5, vec{-1e5 + 99, 40.8, 81.6}, vec{}, vec{.25, .25, .75}, diffuse}, // right
		{1e5, vec{50, 40.8, 1e5}, vec{}, vec{.75, .75, .75}, diffuse},         // back
		{1e5, vec{50, 40.8, -1e5 + 170}, vec{}, vec{}, diffuse},               // front
		{1e5, vec{50, 1e5, 81.6}, vec{}, vec{.75, .75, .75}, diffuse},         // floor
		{1e5, vec{50, -1e5 + 81.6, 81.6}, vec{}, vec{.75, .75, .75}, diffuse}, // ceiling
		{16.5, vec{27, 16.5, 47}, vec{}, vec{.999, .999, .999}, mirror},
		{16.5, vec{gx, 16.5, gz}, vec{}, vec{.999, .999, .999}, glass},
		{600, vec{50, 681.6 - .27, 81.6}, vec{12, 12, 12}, vec{}, diffuse}, // light
	}
}

// rng is a splitmix64 stream: integer-only, the same on every machine.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform float64 in [0, 1) from 53 random bits.
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// pixelRNG seeds the stream of one pixel of one frame: a tile rendered alone gets exactly
// the samples the whole frame would have given it.
func pixelRNG(seed int64, frame, x, y int) rng {
	r := rng{uint64(seed)}
	r.s ^= r.next() ^ uint64(frame)<<42 ^ uint64(y)<<21 ^ uint64(x)
	r.next()
	return r
}

const (
	minBounces = 5  // Russian roulette starts after this depth
	maxBounces = 12 // hard stop: keeps a tile's cost bounded
)

func radiance(sc []sphere, o, d vec, r *rng) vec {
	acc, thr := vec{}, vec{1, 1, 1}
	for depth := 0; depth < maxBounces; depth++ {
		t, id := math.Inf(1), -1
		for i := range sc {
			if h := sc[i].intersect(o, d); h > 0 && h < t {
				t, id = h, i
			}
		}
		if id < 0 {
			return acc
		}
		s := &sc[id]
		x := o.add(d.scale(t))
		n := x.sub(s.p).norm()
		nl := n
		if n.dot(d) >= 0 {
			nl = n.scale(-1)
		}
		acc = acc.add(thr.mul(s.e))
		f := s.c
		if depth >= minBounces {
			p := max(f.x, f.y, f.z)
			if r.float() >= p {
				return acc
			}
			f = f.scale(1 / p)
		}
		thr = thr.mul(f)
		switch s.material {
		case diffuse:
			r1, r2 := 2*math.Pi*r.float(), r.float()
			r2s := math.Sqrt(r2)
			w := nl
			a := vec{1, 0, 0}
			if math.Abs(w.x) > .1 {
				a = vec{0, 1, 0}
			}
			u := a.cross(w).norm()
			v := w.cross(u)
			d = u.scale(float64(math.Cos(r1) * r2s)).add(v.scale(float64(math.Sin(r1) * r2s))).add(w.scale(math.Sqrt(1 - r2))).norm()
			o = x
		case mirror:
			d = d.sub(n.scale(2 * n.dot(d)))
			o = x
		case glass:
			refl := d.sub(n.scale(2 * n.dot(d)))
			into := n.dot(nl) > 0
			const nc, nt = 1.0, 1.5
			nnt := nt / nc
			if into {
				nnt = nc / nt
			}
			ddn := d.dot(nl)
			cos2t := 1 - float64(float64(nnt*nnt)*(1-float64(ddn*ddn)))
			if cos2t < 0 { // total internal reflection
				d, o = refl, x
				continue
			}
			sign := -1.0
			if into {
				sign = 1
			}
			tdir := d.scale(nnt).sub(n.scale(sign * (float64(ddn*nnt) + math.Sqrt(cos2t)))).norm()
			a, b := nt-nc, nt+nc
			r0 := float64(a*a) / float64(b*b)
			c := 1 - tdir.dot(n)
			if into {
				c = 1 + ddn
			}
			re := r0 + float64((1-r0)*float64(c*c*c*c*c))
			tr := 1 - re
			p := .25 + .5*re
			if r.float() < p {
				thr, d = thr.scale(re/p), refl
			} else {
				thr, d = thr.scale(tr/(1-p)), tdir
			}
			o = x
		}
	}
	return acc
}

// camera of the built-in scene.
var (
	camO = vec{50, 52, 295.6}
	camD = vec{0, -0.042612, -1}.norm()
)

// tracePixel returns the mean radiance of samples paths through pixel (x, y) of a w×h
// image (y = 0 is the top row).
func tracePixel(sc []sphere, w, h, x, y, samples int, seed int64, frame int) vec {
	cx := vec{float64(w) * .5135 / float64(h), 0, 0}
	cy := cx.cross(camD).norm().scale(.5135)
	r := pixelRNG(seed, frame, x, y)
	sum := vec{}
	row := h - 1 - y
	for s := 0; s < samples; s++ {
		// tent filter, as smallpt
		r1, r2 := 2*r.float(), 2*r.float()
		dx, dy := tent(r1), tent(r2)
		d := cx.scale((dx+.5+float64(x))/float64(w) - .5).add(cy.scale((dy+.5+float64(row))/float64(h) - .5)).add(camD)
		dn := d.norm()
		sum = sum.add(radiance(sc, camO.add(d.scale(140)), dn, &r))
	}
	return sum.scale(1 / float64(samples))
}

func tent(r float64) float64 {
	if r < 1 {
		return math.Sqrt(r) - 1
	}
	return 1 - math.Sqrt(2-r)
}

// toneMap maps a linear radiance to a 16-bit sRGB-ish value (clamp, gamma 2.2).
func toneMap(v float64) uint16 {
	if !(v > 0) {
		return 0
	}
	if v >= 1 {
		return 0xffff
	}
	return uint16(math.Pow(v, 1/2.2)*65535 + .5)
}
