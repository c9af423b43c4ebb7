// Package e2e runs the kiln binary as a user would: real processes, real signals, on
// loopback.
package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kilnBin is the binary built once for all tests in this package.
var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kilnBin = filepath.Join(dir, "kiln")
	build := exec.Command("go", "build", "-o", kilnBin, "github.com/kiln-network/kiln/cmd/kiln")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kiln:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// kiln runs the binary to completion and returns its combined output.
func kiln(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(kilnBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kiln %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// kilnOut runs the binary to completion and returns its standard output alone.
func kilnOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(kilnBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kiln %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// run runs the binary to completion and returns its exit status, standard output and
// standard error, for tests of failures.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(kilnBin, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("kiln %v: %v", args, err)
	}
	return code, o.String(), e.String()
}
