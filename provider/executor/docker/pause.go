package docker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
)

// pauseCode is, per GOARCH, the machine code of the pause program: a loop
// around a system call that sleeps until a signal comes, as Kubernetes'
// pause container does. It owns a lease's network namespace and does nothing
// else, so it needs no libc, no Go runtime and no file but itself.
var pauseCode = map[string]struct {
	machine uint16 // ELF e_machine
	code    []byte
}{
	// loop: mov eax, 34 (pause); syscall; jmp loop
	"amd64": {machine: 62, code: []byte{0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}},
	// loop: mov x0..x3, xzr; mov x8, #73 (ppoll: arm64 has no pause); svc #0; b loop
	// (encodings as Go's arm64 assembler emits them)
	"arm64": {machine: 183, code: le32(0xaa1f03e0, 0xaa1f03e1, 0xaa1f03e2, 0xaa1f03e3, 0xd2800928, 0xd4000001, 0x17fffffa)},
}

func le32(ws ...uint32) []byte {
	b := make([]byte, 4*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint32(b[4*i:], w)
	}
	return b
}

// pauseProgram returns the pause program as a static ELF executable for
// arch: one read-and-execute segment holding the headers and the code.
func pauseProgram(arch string) ([]byte, error) {
	pc, ok := pauseCode[arch]
	if !ok {
		return nil, fmt.Errorf("pause program: no machine code for %s (have amd64, arm64)", arch)
	}
	const (
		base   = 0x400000 // where the segment is mapped; the usual ELF base
		ehsize = 64       // ELF64 header
		phsize = 56       // one ELF64 program header
	)
	size := uint64(ehsize + phsize + len(pc.code))
	var b bytes.Buffer
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) } // NB: a bytes.Buffer never fails
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little-endian */, 1 /* version */, 0 /* System V ABI */})
	b.Write(make([]byte, 8))
	w(uint16(2)) // ET_EXEC
	w(pc.machine)
	w(uint32(1))                      // version
	w(uint64(base + ehsize + phsize)) // entry: the code, after the headers
	w(uint64(ehsize))                 // program headers right after this one
	w(uint64(0))                      // no section headers
	w(uint32(0))                      // flags
	w(uint16(ehsize))
	w(uint16(phsize))
	w(uint16(1)) // one program header
	w(uint16(64))
	w(uint16(0))
	w(uint16(0))
	// The one PT_LOAD segment: the whole file, read and execute.
	w(uint32(1))     // PT_LOAD
	w(uint32(4 | 1)) // PF_R | PF_X
	w(uint64(0))     // from file offset 0
	w(uint64(base))  // vaddr
	w(uint64(base))  // paddr
	w(size)          // file size
	w(size)          // memory size
	w(uint64(0x1000))
	b.Write(pc.code)
	return b.Bytes(), nil
}

// hostPauseProgram is pauseProgram for this host's architecture.
func hostPauseProgram() ([]byte, error) { return pauseProgram(runtime.GOARCH) }
