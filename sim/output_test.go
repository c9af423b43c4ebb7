package sim

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// The CSV has a row per sample of each run, named by its mode (an empty price where
// no lease was made), and the SVG is well-formed XML with no script, one line for
// price and one for utilization per run.
func TestWriteCSVAndSVG(t *testing.T) {
	series := []Sample{{Height: 5, PriceUSD: 1.25, Utilization: 0.5, Orders: 10, Leased: 8}, {Height: 10, PriceUSD: math.NaN(), Utilization: 0.75, Orders: 3},
		{Height: 15, PriceUSD: 0.5, Utilization: 0.25, Orders: 4, Leased: 4}}
	runs := []Result{{Pricing: "auction", Series: series}, {Pricing: "market", Series: series[:1]}}
	var c bytes.Buffer
	if err := WriteCSV(&c, runs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[1][0] != "auction" || rows[1][2] != "1.2500" || rows[2][2] != "" || rows[3][3] != "0.2500" || rows[4][0] != "market" {
		t.Fatalf("CSV = %v", rows)
	}
	var s bytes.Buffer
	if err := WriteSVG(&s, "a <title> & more", runs); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(s.Bytes()))
	lines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v\n%s", err, s.String())
		}
		if el, ok := tok.(xml.StartElement); ok {
			if el.Name.Local == "script" {
				t.Fatal("SVG has a script")
			}
			if el.Name.Local == "polyline" {
				lines++
				for _, a := range el.Attr {
					if a.Name.Local == "points" && strings.Contains(a.Value, "NaN") {
						t.Fatalf("a line has NaN points: %s", a.Value)
					}
				}
			}
		}
	}
	if lines != 4 {
		t.Fatalf("SVG has %d lines, want 4 (price and utilization of two runs)", lines)
	}
}

// A configuration with a wrong field is refused, naming it.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.GPUs = 10 }, "gpus"},
		{func(c *Config) { c.Mode = "barter" }, "mode"},
		{func(c *Config) { c.JobBlocksMin, c.JobBlocksMax = 9, 3 }, "job-blocks"},
		{func(c *Config) { c.Churn = 0.9 }, "churn"},
		{func(c *Config) { c.OrdersPerBlock = 0 }, "orders-per-block"},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want+":") {
			t.Errorf("Validate() = %v, want an error about %s", err, tc.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
}
