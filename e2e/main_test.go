// Package e2e runs the kiln binary as a user would: real processes, real signals, on
// loopback.
package e2e

import (
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
