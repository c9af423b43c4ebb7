package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kiln-network/kiln/sdl/sdlcmd"
)

func TestExitStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{errors.New("connection refused"), 1},
		{usagef("--output %q: want text or json", "xml"), 2},
		{fmt.Errorf("--stake: %w", usagef("bad amount")), 2},
		{&exitError{code: 1, err: &sdlcmd.ExitError{Code: 2, Err: errors.New("x")}}, 1}, // the outermost status wins
		{&sdlcmd.ExitError{Code: 2, Err: errors.New("show needs exactly one FILE")}, 2},
		{&sdlcmd.ExitError{Code: 1, Err: errors.New("invalid SDL")}, 1},
		{errors.New("unknown flag: --bogus"), 2},
		{errors.New(`required flag(s) "key" not set`), 2},
		{errors.New(`invalid argument "x" for "--node" flag: strconv.ParseInt: parsing "x": invalid syntax`), 2},
		{errors.New("unknown commands are fine in messages"), 1},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("exitStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
