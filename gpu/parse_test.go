package gpu

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// A multi-GPU topo -m with NICs, as DGX H100 nodes print it (the corpus has
// single-GPU matrices only).
const topoDGX = "\t\x1b[4mGPU0\tGPU1\tGPU2\tNIC0\tNIC1\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m\n" +
	"GPU0\t X \tNV18\tNV18\tPXB\tSYS\t0-55,112-167\t0\t\tN/A\n" +
	"GPU1\tNV18\t X \tNV18\tSYS\tPXB\t0-55,112-167\t0\t\tN/A\n" +
	"GPU2\tNV18\tNV18\t X \tSYS\tSYS\t56-111,168-223\t1\t\tN/A\n" +
	"NIC0\tPXB\tSYS\tSYS\t X \tSYS\t\t\t\t\n" +
	"NIC1\tSYS\tPXB\tSYS\tSYS\t X \t\t\t\t\n" +
	"\nLegend:\n\n  X    = Self\n  NV#  = Connection traversing a bonded set of # NVLinks\n\n" +
	"NIC Legend:\n\n  NIC0: mlx5_0\n  NIC1: mlx5_1\n"

func TestParseTopoMultiGPU(t *testing.T) {
	topo, err := ParseTopo(strings.NewReader(topoDGX))
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Devices) != 5 {
		t.Fatalf("ParseTopo: %d devices, want 5: %+v", len(topo.Devices), topo.Devices)
	}
	tests := []struct {
		a, b, link string
		nv         int
	}{
		{"GPU0", "GPU1", "NV18", 18},
		{"GPU2", "GPU0", "NV18", 18},
		{"GPU0", "NIC0", "PXB", 0},
		{"GPU1", "NIC1", "PXB", 0},
		{"NIC0", "NIC1", "SYS", 0},
		{"GPU0", "GPU0", "", 0},
		{"GPU9", "GPU0", "", 0},
	}
	for _, tt := range tests {
		if got := topo.Link(tt.a, tt.b); got != tt.link {
			t.Errorf("Link(%s, %s) = %q, want %q", tt.a, tt.b, got, tt.link)
		}
		if got := topo.NVLinks(tt.a, tt.b); got != tt.nv {
			t.Errorf("NVLinks(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.nv)
		}
	}
	if d := topo.Devices[2]; d.CPUAffinity != "56-111,168-223" || d.NUMAAffinity != "1" || d.GPUNUMAID != "" {
		t.Errorf("GPU2 affinity = %+v", d)
	}
	if want := map[string]string{"NIC0": "mlx5_0", "NIC1": "mlx5_1"}; !reflect.DeepEqual(topo.NICs, want) {
		t.Errorf("NICs = %v, want %v", topo.NICs, want)
	}
	if Sniff([]byte(topoDGX)) != FormatTopo {
		t.Errorf("Sniff(topo) = %q", Sniff([]byte(topoDGX)))
	}
	var nilTopo *Topology
	if nilTopo.Link("GPU0", "GPU1") != "" || nilTopo.NVLinks("GPU0", "GPU1") != 0 {
		t.Error("nil Topology must answer empty")
	}
}

// Every parser must fail with an error that names what it expected, never
// return an empty inventory as if all were well.
func TestParsersRejectGarbage(t *testing.T) {
	type parser struct {
		name string
		fn   func(io.Reader) error
	}
	inv := func(f func(io.Reader) (Inventory, error)) func(io.Reader) error {
		return func(r io.Reader) error { _, err := f(r); return err }
	}
	parsers := []parser{
		{"ParseXML", inv(ParseXML)},
		{"ParseQ", inv(ParseQ)},
		{"ParseCSV", inv(ParseCSV)},
		{"ParseTable", inv(ParseTable)},
		{"ParseList", inv(ParseList)},
		{"ParseCapture", inv(ParseCapture)},
		{"Parse", inv(Parse)},
		{"ParseTopo", func(r io.Reader) error { _, err := ParseTopo(r); return err }},
	}
	inputs := map[string]string{
		"empty":   "",
		"text":    "hello world\nthis is not nvidia-smi\n",
		"binary":  "\x00\x01\x02\xff\xfe",
		"json":    `{"gpus": []}`,
		"html":    "<html><body>502 Bad Gateway</body></html>",
		"smi err": "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
	}
	for _, p := range parsers {
		for name, in := range inputs {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				if err := p.fn(strings.NewReader(in)); err == nil {
					t.Errorf("%s(%q) = nil error, want one", p.name, in)
				}
			})
		}
	}
}

func TestParseXMLErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "no <nvidia_smi_log> element"},
		{"<foo></foo>", "root element is not <nvidia_smi_log>"},
		{"<nvidia_smi_log><gpu>", "unexpected EOF"},
	}
	for _, tt := range tests {
		_, err := ParseXML(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "parse nvidia-smi XML") {
			t.Errorf("ParseXML(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParseXMLOldSchema(t *testing.T) {
	// DTD v10-v11: power_readings/power_limit, no architecture, process list.
	const in = `<?xml version="1.0" ?><nvidia_smi_log><driver_version>470.74</driver_version><cuda_version>11.4</cuda_version>
<attached_gpus>1</attached_gpus><gpu id="0000:01:00.0"><product_name>Tesla T4</product_name><uuid>GPU-t4</uuid>
<pci><pci_device_id>1EB810DE</pci_device_id></pci><fb_memory_usage><total>15109 MiB</total></fb_memory_usage>
<utilization><gpu_util>12 %</gpu_util></utilization><power_readings><power_limit>70.00 W</power_limit></power_readings>
<processes><process_info><pid>99</pid><type>C</type><process_name>python</process_name><used_memory>300 MiB</used_memory></process_info>
<process_info><pid>N/A</pid></process_info></processes></gpu></nvidia_smi_log>`
	inv, err := ParseXML(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	g := inv.GPUs[0]
	want := GPU{Index: 0, UUID: "GPU-t4", Name: "Tesla T4", ModelKey: "t4", Vendor: "nvidia", Architecture: "turing",
		MemoryMiB: 15109, Interface: InterfacePCIe, ComputeCapability: "7.5", PCIBusID: "00000000:01:00.0",
		PCIDeviceID: "1eb8", PowerLimitW: 70, UtilizationPct: g.UtilizationPct,
		Processes: []Process{{PID: 99, Type: "C", Name: "python", UsedMemoryMiB: 300}}}
	if !reflect.DeepEqual(g, want) || *g.UtilizationPct != 12 {
		t.Errorf("ParseXML(old schema) =\n%+v\nwant\n%+v", g, want)
	}
}

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name, in string
		want     []GPU
		driver   string
	}{
		{
			name: "kiln fields with units",
			in: "index, name, uuid, pci.bus_id, pci.device_id, memory.total [MiB], compute_cap, driver_version, power.limit [W], utilization.gpu [%], mig.mode.current\n" +
				"0, NVIDIA H100 80GB HBM3, GPU-a, 00000000:18:00.0, 0x233010DE, 81559 MiB, 9.0, 550.54.15, 700.00 W, 5 %, Disabled\n" +
				"1, NVIDIA H100 80GB HBM3, GPU-b, 00000000:2A:00.0, 0x233010DE, 81559 MiB, 9.0, 550.54.15, [N/A], [N/A], Enabled\n",
			driver: "550.54.15",
			want: []GPU{
				{Index: 0, UUID: "GPU-a", Name: "NVIDIA H100 80GB HBM3", ModelKey: "h100", Vendor: "nvidia", Architecture: "hopper", MemoryMiB: 81559, Interface: "sxm", ComputeCapability: "9.0", PCIBusID: "00000000:18:00.0", PCIDeviceID: "2330", MIGMode: MIGDisabled, PowerLimitW: 700, UtilizationPct: ptr(5)},
				{Index: 1, UUID: "GPU-b", Name: "NVIDIA H100 80GB HBM3", ModelKey: "h100", Vendor: "nvidia", Architecture: "hopper", MemoryMiB: 81559, Interface: "sxm", ComputeCapability: "9.0", PCIBusID: "00000000:2A:00.0", PCIDeviceID: "2330", MIGMode: MIGEnabled},
			},
		},
		{
			name: "nounits, reordered, quoted",
			in:   "memory.total [MiB],name,index\n24576,\"NVIDIA GeForce RTX 4090\",3\n\n",
			want: []GPU{{Index: 3, Name: "NVIDIA GeForce RTX 4090", ModelKey: "rtx4090", Vendor: "nvidia", Architecture: "ada", MemoryMiB: 24576, Interface: "pcie", ComputeCapability: "8.9"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := ParseCSV(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if inv.Driver != tt.driver || !reflect.DeepEqual(inv.GPUs, tt.want) {
				t.Errorf("ParseCSV() = %q\n%s\nwant %q\n%s", inv.Driver, mustJSON(t, inv.GPUs), tt.driver, mustJSON(t, tt.want))
			}
		})
	}
}

func TestParseCSVErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty input"},
		{"index, uuid\n0, GPU-a\n", `no "name" column`},
		{"NVIDIA H100, GPU-a, 81559 MiB\n", `no "name" column`}, // noheader output
		{"name, uuid\n, \n", "row has no name and no uuid"},
	}
	for _, tt := range tests {
		_, err := ParseCSV(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCSV(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestParseQOldLayout(t *testing.T) {
	// 4xx drivers: "Power Readings" with "Power Limit", processes with
	// details as siblings of "Process ID".
	const in = `==============NVSMI LOG==============

Driver Version                      : 470.57.02
CUDA Version                        : 11.4

Attached GPUs                       : 1
GPU 00000000:00:1E.0
    Product Name                    : Tesla V100-SXM2-16GB
    GPU UUID                        : GPU-v100
    PCI
        Device Id                   : 0x1DB110DE
    FB Memory Usage
        Total                       : 16160 MiB
    Utilization
        Gpu                         : 100 %
    Power Readings
        Power Management            : Supported
        Power Limit                 : 300.00 W
    Processes
        Process ID                  : 1234
        Type                        : C
        Name                        : python train.py
        Used GPU Memory             : 15000 MiB
`
	inv, err := ParseQ(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	g := inv.GPUs[0]
	if inv.Driver != "470.57.02" || g.ModelKey != "v100" || g.Interface != InterfaceSXM || g.MemoryMiB != 16160 ||
		g.PowerLimitW != 300 || g.PCIBusID != "00000000:00:1E.0" || *g.UtilizationPct != 100 {
		t.Errorf("ParseQ(old) = %s", mustJSON(t, inv))
	}
	want := []Process{{PID: 1234, Type: "C", Name: "python train.py", UsedMemoryMiB: 15000}}
	if !reflect.DeepEqual(g.Processes, want) {
		t.Errorf("Processes = %+v, want %+v", g.Processes, want)
	}
}

func TestParseQErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Foo : bar\n", "no NVSMI header and no GPU section"},
		{"==============NVSMI LOG==============\nDriver Version : 1\nAttached GPUs : 2\n", "2 GPUs attached but no GPU section"},
	}
	for _, tt := range tests {
		_, err := ParseQ(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseQ(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
	// A driver with no GPUs is not an error: zero GPUs attached.
	inv, err := ParseQ(strings.NewReader("==============NVSMI LOG==============\nDriver Version : 550.1\nAttached GPUs : 0\n"))
	if err != nil || len(inv.GPUs) != 0 || inv.Driver != "550.1" {
		t.Errorf("ParseQ(no GPUs) = %+v, %v", inv, err)
	}
}

func TestParseTableOldProcesses(t *testing.T) {
	// Pre-450 drivers: no GI/CI columns in the process table.
	const in = `+-----------------------------------------------------------------------------+
| NVIDIA-SMI 440.33.01    Driver Version: 440.33.01    CUDA Version: 10.2     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |
|===============================+======================+======================|
|   0  Tesla T4            Off  | 00000000:00:04.0 Off |                    0 |
| N/A   38C    P0    26W /  70W |    105MiB / 15109MiB |      0%      Default |
+-------------------------------+----------------------+----------------------+

+-----------------------------------------------------------------------------+
| Processes:                                                       GPU Memory |
|  GPU       PID   Type   Process name                             Usage      |
|=============================================================================|
|    0     12345      C   python                                     95MiB |
+-----------------------------------------------------------------------------+
`
	inv, err := ParseTable(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	g := inv.GPUs[0]
	if inv.Driver != "440.33.01" || inv.CUDA != "10.2" || g.ModelKey != "t4" || g.MemoryMiB != 15109 || g.PowerLimitW != 70 || g.PCIBusID != "00000000:00:04.0" {
		t.Errorf("ParseTable(440) = %s", mustJSON(t, inv))
	}
	want := []Process{{PID: 12345, Type: "C", Name: "python", UsedMemoryMiB: 95}}
	if !reflect.DeepEqual(g.Processes, want) {
		t.Errorf("Processes = %+v, want %+v", g.Processes, want)
	}
}

func TestSniff(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<?xml version="1.0" ?>`, FormatXML},
		{"\ufeff<nvidia_smi_log>", FormatXML},
		{"==============NVSMI LOG==============\n", FormatQ},
		{"\nTimestamp : x\nDriver Version : 1\nAttached GPUs : 1\n", FormatQ},
		{"name, memory.total [MiB]\nX, 1\n", FormatCSV},
		{"index,name\n0,X\n", FormatCSV},
		{"GPU 0: NVIDIA L4 (UUID: GPU-1)\n", FormatList},
		{"\tGPU0\tCPU Affinity\nGPU0\t X \t0-3\n", FormatTopo},
		{"Tue Jul 14 2026\n+----+\n| NVIDIA-SMI 550 |\n", FormatTable},
		{strings.Repeat("#", 80) + "\n# x\n", FormatCapture},
		{"hello", ""},
		{"", ""},
		{"a,b,c\n1,2,3\n", ""},
	}
	for _, tt := range tests {
		if got := Sniff([]byte(tt.in)); got != tt.want {
			t.Errorf("Sniff(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseCaptureNoGPUs(t *testing.T) {
	in := strings.Repeat("#", 80) + "\n# capabilities :: version\n" + strings.Repeat("#", 80) + "\nNVIDIA-SMI version : 1\n"
	if _, err := ParseCapture(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "no section with GPUs") {
		t.Errorf("ParseCapture(no GPUs) = %v", err)
	}
}

func TestValues(t *testing.T) {
	mib := []struct {
		in   string
		want uint64
	}{{"81559 MiB", 81559}, {"81559MiB", 81559}, {"80 GiB", 81920}, {"2048 KiB", 2}, {"[N/A]", 0}, {"-5 MiB", 0}, {"1e400 MiB", 0}, {"x", 0}, {"Not available in WDDM driver model", 0}}
	for _, tt := range mib {
		if got := parseMiB(tt.in); got != tt.want {
			t.Errorf("parseMiB(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
	watts := []struct {
		in   string
		want float64
	}{{"700.00 W", 700}, {"72.5W", 72.5}, {"N/A", 0}, {"NaN W", 0}, {"-1 W", 0}}
	for _, tt := range watts {
		if got := parseWatts(tt.in); got != tt.want {
			t.Errorf("parseWatts(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]*int{"37 %": ptr(37), "0%": ptr(0), "[N/A]": nil, "101 %": nil, "x": nil} {
		if got := parsePercent(in); !reflect.DeepEqual(got, want) {
			t.Errorf("parsePercent(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[string]string{"0000:18:00.0": "00000000:18:00.0", "00000000:ab:00.0": "00000000:AB:00.0", "N/A": "", "garbage": "GARBAGE"} {
		if got := normBusID(in); got != want {
			t.Errorf("normBusID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInventoryValidate(t *testing.T) {
	ok := Inventory{Source: SourceNVML, GPUs: []GPU{{Index: 0, Interface: "sxm"}, {Index: 1, MIGMode: MIGEnabled}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(ok) = %v", err)
	}
	tests := []struct {
		name string
		inv  Inventory
		want string
	}{
		{"source", Inventory{Source: "guessed"}, `source: must be one of`},
		{"os with gpus", Inventory{Source: SourceOS, GPUs: []GPU{{}}}, "gpus: must be empty"},
		{"dup index", Inventory{Source: SourceNVML, GPUs: []GPU{{Index: 1}, {Index: 1}}}, "gpus[1].index: duplicate"},
		{"iface", Inventory{Source: SourceNVML, GPUs: []GPU{{Interface: "SXM5"}}}, `gpus[0].interface: must be pcie or sxm (got "SXM5")`},
		{"mig", Inventory{Source: SourceNVML, GPUs: []GPU{{MIGMode: "on"}}}, "gpus[0].mig_mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.inv.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDeclare(t *testing.T) {
	inv, err := Declare("h100", 8, CPUInfo{Model: "demo", Cores: 64, Threads: 128}, 1<<40, 1<<42)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != SourceDeclared || inv.Detected() || len(inv.GPUs) != 8 {
		t.Fatalf("Declare() = %q detected=%v %d GPUs", inv.Source, inv.Detected(), len(inv.GPUs))
	}
	if g := inv.GPUs[7]; g.ModelKey != "h100" || g.MemoryMiB != 80*1024 || g.Interface != InterfaceSXM || !strings.HasPrefix(g.UUID, "declared-") {
		t.Errorf("Declare() GPU 7 = %+v", g)
	}
	if err := inv.Validate(); err != nil {
		t.Errorf("Validate(declared) = %v", err)
	}
	if inv.GPUCount()["h100"] != 8 {
		t.Errorf("GPUCount() = %v", inv.GPUCount())
	}
	if _, err := Declare("h9000", 1, CPUInfo{}, 0, 0); err == nil || !strings.Contains(err.Error(), `model: not in the GPU catalogue (got "h9000")`) {
		t.Errorf("Declare(unknown) = %v", err)
	}
	if _, err := Declare("h100", -1, CPUInfo{}, 0, 0); err == nil {
		t.Error("Declare(count -1) = nil error")
	}
	cpuOnly, err := Declare("", 0, CPUInfo{Cores: 4, Threads: 4}, 0, 0)
	if err != nil || len(cpuOnly.GPUs) != 0 || cpuOnly.Source != SourceDeclared {
		t.Errorf("Declare(CPU only) = %+v, %v", cpuOnly, err)
	}
}

func ptr(n int) *int { return &n }

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// checkParsed is the property every fuzz target asserts: a parser that says
// yes returns an inventory that is deterministic and encodes to JSON.
func checkParsed(t *testing.T, data []byte, parse func(io.Reader) (Inventory, error)) {
	inv, err := parse(bytes.NewReader(data))
	if err != nil {
		return
	}
	if inv.Source != SourceNVIDIASMI {
		t.Fatalf("source = %q", inv.Source)
	}
	a, err := json.Marshal(inv)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	again, err := parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("second parse failed: %v", err)
	}
	b, _ := json.Marshal(again)
	if !bytes.Equal(a, b) {
		t.Fatalf("parse is not deterministic:\n%s\n%s", a, b)
	}
	for _, g := range inv.GPUs {
		switch g.Interface {
		case "", InterfacePCIe, InterfaceSXM:
		default:
			t.Fatalf("interface %q", g.Interface)
		}
	}
}
