package quantity

import (
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{"80Gi", 80 * Gi, ""},
		{"512G", 512e9, ""},
		{"1.5Ti", Ti + Ti/2, ""},
		{"0.5Gi", Gi / 2, ""},
		{"1024", 1024, ""},
		{"4Ki", 4096, ""},
		{"2k", 2000, ""},
		{"1Ei", Ei, ""},
		{"15Ei", 15 * Ei, ""},
		{"16Ei", 0, "too large"},
		{"-1Gi", 0, "negative"},
		{"", 0, "must be a size"},
		{"Gi", 0, "must be a size"},
		{"10XB", 0, "must be a size"},
		{"6GB", 0, "did you mean 6G (powers of 1000) or 6Gi"},
		{"2gi", 0, "did you mean 2Gi?"},
		{"2K", 0, "did you mean 2k (powers of 1000) or 2Ki"},
		{" 1Gi", 0, "must be a size"},
		{"NaN", 0, "must be a size"},
		{"Inf", 0, "must be a size"},
	} {
		got, err := ParseBytes(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := ParseBinaryBytes("80G"); err == nil || !strings.Contains(err.Error(), BinarySizeHelp) {
		t.Errorf("ParseBinaryBytes(80G) = %v, want binary suffixes only", err)
	}
	if got, err := ParseBinaryBytes("80Gi"); err != nil || got != 80*Gi {
		t.Errorf("ParseBinaryBytes(80Gi) = %d, %v", got, err)
	}
}

func TestParseCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{"500m", 500, ""},
		{"0.5", 500, ""},
		{"2", 2000, ""},
		{"0.0015", 1, ""}, // truncated, as Akash does
		{"0", 0, ""},
		{"4294967295m", MaxMilliCPU, ""},
		{"4294967296m", 0, "must be a number of CPUs"},
		{"4294968", 0, "too large"},
		{"-1", 0, "negative"},
		{"-5m", 0, "must be a number of CPUs"},
		{"1.5m", 0, "must be a number of CPUs"},
		{"two", 0, "must be a number of CPUs"},
		{"", 0, "must be a number of CPUs"},
	} {
		got, err := ParseCPU(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{80 * Gi: "80Gi", 1536 * Mi: "1536Mi", 1000: "1000", 0: "0", 2 * Pi: "2Pi", 3 * Ei: "3Ei"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseBytes(FormatBytes(n)); err != nil || back != n {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", n, back, err)
		}
	}
	if got := FormatGi(80*Gi + 5); got != "80Gi" {
		t.Errorf("FormatGi = %q, want 80Gi", got)
	}
}

// FuzzParse: no input panics a parser, and a size read back from its
// printed form is the same size.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"80Gi", "1.5Ti", "500m", "0.5", "6GB", "-1", "1e30", "16Ei"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseCPU(s)
		ParseBinaryBytes(s)
		n, err := ParseBytes(s)
		if err != nil {
			return
		}
		if back, err := ParseBytes(FormatBytes(n)); err != nil || back != n {
			t.Fatalf("ParseBytes(%q) = %d, but FormatBytes gives %q, read back as %d, %v", s, n, FormatBytes(n), back, err)
		}
	})
}

func TestLenient(t *testing.T) {
	for _, tc := range []struct {
		in     string
		binary bool
		want   uint64
		canon  string
		ok     bool
	}{
		{"16gi", false, 16 * Gi, "16Gi", true},
		{"512mi", false, 512 * Mi, "512Mi", true},
		{"15GB", false, 15 * G, "15G", true},
		{"10Gb", false, 10 * G, "10G", true},
		{"2KB", false, 2000, "2k", true},
		{"1.5gib", false, Gi * 3 / 2, "1.5Gi", true},
		{"80gi", true, 80 * Gi, "80Gi", true},
		{"80GB", true, 0, "", false},  // GPU RAM: binary suffixes only
		{"16Gi", false, 0, "", false}, // already Akash's spelling
		{"16", false, 0, "", false},
		{"16xb", false, 0, "", false},
		{"gi", false, 0, "", false},
		{"1..5gi", false, 0, "", false},
		{"b", false, 0, "", false},
	} {
		parse := ParseBytes
		if tc.binary {
			parse = ParseBinaryBytes
		}
		canon, ok := Lenient(tc.in)
		var n uint64
		if ok {
			var err error
			if n, err = parse(canon); err != nil {
				ok, canon = false, ""
			}
		}
		if n != tc.want || canon != tc.canon || ok != tc.ok {
			t.Errorf("Lenient(%q) then parse = %d, %q, %v; want %d, %q, %v", tc.in, n, canon, ok, tc.want, tc.canon, tc.ok)
		}
	}
}
