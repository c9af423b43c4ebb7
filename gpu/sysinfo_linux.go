package gpu

import (
	"fmt"
	"os"
	"runtime"

	"syscall"
)

// readHost fills CPU, memory and disk from /proc and statfs(diskPath). A value
// it cannot read is left zero and explained in the returned notes.
func readHost(diskPath string) (cpu CPUInfo, mem, disk uint64, notes []string) {
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		cpu, err = parseCPUInfo(f)
		f.Close()
		if err != nil {
			notes = append(notes, err.Error())
		}
	} else {
		notes = append(notes, fmt.Sprintf("cpu: %v", err))
	}
	if cpu.Threads == 0 {
		cpu.Threads = runtime.NumCPU()
		cpu.Cores = cpu.Threads
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		mem, err = parseMemInfo(f)
		f.Close()
		if err != nil {
			notes = append(notes, err.Error())
		}
	} else {
		notes = append(notes, fmt.Sprintf("memory: %v", err))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(diskPath, &st); err == nil {
		disk = st.Blocks * uint64(st.Bsize)
	} else {
		notes = append(notes, fmt.Sprintf("disk %s: %v", diskPath, err))
	}
	return cpu, mem, disk, notes
}
