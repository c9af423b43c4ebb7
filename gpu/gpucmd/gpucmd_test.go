package gpucmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/gpu"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

const sampleQ = `==============NVSMI LOG==============

Driver Version                            : 550.54.14
CUDA Version                              : 12.4

Attached GPUs                             : 1
GPU 00000000:AD:00.0
    Product Name                          : NVIDIA H100 NVL
    MIG Mode
        Current                           : Disabled
        Pending                           : Disabled
    GPU UUID                              : GPU-1234
    PCI
        Device Id                         : 0x232110DE
        Bus Id                            : 00000000:AD:00.0
    FB Memory Usage
        Total                             : 95830 MiB
    Utilization
        Gpu                               : 3 %
    GPU Power Readings
        Current Power Limit               : 310.00 W
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "smi.txt")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetectFromFile(t *testing.T) {
	p := writeFile(t, sampleQ)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"text", []string{"detect", "--from-file", p}, []string{"Source:  detected-nvidia-smi", "Driver:  550.54.14 (CUDA 12.4)", "h100", "NVIDIA H100 NVL", "95830 MiB", "pcie", "9.0", "310W", "3%"}},
		{"json", []string{"detect", "--from-file", p, "--output", "json"}, []string{`"model_key": "h100"`, `"source": "detected-nvidia-smi"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if err != nil {
				t.Fatalf("gpu %v: %v\n%s", tt.args, err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("gpu %v output lacks %q:\n%s", tt.args, w, out)
				}
			}
		})
	}
}

func TestDetectJSONRoundTrip(t *testing.T) {
	out, err := run(t, "detect", "--from-file", writeFile(t, sampleQ), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inv gpu.Inventory
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatalf("json output does not decode: %v\n%s", err, out)
	}
	if len(inv.GPUs) != 1 || inv.GPUs[0].PowerLimitW != 310 || !inv.Detected() {
		t.Errorf("decoded inventory = %+v", inv)
	}
}

func TestDetectErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad output", []string{"detect", "--output", "yaml"}, "--output: must be text or json"},
		{"missing file", []string{"detect", "--from-file", filepath.Join(t.TempDir(), "nope")}, "no such file"},
		{"garbage file", []string{"detect", "--from-file", writeFile(t, "hello world\n")}, "not a recognised nvidia-smi output"},
		{"args", []string{"detect", "extra"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("gpu %v error = %v, want %q\n%s", tt.args, err, tt.want, out)
			}
		})
	}
}

// TestDetectLive runs detection through a stubbed gpu.Detect: a host without
// a driver prints its CPU-only inventory and the note, and exits 0.
func TestDetectLive(t *testing.T) {
	orig := detect
	t.Cleanup(func() { detect = orig })
	detect = func(context.Context, gpu.Options) (gpu.Inventory, error) {
		return gpu.Inventory{
			Source:      gpu.SourceOS,
			CPU:         gpu.CPUInfo{Model: "Test CPU", Cores: 4, Threads: 8},
			MemoryBytes: 16 << 30,
			Notes:       []string{gpu.ErrNoDriver.Error()},
		}, fmt.Errorf("detect GPUs: %w", gpu.ErrNoDriver)
	}
	out, err := run(t, "detect")
	if err != nil {
		t.Fatalf("gpu detect without driver: %v", err)
	}
	for _, w := range []string{"Source:  detected-os", "Test CPU, 4 cores, 8 threads", "16.0 GiB", "GPUs:    none", "Note:    no NVIDIA driver found"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	detect = func(context.Context, gpu.Options) (gpu.Inventory, error) {
		return gpu.Inventory{}, fmt.Errorf("nvml: boom")
	}
	if _, err := run(t, "detect"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("gpu detect with a real failure: err = %v, want boom", err)
	}
}

func TestWriteTextMIGAndTopology(t *testing.T) {
	inv := gpu.Inventory{
		Source: gpu.SourceNVIDIASMI,
		GPUs: []gpu.GPU{
			{Index: 0, Name: "NVIDIA H100 80GB HBM3", ModelKey: "h100", MIGMode: gpu.MIGEnabled,
				MIGDevices: []gpu.MIGDevice{{Index: 0, Profile: "3g.40gb", GPUInstanceID: 2, MemoryMiB: 40448}}},
			{Index: 1, Name: "NVIDIA H100 80GB HBM3", ModelKey: "h100"},
		},
		Topology: &gpu.Topology{Devices: []gpu.TopoDevice{
			{Name: "GPU0", Links: map[string]string{"GPU1": "NV18"}},
			{Name: "GPU1", Links: map[string]string{"GPU0": "NV18"}},
		}},
	}
	var b bytes.Buffer
	if err := WriteText(&b, inv); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"enabled (1)", "GPU 0 MIG 0: 3g.40gb gi=2", "GPU0: GPU1=NV18"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("WriteText lacks %q:\n%s", w, b.String())
		}
	}
}
