package gpu

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// qNode is one line of `nvidia-smi -q` output with the lines indented below it.
type qNode struct {
	key, val string
	indent   int
	kids     []*qNode
}

// child returns the first child with the given key (case-insensitive), or nil.
func (n *qNode) child(key string) *qNode {
	if n == nil {
		return nil
	}
	for _, k := range n.kids {
		if strings.EqualFold(k.key, key) {
			return k
		}
	}
	return nil
}

// get follows a path of keys and returns the value there, or "".
func (n *qNode) get(path ...string) string {
	for _, p := range path {
		n = n.child(p)
	}
	if n == nil {
		return ""
	}
	return n.val
}

// find returns the value of the first descendant (depth-first) with the
// given key under a child named parent; "" when there is none. Drivers move
// values around inside a section ("GPU Power Readings > Current Power Limit"
// became "GPU Power Readings > GPU Ceiling Power Limit > Current Power Limit").
func (n *qNode) find(parent, key string) string {
	p := n.child(parent)
	if p == nil {
		return ""
	}
	var walk func(*qNode) (string, bool)
	walk = func(n *qNode) (string, bool) {
		for _, k := range n.kids {
			if strings.EqualFold(k.key, key) {
				return k.val, true
			}
			if v, ok := walk(k); ok {
				return v, true
			}
		}
		return "", false
	}
	v, _ := walk(p)
	return v
}

// maxQLineBytes bounds one line of -q output; real lines are under 200 bytes.
const maxQLineBytes = 1 << 20

// parseQTree reads indented "Key : Value" lines into a forest.
func parseQTree(r io.Reader) ([]*qNode, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxQLineBytes)
	root := &qNode{indent: -1}
	stack := []*qNode{root}
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || strings.HasPrefix(trimmed, "=====") {
			continue
		}
		indent := len(line) - len(trimmed)
		n := &qNode{indent: indent}
		// NB: the separator is " : " (or " :" at end of line), never the first
		// colon: the header "GPU 00000000:18:00.0" and values such as bus ids and
		// Windows paths contain colons of their own.
		if i := strings.Index(trimmed, " :"); i >= 0 {
			n.key = strings.TrimSpace(trimmed[:i])
			n.val = strings.TrimSpace(trimmed[i+2:])
		} else {
			n.key = trimmed
		}
		for len(stack) > 1 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parent := stack[len(stack)-1]
		parent.kids = append(parent.kids, n)
		stack = append(stack, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read nvidia-smi -q output: %w", err)
	}
	return root.kids, nil
}

// ParseQ reads the plain-text output of `nvidia-smi -q`. It accepts the layouts
// of drivers from 4xx to 6xx; a value it cannot read is left unknown. It fails
// when the input holds no "GPU <bus id>" section or no NVSMI header at all.
func ParseQ(r io.Reader) (Inventory, error) {
	nodes, err := parseQTree(r)
	if err != nil {
		return Inventory{}, err
	}
	inv := Inventory{Source: SourceNVIDIASMI}
	header := false
	attached := -1
	for _, n := range nodes {
		switch {
		case strings.EqualFold(n.key, "Driver Version"):
			header = true
			if inv.Driver == "" {
				inv.Driver = clean(firstField(n.val))
			}
		case strings.EqualFold(n.key, "KMD Version"):
			// 610+: "Driver Version" is deprecated in favour of the KMD version.
			inv.Driver = clean(firstField(n.val))
		case strings.EqualFold(n.key, "CUDA Version"):
			if inv.CUDA == "" {
				inv.CUDA = clean(firstField(n.val))
			}
		case strings.EqualFold(n.key, "CUDA UMD Version"):
			inv.CUDA = clean(firstField(n.val))
		case strings.EqualFold(n.key, "Attached GPUs"):
			header = true
			if a, ok := parseInt(n.val); ok {
				attached = a
			}
		case strings.HasPrefix(n.key, "GPU ") && n.val == "" && len(n.kids) > 0:
			inv.GPUs = append(inv.GPUs, qGPU(n, len(inv.GPUs)))
		}
	}
	if !header && len(inv.GPUs) == 0 {
		return Inventory{}, fmt.Errorf("parse nvidia-smi -q: no NVSMI header and no GPU section")
	}
	if attached > 0 && len(inv.GPUs) == 0 {
		return Inventory{}, fmt.Errorf("parse nvidia-smi -q: %d GPUs attached but no GPU section found", attached)
	}
	inv.finish()
	return inv, nil
}

