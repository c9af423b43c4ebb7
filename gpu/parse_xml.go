package gpu

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The subset of nvsmi_device_v11..v13.dtd this package reads. Elements that
// moved between DTD versions are listed under every name they had.
type xmlLog struct {
	XMLName      xml.Name `xml:"nvidia_smi_log"`
	Driver       string   `xml:"driver_version"`
	CUDA         string   `xml:"cuda_version"`
	AttachedGPUs string   `xml:"attached_gpus"`
	GPUs         []xmlGPU `xml:"gpu"`
}

type xmlGPU struct {
	ID           string `xml:"id,attr"`
	ProductName  string `xml:"product_name"`
	Architecture string `xml:"product_architecture"`
	UUID         string `xml:"uuid"`
	MIGMode      struct {
		Current string `xml:"current_mig"`
	} `xml:"mig_mode"`
	MIGDevices []xmlMIG `xml:"mig_devices>mig_device"`
	PCI        struct {
		DeviceID string `xml:"pci_device_id"`
		BusID    string `xml:"pci_bus_id"`
	} `xml:"pci"`
	FB struct {
		Total string `xml:"total"`
	} `xml:"fb_memory_usage"`
	Utilization struct {
		GPU string `xml:"gpu_util"`
	} `xml:"utilization"`
	// DTD v11 and older.
	PowerReadings struct {
		PowerLimit         string `xml:"power_limit"`
		EnforcedPowerLimit string `xml:"enforced_power_limit"`
		CurrentPowerLimit  string `xml:"current_power_limit"`
	} `xml:"power_readings"`
	// DTD v12+.
	GPUPowerReadings struct {
		CurrentPowerLimit string `xml:"current_power_limit"`
		// 6xx drivers nest it under the ceiling limit.
		Ceiling struct {
			CurrentPowerLimit string `xml:"current_power_limit"`
		} `xml:"gpu_ceiling_power_limit"`
	} `xml:"gpu_power_readings"`
	Processes []xmlProcess `xml:"processes>process_info"`
}

type xmlMIG struct {
	Index             string `xml:"index"`
	GPUInstanceID     string `xml:"gpu_instance_id"`
	ComputeInstanceID string `xml:"compute_instance_id"`
	SMCount           string `xml:"device_attributes>shared>multiprocessor_count"`
	FB                struct {
		Total string `xml:"total"`
	} `xml:"fb_memory_usage"`
}

type xmlProcess struct {
	GPUInstanceID     string `xml:"gpu_instance_id"`
	ComputeInstanceID string `xml:"compute_instance_id"`
	PID               string `xml:"pid"`
	Type              string `xml:"type"`
	Name              string `xml:"process_name"`
	UsedMemory        string `xml:"used_memory"`
}

// ParseXML reads the output of `nvidia-smi -q -x` (DTD v11 to v13 and
// tolerant of later additions: unknown elements are skipped). It fails when
// the input is not well-formed XML or its root is not <nvidia_smi_log>.
func ParseXML(r io.Reader) (Inventory, error) {
	var log xmlLog
	dec := xml.NewDecoder(r)
	// NB: nvidia-smi declares UTF-8 but old drivers wrote ISO-8859-1 process
	// names; accept any declared charset byte for byte rather than fail.
	dec.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil }
	if err := dec.Decode(&log); err != nil {
		if errors.Is(err, io.EOF) {
			return Inventory{}, fmt.Errorf("parse nvidia-smi XML: no <nvidia_smi_log> element")
		}
		var se xml.UnmarshalError
		if errors.As(err, &se) || strings.Contains(err.Error(), "expected element type") {
			return Inventory{}, fmt.Errorf("parse nvidia-smi XML: root element is not <nvidia_smi_log>: %w", err)
		}
		return Inventory{}, fmt.Errorf("parse nvidia-smi XML: %w", err)
	}
	inv := Inventory{
		Source: SourceNVIDIASMI,
		Driver: clean(firstField(log.Driver)),
		CUDA:   clean(firstField(log.CUDA)),
	}
	for i, x := range log.GPUs {
		g := GPU{
			Index:          i,
			Name:           clean(x.ProductName),
			Architecture:   normArch(x.Architecture),
			UUID:           clean(x.UUID),
			PCIBusID:       normBusID(x.PCI.BusID),
			PCIDeviceID:    clean(x.PCI.DeviceID),
			MemoryMiB:      parseMiB(x.FB.Total),
			MIGMode:        migMode(x.MIGMode.Current),
			UtilizationPct: parsePercent(x.Utilization.GPU),
		}
		if g.PCIBusID == "" {
			g.PCIBusID = normBusID(x.ID)
		}
		for _, s := range []string{
			x.GPUPowerReadings.CurrentPowerLimit,
			x.GPUPowerReadings.Ceiling.CurrentPowerLimit,
			x.PowerReadings.EnforcedPowerLimit,
			x.PowerReadings.CurrentPowerLimit,
			x.PowerReadings.PowerLimit,
		} {
			if w := parseWatts(s); w > 0 {
				g.PowerLimitW = w
				break
			}
		}
		for _, m := range x.MIGDevices {
			d := MIGDevice{MemoryMiB: parseMiB(m.FB.Total)}
			d.Index, _ = parseInt(m.Index)
			d.GPUInstanceID, _ = parseInt(m.GPUInstanceID)
			d.ComputeInstanceID, _ = parseInt(m.ComputeInstanceID)
			d.SMCount, _ = parseInt(m.SMCount)
			g.MIGDevices = append(g.MIGDevices, d)
		}
		for _, p := range x.Processes {
			pid, ok := parseInt(p.PID)
			if !ok {
				continue
			}
			g.Processes = append(g.Processes, Process{
				PID:               pid,
				Type:              clean(p.Type),
				Name:              clean(p.Name),
				UsedMemoryMiB:     parseMiB(p.UsedMemory),
				GPUInstanceID:     intPtr(p.GPUInstanceID),
				ComputeInstanceID: intPtr(p.ComputeInstanceID),
			})
		}
		inv.GPUs = append(inv.GPUs, g)
	}
	if n, ok := parseInt(log.AttachedGPUs); ok && n != len(inv.GPUs) {
		inv.Notes = append(inv.Notes, fmt.Sprintf("attached_gpus says %d but the log has %d <gpu> elements", n, len(inv.GPUs)))
	}
	inv.finish()
	return inv, nil
}
