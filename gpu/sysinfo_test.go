package gpu

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestParseCPUInfo(t *testing.T) {
	// Two sockets x 2 cores x 2 threads, trimmed from a real /proc/cpuinfo.
	var b strings.Builder
	n := 0
	for phys := 0; phys < 2; phys++ {
		for core := 0; core < 2; core++ {
			for ht := 0; ht < 2; ht++ {
				b.WriteString("processor\t: " + strconv.Itoa(n) + "\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n")
				b.WriteString("physical id\t: " + strconv.Itoa(phys) + "\ncore id\t\t: " + strconv.Itoa(core) + "\n\n")
				n++
			}
		}
	}
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\n\nprocessor\t: 1\nBogoMIPS\t: 50.00\n\nHardware\t: BCM2835\n"
	tests := []struct {
		name, in string
		want     CPUInfo
	}{
		{"x86 smt", b.String(), CPUInfo{Model: "AMD EPYC 7763 64-Core Processor", Cores: 4, Threads: 8}},
		{"arm no topology", arm, CPUInfo{Model: "BCM2835", Cores: 2, Threads: 2}},
		{"empty", "", CPUInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUInfo(strings.NewReader(tt.in))
			if err != nil || got != tt.want {
				t.Errorf("parseCPUInfo() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseMemInfo(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"MemTotal:       24576000 kB\nMemFree: 1 kB\n", 24576000 * 1024, false},
		{"MemFree: 1 kB\n", 0, true},
		{"MemTotal: lots kB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseMemInfo(strings.NewReader(tt.in))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseMemInfo(%q) = %d, %v; want %d, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReadHost(t *testing.T) {
	cpu, mem, disk, notes := readHost(t.TempDir())
	if cpu.Threads == 0 || cpu.Cores == 0 || cpu.Cores > cpu.Threads {
		t.Errorf("readHost() cpu = %+v", cpu)
	}
	if runtime.GOOS == "linux" && (mem == 0 || disk == 0 || len(notes) != 0) {
		t.Errorf("readHost() mem=%d disk=%d notes=%q, want both read", mem, disk, notes)
	}
	_, _, disk, notes = readHost("/does/not/exist")
	if runtime.GOOS == "linux" && (disk != 0 || len(notes) == 0) {
		t.Errorf("readHost(missing dir) disk=%d notes=%q, want 0 and a note", disk, notes)
	}
}
