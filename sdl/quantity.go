package sdl

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Size suffixes, as in Akash (pkg.akt.dev/go/node/types/unit).
const (
	unitK  = 1000
	unitKi = 1024
	unitM  = unitK * unitK
	unitMi = unitKi * unitKi
	unitG  = unitM * unitK
	unitGi = unitMi * unitKi
	unitT  = unitG * unitK
	unitTi = unitGi * unitKi
	unitP  = unitT * unitK
	unitPi = unitTi * unitKi
	unitE  = unitP * unitK
	unitEi = unitPi * unitKi
)

type suffix struct {
	s string
	n uint64
}

// Two-letter suffixes first so that "Mi" is not read as "i" after "M".
var byteSuffixes = []suffix{
	{"Ki", unitKi}, {"Mi", unitMi}, {"Gi", unitGi}, {"Ti", unitTi}, {"Pi", unitPi}, {"Ei", unitEi},
	{"k", unitK}, {"M", unitM}, {"G", unitG}, {"T", unitT}, {"P", unitP}, {"E", unitE},
}

// GPU RAM only takes binary suffixes.
var memorySuffixes = byteSuffixes[:6]

const sizeHelp = "a size in bytes with an optional suffix k, Ki, M, Mi, G, Gi, T, Ti, P, Pi, E or Ei (e.g. 512Mi, 1.5Gi)"

var errNegative = errors.New("must not be negative")

// parseSize parses "512Mi", "1.5G", "1000". Like Akash, the number is a
// float (so "0.5Gi" works) and the result is truncated to whole bytes.
func parseSize(s string, suffixes []suffix) (uint64, error) {
	mult := uint64(1)
	num := s
	for _, sf := range suffixes {
		if strings.HasSuffix(s, sf.s) {
			mult = sf.n
			num = strings.TrimSuffix(s, sf.s)
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("must be %s%s", sizeHelp, sizeHint(s))
	}
	v *= float64(mult)
	if v < 0 {
		return 0, errNegative
	}
	// NB: 2^64 is exactly representable; anything at or above overflows.
	if v >= math.Exp2(64) {
		return 0, fmt.Errorf("is too large (max 16Ei)")
	}
	return uint64(v), nil
}

// parseLenientSize reads the size spellings that Akash Console accepts and
// Akash's Go CLI refuses: suffixes in any case, with an optional trailing B
// ("16gi", "512mi", "15GB", "1kb"). A suffix ending in i is binary, any other
// decimal, as in Akash's own notation. It returns the bytes and the spelling
// Akash's CLI would accept; ok is false when s is not such a spelling, or its
// suffix is not one of suffixes.
func parseLenientSize(s string, suffixes []suffix) (n uint64, canonical string, ok bool) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, "", false
	}
	num, sfx := s[:i], strings.ToLower(s[i:])
	if len(sfx) > 1 {
		sfx = strings.TrimSuffix(sfx, "b")
	}
	bin := strings.HasSuffix(sfx, "i")
	letter := strings.TrimSuffix(sfx, "i")
	if len(letter) != 1 || !strings.Contains("kmgtpe", letter) {
		return 0, "", false
	}
	want := strings.ToUpper(letter)
	if bin {
		want += "i"
	} else if letter == "k" {
		want = "k"
	}
	for _, sf := range suffixes {
		if sf.s == want {
			canonical = num + want
			n, err := parseSize(canonical, suffixes)
			if err != nil {
				return 0, "", false
			}
			return n, canonical, true
		}
	}
	return 0, "", false
}

// parseCPU parses CPU units: "100m" (millicpu, integer) or a number of CPUs
// ("0.5", 2). It returns millicpu, truncated as Akash does.
func parseCPU(s string) (uint64, error) {
	const help = `must be a number of CPUs (e.g. 0.5, 2) or millicpu with an "m" suffix (e.g. 100m)`
	if strings.HasSuffix(s, "m") {
		v, err := strconv.ParseUint(strings.TrimSuffix(s, "m"), 10, 32)
		if err != nil {
			return 0, errors.New(help)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New(help)
	}
	v *= 1000
	if v < 0 {
		return 0, errNegative
	}
	// Akash stores millicpu in a uint32.
	if v > math.MaxUint32 {
		return 0, fmt.Errorf("is too large (max %d CPUs)", maxUnitCPU/1000)
	}
	return uint64(v), nil
}

// formatGi prints bytes as whole Gi, truncating, as Akash's GPU attribute
// keys do.
func formatGi(b uint64) string {
	return strconv.FormatUint(b/unitGi, 10) + "Gi"
}

// decRe is what cosmos-sdk's LegacyNewDecFromStr accepts: an optional sign,
// digits, and at most 18 decimals.
var decRe = regexp.MustCompile(`^[-+]?[0-9]+(\.[0-9]{1,18})?$`)

// denomRe is cosmos-sdk's denomination syntax.
var denomRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9/:._-]{2,127}$`)

// attrKeyRe is Akash's attribute key syntax, allowing a trailing wildcard.
var attrKeyRe = regexp.MustCompile(`^([a-zA-Z][\w/.\-]{1,126}[\w*]?)$`)

// sizeHint suggests a spelling Akash accepts for common mistakes such as
// "6GB", "2gi" or "512mb" (suffixes are case-sensitive and have no B).
func sizeHint(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return ""
	}
	num, sfx := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	sfx = strings.TrimSuffix(sfx, "b")
	bin := strings.HasSuffix(sfx, "i")
	sfx = strings.TrimSuffix(sfx, "i")
	if len(sfx) != 1 || !strings.Contains("kmgtpe", sfx) {
		return ""
	}
	dec := strings.ToUpper(sfx)
	if sfx == "k" {
		dec = "k"
	}
	bi := strings.ToUpper(sfx) + "i"
	if bin {
		return fmt.Sprintf("; suffixes are case-sensitive: did you mean %s%s?", num, bi)
	}
	return fmt.Sprintf("; suffixes are case-sensitive and have no B: did you mean %s%s (powers of 1000) or %s%s (powers of 1024)?", num, dec, num, bi)
}
