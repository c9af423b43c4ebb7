package explorer

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSearch(t *testing.T) {
	addr := "kiln1vefyce49p5duglvrt573jxaywyg0drg447an9m"
	hash := strings.Repeat("ab", 32)
	tests := []struct {
		in   string
		want Target
		bad  bool
	}{
		{in: "12", want: Target{Kind: KindNumber, ID: 12}},
		{in: "  12  ", want: Target{Kind: KindNumber, ID: 12}},
		{in: "lease:7", want: Target{Kind: KindLease, ID: 7}},
		{in: "LEASE: 7", want: Target{Kind: KindLease, ID: 7}},
		{in: "order:3", want: Target{Kind: KindOrder, ID: 3}},
		{in: "block:99", want: Target{Kind: KindHeight, ID: 99}},
		{in: "height:99", want: Target{Kind: KindHeight, ID: 99}},
		{in: hash, want: Target{Kind: KindHash, Hash: strings.ToUpper(hash)}},
		{in: addr, want: Target{Kind: KindAddress, Address: addr}},
		{in: strings.ToUpper(addr), want: Target{Kind: KindAddress, Address: addr}},
		{in: "18446744073709551615", want: Target{Kind: KindNumber, ID: 18446744073709551615}},
		{in: "", bad: true},
		{in: "   ", bad: true},
		{in: "0", bad: true},
		{in: "18446744073709551616", bad: true}, // 2^64
		{in: "-1", bad: true},
		{in: "lease:", bad: true},
		{in: "lease:abc", bad: true},
		{in: "lease:" + hash, bad: true},
		{in: "tx:12", bad: true},
		{in: "<script>alert(1)</script>", bad: true},
		{in: "\"><img src=x onerror=alert(1)>", bad: true},
		{in: strings.Repeat("a", 3000), bad: true},
		{in: "kiln1notanaddress", bad: true},
		{in: "cosmos1vefyce49p5duglvrt573jxaywyg0drg447an9m", bad: true},
		{in: "\xff\xfe", bad: true},
		{in: hash[:63], bad: true},
		{in: hash + "0", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseSearch(tt.in)
		if tt.bad {
			if err == nil || !errors.Is(err, ErrBadSearch) {
				t.Errorf("ParseSearch(%.40q) = %+v, %v; want an ErrBadSearch error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSearch(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// A parse error never carries the raw term beyond a short quoted prefix: the 400 page
// shows the message, escaped, and a 3000-byte term must not come back whole.
func TestSearchErrorIsShort(t *testing.T) {
	_, err := ParseSearch(strings.Repeat("<b>", 40))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error %q: want a short refusal", err)
	}
}

// FuzzParseSearch: the parser never panics, refuses with ErrBadSearch, and what it
// accepts writes back as a term it reads the same way.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{"12", "lease:7", "order: 3", "block:1", strings.Repeat("ab", 32),
		"kiln1vefyce49p5duglvrt573jxaywyg0drg447an9m", "<script>alert(1)</script>", "\xff", "lease:", ":", "0", "99999999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := ParseSearch(q)
		if err != nil {
			if !errors.Is(err, ErrBadSearch) {
				t.Fatalf("ParseSearch(%q): error %v does not match ErrBadSearch", q, err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("ParseSearch(%q): error is not valid UTF-8: %q", q, err)
			}
			return
		}
		again, err := ParseSearch(got.String())
		if err != nil || again != got {
			t.Fatalf("ParseSearch(%q) = %+v, written %q, read back %+v, %v", q, got, got.String(), again, err)
		}
		if strings.ContainsAny(got.String(), "<>\"'&") {
			t.Fatalf("ParseSearch(%q) accepted markup: %q", q, got.String())
		}
	})
}
