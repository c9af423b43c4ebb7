package gpu

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Formats Parse recognises, as Sniff names them.
const (
	FormatXML     = "xml"     // nvidia-smi -q -x
	FormatQ       = "q"       // nvidia-smi -q
	FormatCSV     = "csv"     // nvidia-smi --query-gpu=... --format=csv
	FormatTable   = "table"   // nvidia-smi
	FormatList    = "list"    // nvidia-smi -L
	FormatTopo    = "topo"    // nvidia-smi topo -m
	FormatCapture = "capture" // several outputs in one file, each under a ##### banner
)

// maxInputBytes bounds what Parse and FromFile read: the largest real capture
// (8 GPUs, -q with every clock listed) is under 1 MiB.
const maxInputBytes = 64 << 20

var csvHeaderRe = regexp.MustCompile(`^[a-z][a-z0-9_.]*(\s*\[[^\]]*\])?\s*(,\s*[a-z][a-zA-Z0-9_.]*(\s*\[[^\]]*\])?\s*)*$`)

// Sniff names the format of nvidia-smi output (one of the Format constants),
// or returns "" when it is none of them.
func Sniff(data []byte) string {
	text := string(bytes.TrimLeft(data, " \t\r\n\ufeff"))
	first, _, _ := strings.Cut(text, "\n")
	first = strings.TrimSpace(first)
	switch {
	case strings.HasPrefix(text, "<?xml"), strings.HasPrefix(text, "<nvidia_smi_log"), strings.HasPrefix(text, "<!DOCTYPE nvidia_smi_log"):
		return FormatXML
	case len(first) >= 20 && strings.Trim(first, "#") == "":
		return FormatCapture
	case strings.Contains(first, "NVSMI LOG"):
		return FormatQ
	case csvHeaderRe.MatchString(first) && strings.Contains(first, "name"):
		return FormatCSV
	case listGPURe.MatchString(strings.TrimRight(first, "\r")):
		return FormatList
	}
	clean := ansiEscape.ReplaceAllString(text, "")
	hasBanner := strings.Contains(clean, "NVIDIA-SMI") && strings.Contains(clean, "+----")
	for _, l := range strings.SplitN(clean, "\n", 8) {
		if strings.HasPrefix(strings.TrimSpace(l), "GPU0") && strings.Contains(l, "\t") {
			return FormatTopo
		}
		if strings.HasPrefix(strings.TrimSpace(l), "Attached GPUs") {
			return FormatQ
		}
	}
	if hasBanner {
		return FormatTable
	}
	return ""
}

// Parse reads nvidia-smi output in any format Sniff recognises. Output of
// `topo -m` alone yields an Inventory with only Topology set. It returns
// ErrUnknownFormat (wrapped) for anything else.
func Parse(r io.Reader) (Inventory, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return Inventory{}, fmt.Errorf("read nvidia-smi output: %w", err)
	}
	if len(data) > maxInputBytes {
		return Inventory{}, fmt.Errorf("read nvidia-smi output: larger than %d bytes", maxInputBytes)
	}
	return parseFormat(Sniff(data), data)
}

func parseFormat(format string, data []byte) (Inventory, error) {
	r := bytes.NewReader(data)
	switch format {
	case FormatXML:
		return ParseXML(r)
	case FormatQ:
		return ParseQ(r)
	case FormatCSV:
		return ParseCSV(r)
	case FormatTable:
		return ParseTable(r)
	case FormatList:
		return ParseList(r)
	case FormatTopo:
		t, err := ParseTopo(r)
		if err != nil {
			return Inventory{}, err
		}
		return Inventory{Source: SourceNVIDIASMI, Topology: t}, nil
	case FormatCapture:
		return ParseCapture(r)
	}
	return Inventory{}, ErrUnknownFormat
}

// FromFile reads a file of nvidia-smi output in any format Parse accepts.
// The inventory describes the GPUs in the file only: CPU, memory and disk
// stay zero, because the file says nothing about the host that reads it.
func FromFile(path string) (Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return Inventory{}, fmt.Errorf("open nvidia-smi output: %w", err)
	}
	defer f.Close()
	inv, err := Parse(f)
	if err != nil {
		return Inventory{}, fmt.Errorf("%s: %w", path, err)
	}
	return inv, nil
}

