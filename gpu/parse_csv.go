package gpu

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// QueryGPUFields is the --query-gpu field list Kiln asks nvidia-smi for. Any
// superset or subset parses as well: ParseCSV goes by the header.
const QueryGPUFields = "index,name,uuid,pci.bus_id,pci.device_id,memory.total,compute_cap,driver_version,power.limit,utilization.gpu,mig.mode.current"

// ParseCSV reads the output of `nvidia-smi --query-gpu=FIELDS --format=csv`
// (with or without nounits). Columns are found by the header, so any field
// list and order works as long as it includes name. It fails on input with no
// header row naming a "name" column (noheader output cannot be read: the
// fields are unknown).
func ParseCSV(r io.Reader) (Inventory, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = false
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Inventory{}, fmt.Errorf("parse nvidia-smi CSV: empty input")
		}
		return Inventory{}, fmt.Errorf("parse nvidia-smi CSV header: %w", err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		// "memory.total [MiB]" -> "memory.total"
		h = strings.ToLower(strings.TrimSpace(h))
		if j := strings.IndexByte(h, '['); j >= 0 {
			h = strings.TrimSpace(h[:j])
		}
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	if _, ok := col["name"]; !ok {
		return Inventory{}, fmt.Errorf("parse nvidia-smi CSV: header has no \"name\" column (got %d columns starting %q)", len(header), header[0])
	}
	inv := Inventory{Source: SourceNVIDIASMI}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Inventory{}, fmt.Errorf("parse nvidia-smi CSV line %d: %w", line, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		get := func(field string) string {
			i, ok := col[field]
			if !ok || i >= len(rec) {
				return ""
			}
			return clean(rec[i])
		}
		if get("name") == "" && get("uuid") == "" {
			return Inventory{}, fmt.Errorf("parse nvidia-smi CSV line %d: row has no name and no uuid", line)
		}
		g := GPU{
			Index:             len(inv.GPUs),
			Name:              get("name"),
			UUID:              get("uuid"),
			PCIBusID:          normBusID(get("pci.bus_id")),
			PCIDeviceID:       get("pci.device_id"),
			MemoryMiB:         parseMiB(get("memory.total")),
			ComputeCapability: get("compute_cap"),
			MIGMode:           migMode(get("mig.mode.current")),
			UtilizationPct:    parsePercent(get("utilization.gpu")),
		}
		if i, ok := parseInt(get("index")); ok {
			g.Index = i
		}
		if g.MemoryMiB == 0 {
			// netdata's field list has no memory.total; reserved + used + free is it.
			g.MemoryMiB = parseMiB(get("memory.reserved")) + parseMiB(get("memory.used")) + parseMiB(get("memory.free"))
		}
		for _, f := range []string{"enforced.power.limit", "power.limit"} {
			if w := parseWatts(get(f)); w > 0 {
				g.PowerLimitW = w
				break
			}
		}
		if d := get("driver_version"); d != "" && inv.Driver == "" {
			inv.Driver = firstField(d)
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	inv.finish()
	return inv, nil
}
