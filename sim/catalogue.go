package sim

import "github.com/kiln-network/kiln/x/registry"

// Model is a GPU model in the synthetic network, with the share of the network's GPUs
// it has and a reference price per GPU-hour in US dollars: the figures the networks
// Kiln is compared with publish (H100 around $1.2-1.5/h, A100 $0.3-1.5/h), or street
// prices where they publish none.
type Model struct {
	Name      string
	MemoryGiB uint64
	Interface string
	Weight    int     // share of GPUs, relative
	USDPerH   float64 // reference price per GPU-hour
}

// Catalogue is the synthetic network's GPU models.
var Catalogue = []Model{
	{"h100", 80, "sxm", 14, 1.40},
	{"h200", 141, "sxm", 3, 2.20},
	{"a100", 80, "sxm", 14, 1.10},
	{"a100", 40, "pcie", 8, 0.80},
	{"l40s", 48, "pcie", 8, 0.75},
	{"a6000", 48, "pcie", 6, 0.50},
	{"rtx4090", 24, "pcie", 22, 0.35},
	{"rtx3090", 24, "pcie", 15, 0.22},
	{"v100", 32, "sxm", 6, 0.20},
	{"mi300x", 192, "sxm", 4, 1.80},
}

// Regions are the synthetic network's regions.
var Regions = []string{"us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-northeast", "sa-east", "af-south"}

// cpuUSDPerCoreH is the reference price of a CPU core-hour.
const cpuUSDPerCoreH = 0.01

func (m Model) gpu(count uint32) registry.GPU {
	return registry.GPU{Model: m.Name, MemoryBytes: m.MemoryGiB * registry.Gi, Interface: m.Interface, Count: count}
}
