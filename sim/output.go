package sim

import (
	"encoding/csv"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteCSV writes the runs' time series: one row per sample, named by its run's
// pricing mode.
func WriteCSV(w io.Writer, runs []Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"mode", "height", "price_usd_per_gpu_hour", "utilization", "orders", "orders_leased"}); err != nil {
		return err
	}
	for _, r := range runs {
		for _, s := range r.Series {
			price := ""
			if !math.IsNaN(s.PriceUSD) {
				price = strconv.FormatFloat(s.PriceUSD, 'f', 4, 64)
			}
			if err := cw.Write([]string{r.Pricing, strconv.FormatInt(s.Height, 10), price, strconv.FormatFloat(s.Utilization, 'f', 4, 64),
				strconv.Itoa(s.Orders), strconv.Itoa(s.Leased)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// palette colours the runs of a chart, in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"}

// WriteSVG draws each run's price per GPU-hour (left axis, solid) and utilization
// (right axis, dashed) over blocks, a colour per run, as a self-contained SVG: no
// script, no external resources.
func WriteSVG(w io.Writer, title string, runs []Result) error {
	const (
		width, height = 900, 420
		left, right   = 70, 70
		top, bottom   = 50, 50
	)
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	var h0, h1 int64
	maxPrice := 0.0
	first := true
	for _, r := range runs {
		for _, s := range r.Series {
			if first || s.Height < h0 {
				h0 = s.Height
			}
			first = false
			h1 = max(h1, s.Height)
			if !math.IsNaN(s.PriceUSD) {
				maxPrice = max(maxPrice, s.PriceUSD)
			}
		}
	}
	if h1 <= h0 {
		h1 = h0 + 1
	}
	if maxPrice == 0 {
		maxPrice = 1
	}
	maxPrice = niceCeil(maxPrice)
	x := func(h int64) float64 { return float64(left) + pw*float64(h-h0)/float64(h1-h0) }
	yPrice := func(p float64) float64 { return float64(top) + ph*(1-p/maxPrice) }
	yUtil := func(u float64) float64 { return float64(top) + ph*(1-u) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="25" font-size="15">%s</text>`+"\n", left, html.EscapeString(title))
	// Grid and axes.
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		y := float64(top) + ph*(1-f)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, width-right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">$%.2f</text>`+"\n", left-6, y+4, maxPrice*f)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f">%.0f%%</text>`+"\n", width-right+6, y+4, 100*f)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, height-bottom, width-right, height-bottom)
	for i := 0; i <= 5; i++ {
		h := h0 + (h1-h0)*int64(i)/5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(h), height-bottom+18, h)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">block height</text>`+"\n", float64(left)+pw/2, height-10)
	fmt.Fprintf(&b, `<text x="%d" y="%d">solid: median lease price per GPU-hour (USD, left); dashed: GPU utilization (right)</text>`+"\n", left+10, top+15)
	// Lines: price breaks where a sample had no lease.
	for i, r := range runs {
		colour := palette[i%len(palette)]
		var price, util []string
		for _, s := range r.Series {
			util = append(util, fmt.Sprintf("%.1f,%.1f", x(s.Height), yUtil(s.Utilization)))
			if !math.IsNaN(s.PriceUSD) {
				price = append(price, fmt.Sprintf("%.1f,%.1f", x(s.Height), yPrice(s.PriceUSD)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", colour, strings.Join(price, " "))
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" stroke-dasharray="6 4" points="%s"/>`+"\n", colour, strings.Join(util, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s" text-anchor="end">%s</text>`+"\n", width-right-10, top+15+15*(i+1), colour, html.EscapeString(r.Pricing))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if x <= m*p {
			return m * p
		}
	}
	return 10 * p
}
