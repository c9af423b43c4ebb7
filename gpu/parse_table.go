package gpu

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// ParseTable reads the default output of plain `nvidia-smi` (the boxed table):
// driver and CUDA versions, one block per GPU, the MIG devices and the
// processes. The table truncates long names ("NVIDIA GeForce RTX 2080 ...")
// and has no UUID or PCI device id, so prefer ParseXML or ParseQ where there
// is a choice. It fails when there is no "NVIDIA-SMI" banner or no GPU row.
func ParseTable(r io.Reader) (Inventory, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxQLineBytes)
	inv := Inventory{Source: SourceNVIDIASMI}
	const (
		none = iota
		gpus
		migs
		procs
	)
	var (
		banner    bool
		section   = none
		started   bool // past the "|====" line of the current section
		blockLine int  // line number within the current GPU block
		procGICI  bool // process rows carry GI and CI columns
		cur       *GPU
	)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \r")
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "NVIDIA-SMI") && strings.HasPrefix(trimmed, "|"):
			banner = true
			inv.Driver, inv.CUDA = tableVersions(line)
			continue
		case strings.HasPrefix(trimmed, "| GPU  Name"):
			section, started = gpus, false
			continue
		case strings.HasPrefix(trimmed, "| MIG devices"):
			section, started = migs, false
			continue
		case strings.HasPrefix(trimmed, "| Processes"):
			section, started = procs, false
			continue
		case strings.HasPrefix(trimmed, "|===="):
			started = true
			blockLine = 0
			continue
		case strings.HasPrefix(trimmed, "+"):
			blockLine = 0
			continue
		case trimmed == "" || !strings.HasPrefix(trimmed, "|"):
			if trimmed == "" {
				section = none
			}
			continue
		}
		if section == procs && !started {
			if strings.Contains(line, " GI ") {
				procGICI = true
			}
			continue
		}
		if !started {
			continue
		}
		cells := strings.Split(strings.Trim(trimmed, "|"), "|")
		switch section {
		case gpus:
			blockLine++
			switch blockLine {
			case 1:
				g, ok := tableGPURow(cells)
				if !ok {
					continue
				}
				inv.GPUs = append(inv.GPUs, g)
				cur = &inv.GPUs[len(inv.GPUs)-1]
			case 2:
				if cur == nil || len(cells) < 3 {
					continue
				}
				// NB: the last '/', not the first: the fan column can read "N/A".
				cur.PowerLimitW = parseWatts(afterLastSlash(cells[0]))
				cur.MemoryMiB = parseMiB(afterLastSlash(cells[1]))
				cur.UtilizationPct = parsePercent(firstField(cells[2]))
			case 3:
				if cur != nil && len(cells) >= 3 {
					cur.MIGMode = migMode(cells[2])
				}
			}
		case migs:
			tableMIGRow(&inv, cells)
		case procs:
			tableProcessRow(&inv, cells, procGICI)
		}
	}
	if err := sc.Err(); err != nil {
		return Inventory{}, fmt.Errorf("read nvidia-smi table: %w", err)
	}
	if !banner {
		return Inventory{}, fmt.Errorf("parse nvidia-smi table: no NVIDIA-SMI banner")
	}
	if len(inv.GPUs) == 0 {
		return Inventory{}, fmt.Errorf("parse nvidia-smi table: no GPU rows")
	}
	inv.finish()
	return inv, nil
}

var (
	tableDriverRe = regexp.MustCompile(`(?:Driver|KMD) Version:\s*(\S+)`)
	tableCUDARe   = regexp.MustCompile(`CUDA(?: UMD)? Version:\s*(\S+)`)
	busIDRe       = regexp.MustCompile(`^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$`)
)

func tableVersions(line string) (driver, cuda string) {
	if m := tableDriverRe.FindStringSubmatch(line); m != nil {
		driver = clean(m[1])
	}
	if m := tableCUDARe.FindStringSubmatch(line); m != nil {
		cuda = clean(m[1])
	}
	return driver, cuda
}

