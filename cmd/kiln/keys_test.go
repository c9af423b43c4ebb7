package main

import (
	"errors"
	"strings"
	"testing"
)

func TestConfirm(t *testing.T) {
	tests := []struct {
		answer   string
		terminal bool
		want     bool
		wantErr  error
	}{
		{"y\n", true, true, nil},
		{"Y\n", true, true, nil},
		{"yes\n", true, true, nil},
		{"  YES \r\n", true, true, nil},
		{"y", true, true, nil}, // end of input after the answer
		{"n\n", true, false, nil},
		{"\n", true, false, nil},
		{"", true, false, nil},
		{"yes please\n", true, false, nil},
		{"nope\n", true, false, nil},
		{"y\n", false, false, errNoTerminal}, // no terminal: nothing is read, --yes is needed
	}
	for _, tt := range tests {
		var out strings.Builder
		got, err := confirm(strings.NewReader(tt.answer), &out, tt.terminal, "Delete? [y/N] ")
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("confirm(%q, terminal=%v) = %v, %v; want %v, %v", tt.answer, tt.terminal, got, err, tt.want, tt.wantErr)
		}
		if asked := strings.Contains(out.String(), "Delete? [y/N] "); asked != tt.terminal {
			t.Errorf("confirm(%q, terminal=%v) asked %q", tt.answer, tt.terminal, out.String())
		}
	}
}
