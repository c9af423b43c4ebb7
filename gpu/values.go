package gpu

import (
	"math"
	"strconv"
	"strings"
)

// Helpers for the values nvidia-smi prints in every format: "81559 MiB",
// "700.00 W", "37 %", "[N/A]", "Not available in WDDM driver model". A value
// that does not parse is unknown (zero / nil), never an error: the schemas
// change across drivers and a missing reading must not cost the inventory.

// isNA reports whether s is one of nvidia-smi's "no value" spellings.
func isNA(s string) bool {
	s = strings.TrimSpace(s)
	switch strings.ToLower(strings.Trim(s, "[]")) {
	case "", "n/a", "na", "none", "[n/a]", "not supported", "[not supported]", "unknown error", "insufficient permissions":
		return true
	}
	return strings.HasPrefix(s, "Not available") || strings.HasPrefix(s, "Requested functionality")
}

// firstField returns the first space-separated word of s, so that
// "610.62 [Deprecated; ...]" reads as "610.62".
func firstField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// parseMiB reads "81559 MiB", "81559MiB", "81559" (CSV with nounits) as MiB.
// GiB and KiB are converted; anything else is 0.
func parseMiB(s string) uint64 {
	s = strings.TrimSpace(s)
	if isNA(s) {
		return 0
	}
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"MiB", 1}, {"MB", 1}, {"GiB", 1024}, {"GB", 1024}, {"KiB", 1.0 / 1024}, {"KB", 1.0 / 1024}} {
		if strings.HasSuffix(s, u.suffix) {
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			mult = u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult > math.MaxInt64/2 {
		return 0
	}
	return uint64(f * mult)
}

// parseWatts reads "700.00 W" or "700.00"; 0 when unknown.
func parseWatts(s string) float64 {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "W"))
	if isNA(s) {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return math.Round(f*100) / 100
}

// parsePercent reads "37 %", "37%" or "37"; nil when unknown.
func parsePercent(s string) *int {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	if isNA(s) {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 100 {
		return nil
	}
	return &n
}

// parseInt reads a decimal integer; ok is false for N/A and garbage.
func parseInt(s string) (int, bool) {
	s = strings.TrimSpace(s)
	if isNA(s) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, false
	}
	return n, true
}

// intPtr returns a pointer to the parsed integer, or nil.
func intPtr(s string) *int {
	n, ok := parseInt(s)
	if !ok {
		return nil
	}
	return &n
}

// migMode maps "Enabled"/"Disabled" to MIGEnabled/MIGDisabled, else "".
func migMode(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "enabled":
		return MIGEnabled
	case "disabled":
		return MIGDisabled
	}
	return ""
}

// normArch lower-cases an architecture and keeps its first word, so the
// driver's "Ada Lovelace" matches the catalogue's "ada".
func normArch(s string) string {
	if isNA(s) {
		return ""
	}
	return strings.ToLower(firstField(s))
}

// clean returns s trimmed, or "" when it is an N/A spelling.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if isNA(s) {
		return ""
	}
	return s
}

// normBusID pads the 4-digit PCI domain some tools print ("0000:18:00.0") to
// the 8 digits nvidia-smi uses ("00000000:18:00.0"), and upper-cases it as
// nvidia-smi does.
func normBusID(s string) string {
	s = clean(s)
	if s == "" {
		return ""
	}
	s = strings.ToUpper(s)
	if i := strings.IndexByte(s, ':'); i >= 0 && i < 8 && strings.Count(s, ":") == 2 {
		s = strings.Repeat("0", 8-i) + s
	}
	return s
}

// finish classifies every GPU against the catalogue and fixes up what all
// parsers share. It is the last step of every parser.
func (inv *Inventory) finish() {
	for i := range inv.GPUs {
		inv.GPUs[i].classify()
	}
}
