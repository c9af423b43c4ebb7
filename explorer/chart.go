package explorer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Chart geometry, in SVG user units: the plot sits inside the margins.
const (
	chartW, chartH           = 640, 240
	marginL, marginR         = 64, 16
	marginT, marginB         = 16, 36
	maxSeries                = 6 // colours the stylesheet has (.s0 ... .s5)
	plotW, plotH     float64 = chartW - marginL - marginR, chartH - marginT - marginB
)

// DataPoint is one (x, y) of a series in data units: x a height, y a value.
type DataPoint struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// SeriesData is a named line of points, x ascending.
type SeriesData struct {
	Name   string      `json:"name"`
	Points []DataPoint `json:"points"`
}

// Chart is a line chart laid out for the svg template: coordinates are computed here,
// the template only writes them (html/template escapes every attribute).
type Chart struct {
	ID, Title, XLabel, YLabel string
	W, H                      int
	PlotX0, PlotY0            float64
	PlotX1, PlotY1            float64
	Series                    []chartSeries
	XTicks, YTicks            []tick
	// Empty, when set, is shown instead of a plot: there is nothing to draw yet.
	Empty string
}

type chartSeries struct {
	Name, Class string
	Line        string // the polyline's points attribute
	Points      []chartPoint
}

type chartPoint struct {
	SX, SY float64 // SVG coordinates
	Title  string  // tooltip: "height 120: 2.5"
}

type tick struct {
	Pos   float64
	Label string
}

// NewChart lays out series (at most maxSeries are drawn) over their common range; y
// starts at 0. With no point at all the chart says empty instead.
func NewChart(id, title, xLabel, yLabel string, series []SeriesData, empty string) Chart {
	return NewChartX(id, title, xLabel, yLabel, series, empty, math.Inf(1), math.Inf(-1))
}

// NewChartX is NewChart with the x axis covering at least xFrom..xTo, so that charts
// side by side share their axis.
func NewChartX(id, title, xLabel, yLabel string, series []SeriesData, empty string, xFrom, xTo float64) Chart {
	c := Chart{ID: id, Title: title, XLabel: xLabel, YLabel: yLabel, W: chartW, H: chartH,
		PlotX0: marginL, PlotY0: marginT, PlotX1: marginL + plotW, PlotY1: marginT + plotH}
	if len(series) > maxSeries {
		series = series[:maxSeries]
	}
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	n := 0
	for _, s := range series {
		for _, p := range s.Points {
			if math.IsNaN(p.X) || math.IsNaN(p.Y) || math.IsInf(p.X, 0) || math.IsInf(p.Y, 0) {
				continue
			}
			xmin, xmax, ymax = math.Min(xmin, p.X), math.Max(xmax, p.X), math.Max(ymax, p.Y)
			n++
		}
	}
	if n == 0 {
		c.Empty = empty
		return c
	}
	xmin, xmax = math.Min(xmin, xFrom), math.Max(xmax, xTo)
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	sx := func(x float64) float64 { return round1(marginL + (x-xmin)/(xmax-xmin)*plotW) }
	sy := func(y float64) float64 { return round1(marginT + plotH - y/ymax*plotH) }
	for i, s := range series {
		cs := chartSeries{Name: s.Name, Class: "s" + strconv.Itoa(i)}
		var line []string
		for _, p := range s.Points {
			if math.IsNaN(p.X) || math.IsNaN(p.Y) || math.IsInf(p.X, 0) || math.IsInf(p.Y, 0) {
				continue
			}
			x, y := sx(p.X), sy(p.Y)
			line = append(line, fmt.Sprintf("%g,%g", x, y))
			cs.Points = append(cs.Points, chartPoint{SX: x, SY: y, Title: fmt.Sprintf("%s at %s %.0f: %s", s.Name, xLabel, p.X, fmtNum(p.Y))})
		}
		cs.Line = strings.Join(line, " ")
		c.Series = append(c.Series, cs)
	}
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		c.YTicks = append(c.YTicks, tick{Pos: sy(y), Label: fmtNum(y)})
		x := xmin + (xmax-xmin)*float64(i)/4
		c.XTicks = append(c.XTicks, tick{Pos: sx(x), Label: strconv.FormatFloat(math.Round(x), 'f', 0, 64)})
	}
	return c
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for readable ticks.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// fmtNum writes a value with at most 3 significant decimals, no exponent.
func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1:
		return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	}
	return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 4, 64), "0"), ".")
}
