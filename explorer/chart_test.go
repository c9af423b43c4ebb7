package explorer

import (
	"math"
	"testing"
)

func TestNewChart(t *testing.T) {
	tests := []struct {
		name   string
		series []SeriesData
		points int
		empty  bool
	}{
		{"no series", nil, 0, true},
		{"no points", []SeriesData{{Name: "a"}}, 0, true},
		{"one point", []SeriesData{{Name: "a", Points: []DataPoint{{X: 5, Y: 3}}}}, 1, false},
		{"two series", []SeriesData{{Name: "a", Points: []DataPoint{{1, 1}, {2, 4}}}, {Name: "b", Points: []DataPoint{{1, 0}}}}, 3, false},
		{"NaN and Inf skipped", []SeriesData{{Name: "a", Points: []DataPoint{{1, math.NaN()}, {2, math.Inf(1)}, {3, 2}}}}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChart("c", "T", "height", "y", tt.series, "nothing")
			if (c.Empty != "") != tt.empty {
				t.Fatalf("Empty = %q, want empty %v", c.Empty, tt.empty)
			}
			n := 0
			for _, s := range c.Series {
				for _, p := range s.Points {
					n++
					if p.SX < c.PlotX0 || p.SX > c.PlotX1 || p.SY < c.PlotY0 || p.SY > c.PlotY1 {
						t.Errorf("point (%g,%g) outside the plot %g..%g x %g..%g", p.SX, p.SY, c.PlotX0, c.PlotX1, c.PlotY0, c.PlotY1)
					}
				}
			}
			if n != tt.points {
				t.Errorf("drew %d points, want %d", n, tt.points)
			}
		})
	}
}

// The largest value sits at or below the top of the plot, zero on its floor, and x
// grows to the right.
func TestChartScale(t *testing.T) {
	c := NewChart("c", "T", "height", "y", []SeriesData{{Name: "a", Points: []DataPoint{{10, 0}, {20, 7}}}}, "")
	p := c.Series[0].Points
	if p[0].SY != c.PlotY1 {
		t.Errorf("y=0 drawn at %g, want the floor %g", p[0].SY, c.PlotY1)
	}
	if p[1].SY < c.PlotY0 || p[1].SY >= p[0].SY {
		t.Errorf("y=7 drawn at %g: want above the floor and inside the plot", p[1].SY)
	}
	if p[1].SX <= p[0].SX {
		t.Errorf("x=20 at %g is not right of x=10 at %g", p[1].SX, p[0].SX)
	}
	if got := niceCeil(7); got != 10 {
		t.Errorf("niceCeil(7) = %g, want 10", got)
	}
}
