package gpu

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseCPUInfo reads /proc/cpuinfo: the model name of the first processor,
// logical CPUs ("processor" entries) and physical cores (distinct
// physical id/core id pairs; equal to threads where the kernel omits them,
// as on most ARM hosts).
func parseCPUInfo(r io.Reader) (CPUInfo, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxQLineBytes)
	var (
		info          CPUInfo
		phys, core    string
		cores         = map[string]bool{}
		haveTopology  bool
		flushTopology = func() {
			if core != "" {
				cores[phys+"/"+core] = true
				haveTopology = true
			}
			phys, core = "", ""
		}
	)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			flushTopology()
			info.Threads++
		case "model name", "Model Name", "cpu model":
			if info.Model == "" {
				info.Model = v
			}
		case "Hardware", "Model":
			// ARM boards name the SoC here when "model name" is missing.
			if info.Model == "" && k == "Hardware" {
				info.Model = v
			}
		case "physical id":
			phys = v
		case "core id":
			core = v
		}
	}
	flushTopology()
	if err := sc.Err(); err != nil {
		return CPUInfo{}, fmt.Errorf("read cpuinfo: %w", err)
	}
	info.Cores = info.Threads
	if haveTopology {
		info.Cores = len(cores)
	}
	return info, nil
}

// parseMemInfo reads MemTotal from /proc/meminfo, in bytes.
func parseMemInfo(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "MemTotal" {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("meminfo MemTotal %q: %w", v, err)
		}
		if len(f) > 1 && strings.EqualFold(f[1], "kB") {
			n *= 1024
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read meminfo: %w", err)
	}
	return 0, fmt.Errorf("meminfo: no MemTotal line")
}
