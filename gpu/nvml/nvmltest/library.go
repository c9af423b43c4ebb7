package nvmltest

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeLibrarySource stands in for libnvidia-ml.so.1: NVML's ABI, two GPUs.
//
//go:embed testdata/fakenvml.c
var fakeLibrarySource []byte

// CC returns the C compiler cgo uses (go env CC).
func CC(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "CC").Output()
	if err != nil {
		tb.Fatalf("go env CC: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		tb.Skip("no C compiler configured (go env CC is empty)")
	}
	return f[0]
}

// Library builds a fake libnvidia-ml.so.1 into a temporary dir and returns
// its path, for the dlopen binding to load: it answers for two GPUs, an H100
// in MIG mode (a 3g.40gb and a 1g.10gb GPU instance, one compute instance
// each, one MIG device handle) and an A100 with 40 compute processes. It is
// built with -Wall -Wextra -Werror.
func Library(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	src := filepath.Join(dir, "fakenvml.c")
	if err := os.WriteFile(src, fakeLibrarySource, 0o644); err != nil {
		tb.Fatal(err)
	}
	lib := filepath.Join(dir, "libnvidia-ml.so.1")
	out, err := exec.Command(CC(tb), "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o", lib, src).CombinedOutput()
	if err != nil {
		tb.Fatalf("build the fake NVML library: %v\n%s", err, out)
	}
	return lib
}
