package docker

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPauseProgramELF checks that every architecture's program is a static
// executable whose entry point is its code, in its one loadable segment.
func TestPauseProgramELF(t *testing.T) {
	for arch, want := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		b, err := pauseProgram(arch)
		if err != nil {
			t.Fatalf("pauseProgram(%s) = %v", arch, err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("pauseProgram(%s): not an ELF file: %v", arch, err)
		}
		if f.Machine != want || f.Type != elf.ET_EXEC || f.Class != elf.ELFCLASS64 || len(f.Progs) != 1 {
			t.Fatalf("pauseProgram(%s): machine %v type %v class %v, %d program headers; want %v ET_EXEC ELFCLASS64, 1", arch, f.Machine, f.Type, f.Class, len(f.Progs), want)
		}
		p := f.Progs[0]
		if p.Type != elf.PT_LOAD || p.Flags != elf.PF_R|elf.PF_X || p.Filesz != uint64(len(b)) || p.Vaddr%p.Align != 0 {
			t.Fatalf("pauseProgram(%s): segment %+v, want one R+X PT_LOAD of the whole %d-byte file", arch, p.ProgHeader, len(b))
		}
		code := pauseCode[arch].code
		off := f.Entry - p.Vaddr
		if f.Entry < p.Vaddr || off+uint64(len(code)) != p.Filesz || !bytes.Equal(b[off:], code) {
			t.Fatalf("pauseProgram(%s): entry %#x does not start the code at the end of the segment", arch, f.Entry)
		}
	}
	if _, err := pauseProgram("riscv64"); err == nil || !strings.Contains(err.Error(), "no machine code") {
		t.Fatalf("pauseProgram(riscv64) = %v, want a 'no machine code' error", err)
	}
}

// TestPauseProgramSleeps runs this host's program: it must sleep, not spin
// and not exit, until it is killed.
func TestPauseProgramSleeps(t *testing.T) {
	b, err := pauseProgram(runtime.GOARCH)
	if err != nil {
		t.Skipf("no pause program here: %v", err)
	}
	p := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p)
	if err := cmd.Start(); err != nil {
		t.Fatalf("run pause program: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// 300 ms: long enough for a broken program to exit or fault.
	select {
	case err := <-done:
		t.Fatalf("pause program exited: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
	cmd.Process.Kill()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	// Field 3 of /proc/PID/stat is the state: S (sleeping), never R (spinning).
	fields := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(fields) == 0 || fields[0] != "S" {
		t.Fatalf("pause program state %q, want S (sleeping)", fields)
	}
}
