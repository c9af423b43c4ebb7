// Package quantity parses and prints sizes and CPU amounts by Akash's quantity rules, the one place Kiln reads "512Mi", "1.5G" or "500m".
//
// A size is a number of bytes with an optional suffix, case-sensitive and
// without a B: k, M, G, T, P, E are powers of 1000 and Ki, Mi, Gi, Ti, Pi,
// Ei powers of 1024. The number may be a fraction ("0.5Gi"); the result is
// truncated to whole bytes, as Akash does. A CPU amount is a number of CPUs
// ("2", "0.5") or millicpu with an "m" suffix ("500m"), returned in millicpu.
// Callers bound the result (a minimum, a maximum) and name the field.
package quantity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size units.
const (
	K  uint64 = 1000
	Ki uint64 = 1024
	M         = K * K
	Mi        = Ki * Ki
	G         = M * K
	Gi        = Mi * Ki
	T         = G * K
	Ti        = Gi * Ki
	P         = T * K
	Pi        = Ti * Ki
	E         = P * K
	Ei        = Pi * Ki
)

type suffix struct {
	s string
	n uint64
}

// Two-letter suffixes first, so that "Mi" is not read as "M" of "…i".
var (
	binarySuffixes = []suffix{{"Ki", Ki}, {"Mi", Mi}, {"Gi", Gi}, {"Ti", Ti}, {"Pi", Pi}, {"Ei", Ei}}
	allSuffixes    = append(append([]suffix(nil), binarySuffixes...),
		suffix{"k", K}, suffix{"M", M}, suffix{"G", G}, suffix{"T", T}, suffix{"P", P}, suffix{"E", E})
)

// SizeHelp says what ParseBytes accepts, for messages.
const SizeHelp = "a size in bytes with an optional suffix k, Ki, M, Mi, G, Gi, T, Ti, P, Pi, E or Ei (e.g. 512Mi, 1.5Gi)"

// BinarySizeHelp says what ParseBinaryBytes accepts.
const BinarySizeHelp = "a size in bytes with an optional suffix Ki, Mi, Gi, Ti, Pi or Ei (e.g. 80Gi)"

// CPUHelp says what ParseCPU accepts.
const CPUHelp = `a number of CPUs (e.g. 0.5, 2) or millicpu with an "m" suffix (e.g. 100m)`

// ErrNegative is returned for a negative size or CPU amount.
var ErrNegative = errors.New("must not be negative")

// MaxMilliCPU is the largest CPU amount, in millicpu: Akash keeps millicpu in
// a uint32.
const MaxMilliCPU = math.MaxUint32

// ParseBytes parses a size: "512Mi", "1.5G", "1000". Its error says what is
// accepted, suggests the spelling meant for common mistakes ("6GB", "2gi"),
// and leaves naming the field to the caller.
func ParseBytes(s string) (uint64, error) { return parseSize(s, allSuffixes, SizeHelp) }

// ParseBinaryBytes is ParseBytes with binary suffixes only (GPU memory).
func ParseBinaryBytes(s string) (uint64, error) {
	return parseSize(s, binarySuffixes, BinarySizeHelp)
}

func parseSize(s string, suffixes []suffix, help string) (uint64, error) {
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
		return 0, fmt.Errorf("must be %s%s", help, sizeHint(s))
	}
	v *= float64(mult)
	if v < 0 {
		return 0, ErrNegative
	}
	// NB: 2^64 is exactly representable; anything at or above overflows.
	if v >= math.Exp2(64) {
		return 0, fmt.Errorf("is too large (max 16Ei)")
	}
	return uint64(v), nil
}

// ParseCPU parses a CPU amount into millicpu: "100m" (an integer), or a
// number of CPUs ("0.5", "2"), truncated as Akash does.
func ParseCPU(s string) (uint64, error) {
	help := errors.New("must be " + CPUHelp)
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseUint(m, 10, 32)
		if err != nil {
			return 0, help
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, help
	}
	v *= 1000
	if v < 0 {
		return 0, ErrNegative
	}
	if v > MaxMilliCPU {
		return 0, fmt.Errorf("is too large (max %d CPUs)", MaxMilliCPU/1000)
	}
	return uint64(v), nil
}

// FormatBytes prints n with the largest binary unit that divides it ("80Gi",
// "1536Mi"), else as a plain number of bytes; ParseBytes reads it back.
func FormatBytes(n uint64) string {
	for i := len(binarySuffixes) - 1; i >= 0; i-- {
		u := binarySuffixes[i]
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatUint(n/u.n, 10) + u.s
		}
	}
	return strconv.FormatUint(n, 10)
}

// FormatGi prints n as whole Gi, truncated, as Akash's GPU attribute keys do.
func FormatGi(n uint64) string { return strconv.FormatUint(n/Gi, 10) + "Gi" }

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

// Lenient rewrites a size in a spelling that Akash Console accepts and Akash's Go
// CLI refuses (suffixes in any case, with an optional trailing B: "16gi", "512mi",
// "15GB", "1kb") into Akash's own ("16Gi", "512Mi", "15G", "1k"): a suffix ending in
// i is binary, any other decimal, as in Akash's notation. ok is false when s is not
// such a spelling (or already Akash's). The caller parses the result with the parser
// its field takes, so a GPU memory size still refuses a decimal suffix.
func Lenient(s string) (canonical string, ok bool) {
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return "", false
	}
	num, sfx := s[:i], strings.ToLower(s[i:])
	if len(sfx) > 1 {
		sfx = strings.TrimSuffix(sfx, "b")
	}
	bin := strings.HasSuffix(sfx, "i")
	letter := strings.TrimSuffix(sfx, "i")
	if len(letter) != 1 || !strings.Contains("kmgtpe", letter) {
		return "", false
	}
	want := strings.ToUpper(letter)
	if bin {
		want += "i"
	} else if letter == "k" {
		want = "k"
	}
	if num+want == s {
		return "", false
	}
	return num + want, true
}