// qGPU reads one "GPU 00000000:18:00.0" section.
func qGPU(n *qNode, index int) GPU {
	g := GPU{
		Index:        index,
		Name:         clean(n.get("Product Name")),
		Architecture: normArch(n.get("Product Architecture")),
		UUID:         clean(n.get("GPU UUID")),
		PCIBusID:     normBusID(n.get("PCI", "Bus Id")),
		PCIDeviceID:  clean(n.get("PCI", "Device Id")),
		MemoryMiB:    parseMiB(n.get("FB Memory Usage", "Total")),
		MIGMode:      migMode(n.get("MIG Mode", "Current")),
		// Utilization is not reported per GPU under MIG (N/A): nil, not 0.
		UtilizationPct: parsePercent(n.get("Utilization", "GPU")),
	}
	if g.PCIBusID == "" {
		g.PCIBusID = normBusID(strings.TrimPrefix(n.key, "GPU "))
	}
	// Power limit: 5xx+ "GPU Power Readings" (6xx nests it one level deeper),
	// older "Power Readings" with "Enforced Power Limit" / "Power Limit".
	for _, p := range [][2]string{
		{"GPU Power Readings", "Current Power Limit"},
		{"Power Readings", "Enforced Power Limit"},
		{"Power Readings", "Current Power Limit"},
		{"Power Readings", "Power Limit"},
	} {
		if w := parseWatts(n.find(p[0], p[1])); w > 0 {
			g.PowerLimitW = w
			break
		}
	}
	for _, k := range n.kids {
		switch {
		case strings.EqualFold(k.key, "MIG Device"):
			g.MIGDevices = append(g.MIGDevices, qMIG(k))
		case strings.EqualFold(k.key, "MIG Devices"):
			// Some drivers group MIG devices under one header.
			for _, d := range k.kids {
				if strings.EqualFold(d.key, "MIG Device") {
					g.MIGDevices = append(g.MIGDevices, qMIG(d))
				}
			}
		case strings.EqualFold(k.key, "Processes"):
			g.Processes = qProcesses(k)
		}
	}
	return g
}

func qMIG(n *qNode) MIGDevice {
	d := MIGDevice{}
	d.Index, _ = parseInt(n.get("Index"))
	d.GPUInstanceID, _ = parseInt(n.get("GPU Instance ID"))
	d.ComputeInstanceID, _ = parseInt(n.get("Compute Instance ID"))
	d.SMCount, _ = parseInt(n.find("Device Attributes", "Multiprocessor count"))
	d.MemoryMiB = parseMiB(n.get("Shared FB Memory Usage", "Total"))
	if d.MemoryMiB == 0 {
		d.MemoryMiB = parseMiB(n.get("FB Memory Usage", "Total"))
	}
	return d
}

// qProcesses reads a "Processes" section: a flat run of "GPU instance ID",
// "Compute instance ID" and "Process ID" lines, each process's details
// indented under its "Process ID" (or, in older drivers, at the same level).
func qProcesses(n *qNode) []Process {
	var (
		out    []Process
		gi, ci *int
	)
	for _, k := range n.kids {
		switch strings.ToLower(k.key) {
		case "gpu instance id":
			gi = intPtr(k.val)
		case "compute instance id":
			ci = intPtr(k.val)
		case "process id":
			pid, ok := parseInt(k.val)
			if !ok {
				continue
			}
			p := Process{PID: pid, GPUInstanceID: gi, ComputeInstanceID: ci}
			p.Type = clean(k.get("Type"))
			p.Name = clean(k.get("Name"))
			p.UsedMemoryMiB = parseMiB(k.get("Used GPU Memory"))
			out = append(out, p)
			gi, ci = nil, nil
		case "type", "name", "process name", "used gpu memory":
			// Old layout: details are siblings that follow "Process ID".
			if len(out) == 0 {
				continue
			}
			p := &out[len(out)-1]
			switch strings.ToLower(k.key) {
			case "type":
				p.Type = clean(k.val)
			case "name", "process name":
				p.Name = clean(k.val)
			default:
				p.UsedMemoryMiB = parseMiB(k.val)
			}
		}
	}
	return out
}
