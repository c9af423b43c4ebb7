package gpu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDetectNoDriver runs the real Detect on a host without NVIDIA hardware:
// it must return a CPU-only inventory and ErrNoDriver, never crash.
func TestDetectNoDriver(t *testing.T) {
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		t.Skip("this host has an NVIDIA driver; the no-driver path cannot be observed here")
	}
	// An empty PATH hides any nvidia-smi.
	t.Setenv("PATH", t.TempDir())
	inv, err := Detect(context.Background(), Options{})
	if !errors.Is(err, ErrNoDriver) {
		t.Fatalf("Detect() error = %v, want ErrNoDriver", err)
	}
	if !strings.Contains(err.Error(), "no NVIDIA driver found") {
		t.Errorf("Detect() error = %q, want it to say %q", err, "no NVIDIA driver found")
	}
	if inv.Source != SourceOS || len(inv.GPUs) != 0 {
		t.Errorf("Detect() = source %q with %d GPUs, want %q with none", inv.Source, len(inv.GPUs), SourceOS)
	}
	if inv.CPU.Threads == 0 {
		t.Errorf("Detect().CPU.Threads = 0, want the host's CPUs")
	}
	if len(inv.Notes) == 0 || inv.Notes[0] != "no NVIDIA driver found" {
		t.Errorf("Detect().Notes = %q, want first note %q", inv.Notes, "no NVIDIA driver found")
	}
	if err := inv.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	t.Logf("notes: %q", inv.Notes)
}

// fakeSMI writes an executable nvidia-smi that prints the given file for
// -q -x and fails for everything else.
func fakeSMI(t *testing.T, xmlFile string, exit int) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "nvidia-smi")
	script := "#!/bin/sh\n"
	if exit != 0 {
		script += "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9\n"
	} else {
		script += "if [ \"$1\" = \"-q\" ]; then cat '" + xmlFile + "'; exit 0; fi\nexit 3\n"
	}
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetectNVIDIASMIFallback(t *testing.T) {
	xml := filepath.Join(t.TempDir(), "two.xml")
	if err := os.WriteFile(xml, []byte(twoGPUXML), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		smi        string
		wantErr    error
		wantSource string
		wantGPUs   int
	}{
		{"xml", fakeSMI(t, xml, 0), nil, SourceNVIDIASMI, 2},
		{"driver gone", fakeSMI(t, xml, 9), ErrNoDriver, SourceOS, 0},
		{"disabled", "-", ErrNoDriver, SourceOS, 0},
		{"missing binary", filepath.Join(t.TempDir(), "nope"), ErrNoDriver, SourceOS, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Detect(context.Background(), Options{SkipNVML: true, NVIDIASMI: tt.smi})
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Fatalf("Detect() error = %v, want %v", err, tt.wantErr)
			}
			if inv.Source != tt.wantSource || len(inv.GPUs) != tt.wantGPUs {
				t.Errorf("Detect() = %q with %d GPUs, want %q with %d", inv.Source, len(inv.GPUs), tt.wantSource, tt.wantGPUs)
			}
			if tt.wantGPUs > 0 {
				if inv.GPUs[0].ModelKey != "h100" || inv.Driver != "550.54.15" {
					t.Errorf("Detect() GPU0 = %+v driver %q", inv.GPUs[0], inv.Driver)
				}
				// topo -m fails in the fake: noted, not fatal.
				if inv.Topology != nil {
					t.Errorf("Topology = %+v, want nil when topo -m fails", inv.Topology)
				}
			}
		})
	}
}

func TestDetectCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	xml := filepath.Join(t.TempDir(), "two.xml")
	os.WriteFile(xml, []byte(twoGPUXML), 0o644)
	_, err := Detect(ctx, Options{SkipNVML: true, NVIDIASMI: fakeSMI(t, xml, 0)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Detect(canceled) error = %v, want context.Canceled", err)
	}
}

const twoGPUXML = `<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log>
	<driver_version>550.54.15</driver_version>
	<cuda_version>12.4</cuda_version>
	<attached_gpus>2</attached_gpus>
	<gpu id="00000000:18:00.0">
		<product_name>NVIDIA H100 80GB HBM3</product_name>
		<uuid>GPU-aaaa</uuid>
		<pci><pci_device_id>233010DE</pci_device_id><pci_bus_id>00000000:18:00.0</pci_bus_id></pci>
		<fb_memory_usage><total>81559 MiB</total></fb_memory_usage>
		<gpu_power_readings><current_power_limit>700.00 W</current_power_limit></gpu_power_readings>
	</gpu>
	<gpu id="00000000:2A:00.0">
		<product_name>NVIDIA H100 80GB HBM3</product_name>
		<uuid>GPU-bbbb</uuid>
		<pci><pci_device_id>233010DE</pci_device_id><pci_bus_id>00000000:2A:00.0</pci_bus_id></pci>
		<fb_memory_usage><total>81559 MiB</total></fb_memory_usage>
	</gpu>
</nvidia_smi_log>
`

func contains(s, sub string) bool { return strings.Contains(s, sub) }
