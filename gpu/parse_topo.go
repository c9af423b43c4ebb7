package gpu

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Topology is the interconnect matrix of `nvidia-smi topo -m`: how each GPU
// (and NIC) reaches every other. Schedulers use it to place multi-GPU jobs on
// NVLink-connected sets.
type Topology struct {
	// Devices in the order nvidia-smi lists them (GPU0.., then NIC0..).
	Devices []TopoDevice `json:"devices"`
	// NICs maps NIC labels to device names ("NIC0" -> "mlx5_0"), from the NIC legend.
	NICs map[string]string `json:"nics,omitempty"`
}

// TopoDevice is one row of the matrix.
type TopoDevice struct {
	// Name is the label nvidia-smi uses: "GPU0", "NIC1".
	Name string `json:"name"`
	// Links maps every other device to its connection type: "NV18" (18 bonded
	// NVLinks), "PIX", "PXB", "PHB", "NODE", "SYS". The device itself is left out.
	Links map[string]string `json:"links,omitempty"`
	// CPUAffinity ("0-19,40-59"), NUMAAffinity ("0") and GPUNUMAID; empty when N/A.
	CPUAffinity  string `json:"cpu_affinity,omitempty"`
	NUMAAffinity string `json:"numa_affinity,omitempty"`
	GPUNUMAID    string `json:"gpu_numa_id,omitempty"`
}

// Link returns the connection type between devices a and b ("NV12", "SYS"),
// or "" when either is unknown.
func (t *Topology) Link(a, b string) string {
	if t == nil {
		return ""
	}
	for _, d := range t.Devices {
		if d.Name == a {
			return d.Links[b]
		}
	}
	return ""
}

// NVLinks returns the number of bonded NVLinks between GPUs a and b (0 when
// they talk over PCIe or are unknown).
func (t *Topology) NVLinks(a, b string) int {
	l := t.Link(a, b)
	if !strings.HasPrefix(l, "NV") {
		return 0
	}
	n, err := strconv.Atoi(l[2:])
	if err != nil {
		return 0
	}
	return n
}

// ansiEscape matches the SGR escapes nvidia-smi wraps the header in (underline).
var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

var (
	topoDeviceName = regexp.MustCompile(`^(GPU|NIC|CPU|mlx|NVS)\S*$`)
	nicLegendLine  = regexp.MustCompile(`^\s*(NIC\d+)\s*:\s*(\S+)\s*$`)
)

// ParseTopo reads the output of `nvidia-smi topo -m`. It accepts any number
// of GPUs and NICs and the affinity columns of every driver; it fails when
// there is no header row starting with GPU0 or no device row under it.
func ParseTopo(r io.Reader) (*Topology, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxQLineBytes)
	var (
		cols      []string // header columns after the row-label column
		t         = &Topology{}
		inLegend  bool
		inMatrix  bool
		doneRows  bool
		nicLegend = map[string]string{}
	)
	for sc.Scan() {
		line := strings.TrimRight(ansiEscape.ReplaceAllString(sc.Text(), ""), " \r")
		trimmed := strings.TrimSpace(line)
		switch {
		case cols == nil:
			f := splitTopo(line)
			if len(f) > 0 && f[0] == "GPU0" && strings.Contains(line, "\t") {
				cols = f
				inMatrix = true
			}
			continue
		case strings.HasPrefix(trimmed, "NIC Legend"):
			inLegend, inMatrix = true, false
			continue
		case strings.HasPrefix(trimmed, "Legend"):
			inMatrix, doneRows = false, true
			continue
		case trimmed == "":
			if len(t.Devices) > 0 {
				inMatrix, doneRows = false, true
			}
			continue
		}
		if inLegend {
			if m := nicLegendLine.FindStringSubmatch(line); m != nil {
				nicLegend[m[1]] = m[2]
			}
			continue
		}
		if !inMatrix || doneRows {
			continue
		}
		// Row: label then one cell per header column, tab separated.
		cells := strings.Split(line, "\t")
		name := strings.TrimSpace(cells[0])
		if !topoDeviceName.MatchString(name) {
			continue
		}
		d := TopoDevice{Name: name}
		for i, c := range cols {
			if i+1 >= len(cells) {
				break
			}
			v := strings.TrimSpace(cells[i+1])
			switch {
			case strings.EqualFold(c, "CPU Affinity"):
				d.CPUAffinity = clean(v)
			case strings.EqualFold(c, "NUMA Affinity"):
				d.NUMAAffinity = clean(v)
			case strings.EqualFold(c, "GPU NUMA ID"):
				d.GPUNUMAID = clean(v)
			case c == name || v == "X" || v == "":
				// self
			default:
				if d.Links == nil {
					d.Links = make(map[string]string)
				}
				d.Links[c] = v
			}
		}
		t.Devices = append(t.Devices, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read nvidia-smi topo -m output: %w", err)
	}
	if cols == nil {
		return nil, fmt.Errorf("parse nvidia-smi topo -m: no header row starting with GPU0")
	}
	if len(t.Devices) == 0 {
		return nil, fmt.Errorf("parse nvidia-smi topo -m: header but no device rows")
	}
	if len(nicLegend) > 0 {
		t.NICs = nicLegend
	}
	return t, nil
}

// splitTopo splits the header row into its column names, dropping the empty
// row-label column: "\tGPU0\tGPU1\tCPU Affinity" -> [GPU0 GPU1 CPU Affinity].
func splitTopo(line string) []string {
	f := strings.Split(line, "\t")
	return slices.DeleteFunc(f, func(s string) bool { return strings.TrimSpace(s) == "" })
}
