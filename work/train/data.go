package train

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The dataset: 8×8 greyscale digit images, 64 pixel values 0-16 and a label 0-9 per CSV
// line, the layout of scikit-learn's bundled digits set (sklearn/datasets/data/
// digits.csv.gz, 1,797 images, from the UCI optical digits set). Where scikit-learn is
// installed (Debian python3-sklearn) both engines train on those real digits, read from
// its file; where it is not, on a generated set of the same shape (noisy, shifted
// renderings of ten 8×8 glyphs), so the Go trainer needs nothing installed. Either way
// the CSV is copied into the job directory and pinned in job.json: a verifier replays on
// exactly the provider's data, whatever it has installed.

// Data sources.
const (
	DataAuto      = "auto"      // sklearn's digits where installed, else generated
	DataDigits    = "digits"    // sklearn's digits (an error where absent)
	DataGenerated = "generated" // the generated set
)

const (
	features = 64
	classes  = 10
	maxRows  = 200000
)

// Dataset is decoded training data: pixel values scaled to [0, 1].
type Dataset struct {
	X [][features]float32
	Y []int
}

// sklearnDigits are where Debian and pip put scikit-learn's digits file.
var sklearnDigits = []string{
	"/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz",
	"/usr/local/lib/python3*/dist-packages/sklearn/datasets/data/digits.csv.gz",
	"/usr/lib/python3*/site-packages/sklearn/datasets/data/digits.csv.gz",
	"/usr/local/lib/python3*/site-packages/sklearn/datasets/data/digits.csv.gz",
}

// FindDigits returns the path of scikit-learn's digits file, or "" where it is absent.
func FindDigits() string {
	for _, pat := range sklearnDigits {
		if m, _ := filepath.Glob(pat); len(m) > 0 {
			return m[0]
		}
	}
	return ""
}

// LoadData returns the CSV bytes of source (DataAuto, DataDigits, DataGenerated) and
// which source it was.
func LoadData(source string, seed int64) ([]byte, string, error) {
	switch source {
	case DataAuto, DataDigits:
		if p := FindDigits(); p != "" {
			b, err := readGzip(p)
			if err != nil {
				return nil, "", fmt.Errorf("train data: %w", err)
			}
			return b, DataDigits, nil
		}
		if source == DataDigits {
			return nil, "", fmt.Errorf("train data: scikit-learn's digits not found (install Debian's python3-sklearn), or use --data generated")
		}
		return Generate(seed), DataGenerated, nil
	case DataGenerated:
		return Generate(seed), DataGenerated, nil
	}
	return nil, "", fmt.Errorf("train data %q: must be %s, %s or %s", source, DataAuto, DataDigits, DataGenerated)
}

func readGzip(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return io.ReadAll(io.LimitReader(z, 64<<20))
}

// ParseData decodes the dataset CSV, refusing anything but 64 values in 0-16 and a label
// 0-9 per line.
func ParseData(b []byte) (*Dataset, error) {
	d := &Dataset{}
	for n, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		line = strings.TrimSpace(line)
		f := strings.Split(line, ",")
		if len(f) != features+1 {
			return nil, fmt.Errorf("train data line %d: %d values, want %d pixels and a label", n+1, len(f), features)
		}
		var x [features]float32
		for i := 0; i < features; i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || v < 0 || v > 16 {
				return nil, fmt.Errorf("train data line %d pixel %d: %q is not a value 0 to 16", n+1, i, f[i])
			}
			x[i] = float32(v / 16)
		}
		y, err := strconv.ParseFloat(f[features], 64)
		if err != nil || y < 0 || y > 9 || y != float64(int(y)) {
			return nil, fmt.Errorf("train data line %d: label %q is not a digit 0 to 9", n+1, f[features])
		}
		if len(d.Y) >= maxRows {
			return nil, fmt.Errorf("train data: more than %d lines", maxRows)
		}
		d.X = append(d.X, x)
		d.Y = append(d.Y, int(y))
	}
	if len(d.Y) < classes {
		return nil, fmt.Errorf("train data: %d lines, too few to train on", len(d.Y))
	}
	return d, nil
}

// glyphs are 8×8 renderings of the digits 0-9, '#' ink.
var glyphs = [classes][8]string{
	{"..####..", ".#....#.", "#......#", "#......#", "#......#", "#......#", ".#....#.", "..####.."},
	{"...##...", "..###...", ".#.##...", "...##...", "...##...", "...##...", "...##...", ".######."},
	{"..####..", ".#....#.", "......#.", ".....#..", "....#...", "...#....", "..#.....", ".######."},
	{".#####..", "......#.", "......#.", "..####..", "......#.", "......#.", "......#.", ".#####.."},
	{"....##..", "...#.#..", "..#..#..", ".#...#..", "#######.", ".....#..", ".....#..", ".....#.."},
	{".######.", ".#......", ".#......", ".#####..", "......#.", "......#.", ".#....#.", "..####.."},
	{"..####..", ".#......", "#.......", "#.####..", "##....#.", "#......#", ".#....#.", "..####.."},
	{"#######.", "......#.", ".....#..", "....#...", "...#....", "...#....", "..#.....", "..#....."},
	{"..####..", ".#....#.", ".#....#.", "..####..", ".#....#.", "#......#", ".#....#.", "..####.."},
	{"..####..", ".#....#.", "#......#", ".#....##", "..####.#", ".......#", "......#.", "..####.."},
}

// Generate returns the generated dataset of seed in the CSV layout: 1,797 images like
// sklearn's, each a glyph shifted by up to one pixel, with stroke strength and noise
// drawn from the seed.
func Generate(seed int64) []byte {
	r := splitmix{uint64(seed) ^ 0x6b696c6e}
	var b bytes.Buffer
	for n := 0; n < 1797; n++ {
		label := n % classes
		dx, dy := int(r.next()%3)-1, int(r.next()%3)-1
		ink := 10 + int(r.next()%7)
		for y := 0; y < 8; y++ {
			for x := 0; x < 8; x++ {
				sx, sy := x-dx, y-dy
				v := int(r.next() % 3)
				if sx >= 0 && sx < 8 && sy >= 0 && sy < 8 && glyphs[label][sy][sx] == '#' {
					v = ink + int(r.next()%3) - 1
				}
				v = min(16, max(0, v))
				fmt.Fprintf(&b, "%d,", v)
			}
		}
		fmt.Fprintf(&b, "%d\n", label)
	}
	return b.Bytes()
}

// splitmix is an integer-only random stream, the same on every machine.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform float64 in [0, 1).
func (r *splitmix) float() float64 { return float64(r.next()>>11) / (1 << 53) }
