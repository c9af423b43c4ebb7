package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/x/market"
)

// kiln sim --mode all runs every pricing mode and gives one JSON object per mode, the
// CSV a row per sample and mode; a mode the chain does not have is refused, naming the
// flag.
func TestSimModes(t *testing.T) {
	dir := t.TempDir()
	csvPath, svgPath := filepath.Join(dir, "s.csv"), filepath.Join(dir, "s.svg")
	out, code := run(t, "sim", "--mode", "all", "--gpus", "200", "--blocks", "6", "--orders-per-block", "4", "--sample-every", "3",
		"--csv", csvPath, "--svg", svgPath, "-o", "json")
	var got struct {
		Modes []struct {
			Pricing string  `json:"pricing"`
			Orders  int     `json:"orders"`
			Leased  int     `json:"orders_leased"`
			Paid    float64 `json:"tenant_cost_usd"`
		} `json:"modes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || len(got.Modes) != len(market.ModeNames()) {
		t.Fatalf("sim --mode all: %d %s", code, out)
	}
	for i, m := range got.Modes {
		if m.Pricing != market.ModeNames()[i] || m.Orders == 0 || m.Leased == 0 {
			t.Errorf("mode %d: %+v", i, m)
		}
	}
	csv, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	// A header, then two samples (heights 3 and 6 of the run) per mode.
	if rows := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(rows) != 1+2*len(market.ModeNames()) || !strings.HasPrefix(rows[1], "auction,") {
		t.Fatalf("CSV:\n%s", csv)
	}
	if _, err := os.Stat(svgPath); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, "sim", "--mode", "barter", "--csv", "", "--svg", "")
	if code == 0 || !strings.Contains(out, "mode: \"barter\" is not a pricing mode") {
		t.Fatalf("sim --mode barter: %d %s", code, out)
	}
}