// captureSection is one output in a capture file.
type captureSection struct {
	title string // "idle :: query (-q)"
	body  []byte
}

// splitCapture cuts a capture file at its banners: a line of '#', one or more
// "# title" lines (the first is the title, "# $ cmd" lines follow), and a
// closing line of '#'.
func splitCapture(r io.Reader) ([]captureSection, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxQLineBytes)
	var (
		out      []captureSection
		inBanner bool
		cur      *captureSection
		body     bytes.Buffer
	)
	flush := func() {
		if cur != nil {
			cur.body = bytes.Clone(body.Bytes())
			out = append(out, *cur)
		}
		body.Reset()
	}
	for sc.Scan() {
		line := sc.Text()
		t := strings.TrimSpace(line)
		isRule := len(t) >= 20 && strings.Trim(t, "#") == ""
		switch {
		case isRule && !inBanner:
			flush()
			cur = &captureSection{}
			inBanner = true
		case isRule && inBanner:
			inBanner = false
		case inBanner:
			if cur.title == "" && strings.HasPrefix(t, "#") {
				cur.title = strings.TrimSpace(strings.TrimPrefix(t, "#"))
			}
		default:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	flush()
	return out, nil
}

// ParseCapture reads a multi-section capture (the layout of
// utkuozdemir/nvidia_gpu_exporter's captures: one ##### banner per nvidia-smi
// command). The GPUs come from the richest section present (-q -x, -q,
// query-gpu CSV, the table, -L, in that order, the idle state before the
// loaded one); `-L` adds MIG profile names and UUIDs, `topo -m` the topology
// and `--version` the driver. It fails when no section holds GPUs.
func ParseCapture(r io.Reader) (Inventory, error) {
	secs, err := splitCapture(r)
	if err != nil {
		return Inventory{}, err
	}
	find := func(format string) []byte {
		var fallback []byte
		for _, s := range secs {
			if Sniff(s.body) != format {
				continue
			}
			if !strings.HasPrefix(s.title, "load") {
				return s.body
			}
			if fallback == nil {
				fallback = s.body
			}
		}
		return fallback
	}
	var (
		inv     Inventory
		found   bool
		lastErr error
	)
	for _, f := range []string{FormatXML, FormatQ, FormatCSV, FormatTable, FormatList} {
		body := find(f)
		if body == nil {
			continue
		}
		i, err := parseFormat(f, body)
		if err != nil {
			lastErr = fmt.Errorf("capture section %s: %w", f, err)
			continue
		}
		inv, found = i, true
		break
	}
	if !found {
		if lastErr != nil {
			return Inventory{}, lastErr
		}
		return Inventory{}, fmt.Errorf("parse capture: no section with GPUs (found %d sections)", len(secs))
	}
	if body := find(FormatList); body != nil {
		if l, err := ParseList(bytes.NewReader(body)); err == nil {
			mergeList(&inv, l)
		}
	}
	if body := find(FormatTopo); body != nil && inv.Topology == nil {
		if t, err := ParseTopo(bytes.NewReader(body)); err == nil {
			inv.Topology = t
		}
	}
	return inv, nil
}

// mergeList copies what only `nvidia-smi -L` says (MIG profile names and
// UUIDs, GPU UUIDs) into inv, matching GPUs by index and MIG devices by index.
func mergeList(inv *Inventory, l Inventory) {
	for _, lg := range l.GPUs {
		for i := range inv.GPUs {
			g := &inv.GPUs[i]
			if g.Index != lg.Index {
				continue
			}
			if g.UUID == "" {
				g.UUID = lg.UUID
			}
			for _, lm := range lg.MIGDevices {
				merged := false
				for j := range g.MIGDevices {
					if g.MIGDevices[j].Index == lm.Index {
						g.MIGDevices[j].Profile = lm.Profile
						g.MIGDevices[j].UUID = lm.UUID
						merged = true
					}
				}
				if !merged {
					g.MIGDevices = append(g.MIGDevices, lm)
				}
			}
		}
	}
}
