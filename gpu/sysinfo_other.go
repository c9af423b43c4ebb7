//go:build !linux

package gpu

import "runtime"

// readHost knows only the CPU count outside Linux; memory and disk stay zero
// and a note says so.
func readHost(string) (cpu CPUInfo, mem, disk uint64, notes []string) {
	n := runtime.NumCPU()
	return CPUInfo{Cores: n, Threads: n}, 0, 0, []string{"memory and disk size are read on Linux only"}
}