// tableGPURow reads "   0  NVIDIA A100-SXM4-80GB   On  |   00000000:68:00.0 Off |  0 |".
func tableGPURow(cells []string) (GPU, bool) {
	if len(cells) < 2 {
		return GPU{}, false
	}
	f := strings.Fields(cells[0])
	if len(f) < 2 {
		return GPU{}, false
	}
	idx, ok := parseInt(f[0])
	if !ok {
		return GPU{}, false
	}
	// The last word is Persistence-M (On/Off) or, on Windows, the driver model
	// (WDDM/TCC); the name is what lies between.
	nameFields := f[1:]
	if len(nameFields) > 1 {
		switch nameFields[len(nameFields)-1] {
		case "On", "Off", "WDDM", "TCC", "N/A", "MCDM":
			nameFields = nameFields[:len(nameFields)-1]
		}
	}
	g := GPU{Index: idx, Name: strings.Join(nameFields, " ")}
	if b := firstField(cells[1]); busIDRe.MatchString(b) {
		g.PCIBusID = normBusID(b)
	}
	return g, true
}

// tableMIGRow reads "|  0    2   0   0  |  16925MiB / 71424MiB | 16  0 |  3 0 3 0 3 |";
// the second line of each block (BAR1 usage) has no leading GPU number and is skipped.
func tableMIGRow(inv *Inventory, cells []string) {
	if len(cells) < 2 {
		return
	}
	ids := strings.Fields(cells[0])
	if len(ids) != 4 {
		return
	}
	var n [4]int
	for i, s := range ids {
		v, ok := parseInt(s)
		if !ok {
			return
		}
		n[i] = v
	}
	d := MIGDevice{GPUInstanceID: n[1], ComputeInstanceID: n[2], Index: n[3]}
	d.MemoryMiB = parseMiB(afterLastSlash(cells[1]))
	if len(cells) >= 3 {
		d.SMCount, _ = parseInt(firstField(cells[2]))
	}
	for i := range inv.GPUs {
		if inv.GPUs[i].Index == n[0] {
			inv.GPUs[i].MIGDevices = append(inv.GPUs[i].MIGDevices, d)
			return
		}
	}
}

// tableProcessRow reads "|    0    2    1   12249      C   /root/tools/memhog   2194MiB |".
func tableProcessRow(inv *Inventory, cells []string, giCI bool) {
	if len(cells) == 0 {
		return
	}
	f := strings.Fields(cells[0])
	min := 5
	if giCI {
		min = 7
	}
	if len(f) < min {
		return
	}
	gpuIdx, ok := parseInt(f[0])
	if !ok {
		return
	}
	p := Process{}
	rest := f[1:]
	if giCI {
		p.GPUInstanceID, p.ComputeInstanceID = intPtr(rest[0]), intPtr(rest[1])
		rest = rest[2:]
	}
	if p.PID, ok = parseInt(rest[0]); !ok {
		return
	}
	p.Type = rest[1]
	p.UsedMemoryMiB = parseMiB(rest[len(rest)-1])
	p.Name = strings.Join(rest[2:len(rest)-1], " ")
	for i := range inv.GPUs {
		if inv.GPUs[i].Index == gpuIdx {
			inv.GPUs[i].Processes = append(inv.GPUs[i].Processes, p)
			return
		}
	}
}

var (
	listGPURe = regexp.MustCompile(`^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$`)
	listMIGRe = regexp.MustCompile(`^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)]+)\)\s*$`)
)

// ParseList reads the output of `nvidia-smi -L`: index, name and UUID of every
// GPU and the profile and UUID of every MIG device. It fails when no line
// has the "GPU n: NAME (UUID: ...)" shape.
func ParseList(r io.Reader) (Inventory, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxQLineBytes)
	inv := Inventory{Source: SourceNVIDIASMI}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if m := listGPURe.FindStringSubmatch(line); m != nil {
			idx, _ := parseInt(m[1])
			inv.GPUs = append(inv.GPUs, GPU{Index: idx, Name: strings.TrimSpace(m[2]), UUID: m[3]})
			continue
		}
		if m := listMIGRe.FindStringSubmatch(line); m != nil && len(inv.GPUs) > 0 {
			idx, _ := parseInt(m[2])
			g := &inv.GPUs[len(inv.GPUs)-1]
			g.MIGMode = MIGEnabled
			g.MIGDevices = append(g.MIGDevices, MIGDevice{Index: idx, Profile: m[1], UUID: m[3]})
		}
	}
	if err := sc.Err(); err != nil {
		return Inventory{}, fmt.Errorf("read nvidia-smi -L output: %w", err)
	}
	if len(inv.GPUs) == 0 {
		return Inventory{}, fmt.Errorf("parse nvidia-smi -L: no \"GPU n: NAME (UUID: ...)\" line")
	}
	inv.finish()
	return inv, nil
}

// afterLastSlash returns what follows the last '/' in s ("" when there is none).
func afterLastSlash(s string) string {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return ""
	}
	return s[i+1:]
}
