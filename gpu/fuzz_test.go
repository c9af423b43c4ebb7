package gpu

import (
	"bytes"
	"strings"
	"testing"
)

// Fuzz targets for every nvidia-smi parser. Seeds are small and inline; the
// corpus files are third-party data and stay out of the repo. Inputs that once
// broke a parser live in testdata/fuzz/<target>/.

func FuzzParseXML(f *testing.F) {
	f.Add([]byte(twoGPUXML))
	f.Add([]byte(`<nvidia_smi_log><gpu id="0"><product_name>NVIDIA A100-SXM4-80GB</product_name><mig_mode><current_mig>Enabled</current_mig></mig_mode><mig_devices><mig_device><index>0</index><gpu_instance_id>3</gpu_instance_id><fb_memory_usage><total>19968 MiB</total></fb_memory_usage></mig_device></mig_devices></gpu></nvidia_smi_log>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><nvidia_smi_log><gpu><processes><process_info><pid>1</pid></process_info></processes></gpu></nvidia_smi_log>`))
	f.Add([]byte(`<nvidia_smi_log><gpu>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, data, ParseXML)
	})
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("index, name, uuid, memory.total [MiB], pci.device_id, power.limit [W], utilization.gpu [%]\n0, NVIDIA H100 80GB HBM3, GPU-a, 81559 MiB, 0x233010DE, 700.00 W, 5 %\n"))
	f.Add([]byte("name, uuid, memory.reserved [MiB], memory.used [MiB], memory.free [MiB]\nTesla P100-PCIE-16GB, GPU-x, 103, 0, 16280\n"))
	f.Add([]byte("name\n\"unterminated\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, data, ParseCSV)
	})
}

const qSeed = `==============NVSMI LOG==============

Driver Version                            : 610.62 [Deprecated]
KMD Version                               : 610.62
Attached GPUs                             : 1
GPU 00000000:0C:00.0
    Product Name                          : NVIDIA GeForce RTX 2080 SUPER
    MIG Mode
        Current                           : Enabled
    MIG Device
        Index                             : 0
        GPU Instance ID                   : 2
        Shared FB Memory Usage
            Total                         : 40448 MiB
    PCI
        Device Id                         : 0x1E8110DE
    GPU Power Readings
        GPU Ceiling Power Limit
            Current Power Limit           : 250.00 W
    Processes
        GPU instance ID                   : N/A
        Compute instance ID               : N/A
        Process ID                        : 2140
            Type                          : C+G
            Name                          : C:\Windows\System32\dwm.exe
            Used GPU Memory               : Not available in WDDM driver model
`

func FuzzParseQ(f *testing.F) {
	f.Add([]byte(qSeed))
	f.Add([]byte("Attached GPUs : 1\nGPU 0\n  Product Name : x\n    Processes\n Type : C\n"))
	f.Add([]byte("GPU 1:2:3\n\tMIG Devices\n\t\tMIG Device\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, data, ParseQ)
	})
}

func FuzzParseTopo(f *testing.F) {
	f.Add([]byte(topoDGX))
	f.Add([]byte("\t\x1b[4mGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID\x1b[0m\nGPU0\t X \t\t\t\tN/A\n\nLegend:\n"))
	f.Add([]byte("\tGPU0\tGPU1\nGPU0\t X \tNV\nGPU1\tNVx\t X \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := ParseTopo(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(topo.Devices) == 0 {
			t.Fatal("ParseTopo succeeded with no devices")
		}
		for _, a := range topo.Devices {
			for b := range a.Links {
				if n := topo.NVLinks(a.Name, b); n < 0 {
					t.Fatalf("NVLinks(%s, %s) = %d", a.Name, b, n)
				}
			}
		}
	})
}

func FuzzParseTable(f *testing.F) {
	f.Add([]byte(`+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 590.48.01              Driver Version: 590.48.01      CUDA Version: 13.1     |
+-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|=========================================+========================+======================|
|   0  NVIDIA H200                    On  |   00000000:83:00.0 Off |                   On |
| N/A   36C    P0            295W /  700W |   16959MiB / 143771MiB |     N/A      Default |
|                                         |                        |              Enabled |
+-----------------------------------------+------------------------+----------------------+
| MIG devices:                                                                            |
|==================+==================================+===========+=======================|
|  0    2   0   0  |           16925MiB / 71424MiB    | 16      0 |  3   0    3    0    3 |
| Processes:                                                                              |
|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |
|=========================================================================================|
|    0    2    1            12249      C   /root/tools/memhog                     2194MiB |
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, data, ParseTable)
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(twoGPUXML))
	f.Add([]byte(qSeed))
	f.Add([]byte(topoDGX))
	f.Add([]byte("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)\n  MIG 3g.40gb     Device  0: (UUID: MIG-0)\n"))
	f.Add([]byte(strings.Repeat("#", 80) + "\n# idle :: query (-q)\n" + strings.Repeat("#", 80) + "\n" + qSeed))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(inv.GPUs) == 0 && inv.Topology == nil && Sniff(data) != FormatQ && Sniff(data) != FormatXML && Sniff(data) != FormatCSV {
			t.Fatalf("Parse(%s) succeeded with nothing in it", Sniff(data))
		}
	})
}
