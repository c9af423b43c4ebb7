package market

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/registry"
)

func encode(m types.Msg) []byte {
	w := codec.NewWriter(128)
	m.MarshalTo(w)
	return w.Bytes()
}

// roundTrip fails t unless a body that decodes re-encodes to the same bytes, and
// ValidateBasic never panics on it.
func roundTrip(t *testing.T, d tx.Decoder, b []byte) {
	r := codec.NewReader(b)
	m := d(r)
	if r.Done() != nil {
		return
	}
	if got := encode(m); !bytes.Equal(got, b) {
		t.Fatalf("re-encoding %x gave %x", b, got)
	}
	_ = m.ValidateBasic()
}

func sampleOrder() *MsgCreateOrder {
	return &MsgCreateOrder{Owner: types.Address{1}, Kind: KindBatch, MaxPrice: 100, Deposit: types.NewCoin("ukiln", 1000),
		Groups: []Group{{Name: "web", Count: 2, CPUMilli: 500, MemoryBytes: 1 << 30, StorageBytes: 1 << 30,
			GPU:    GPURequest{Units: 1, Models: []GPUFilter{{Model: "h100", MemoryBytes: 80 << 30, Interface: "sxm"}, {Model: "*"}}},
			Region: "eu-west", Attributes: []registry.Attribute{{Key: "tier", Value: "1"}}}}, Manual: true, AutoRedeploy: true}
}

func FuzzDecodeCreateOrder(f *testing.F) {
	f.Add(encode(sampleOrder()))
	tee := sampleOrder()
	tee.TEE, tee.AllowedMeasurements = TEECPUGPU, []string{strings.Repeat("ab", 48)}
	f.Add(encode(tee))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCreateOrder, b) })
}

func FuzzDecodeCloseOrder(f *testing.F) {
	f.Add(encode(&MsgCloseOrder{Owner: types.Address{1}, OrderID: 7}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCloseOrder, b) })
}

func FuzzDecodeCreateBid(f *testing.F) {
	f.Add(encode(&MsgCreateBid{Provider: types.Address{1}, OrderID: 7, Price: 5, GPUModels: []string{"h100", ""}}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCreateBid, b) })
}

func FuzzDecodeCloseBid(f *testing.F) {
	f.Add(encode(&MsgCloseBid{Provider: types.Address{1}, OrderID: 7}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCloseBid, b) })
}

func FuzzDecodeCreateLease(f *testing.F) {
	f.Add(encode(&MsgCreateLease{Owner: types.Address{1}, OrderID: 7, Provider: types.Address{2}}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCreateLease, b) })
}

func FuzzDecodeCloseLease(f *testing.F) {
	f.Add(encode(&MsgCloseLease{Sender: types.Address{1}, LeaseID: 7}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCloseLease, b) })
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(encode(&MsgHeartbeat{Provider: types.Address{1}, LeaseID: 7}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeHeartbeat, b) })
}

func FuzzDecodeStartLease(f *testing.F) {
	f.Add(encode(&MsgStartLease{Provider: types.Address{1}, LeaseID: 7}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeStartLease, b) })
}

func FuzzDecodeCompleteLease(f *testing.F) {
	f.Add(encode(&MsgCompleteLease{Provider: types.Address{1}, LeaseID: 7, OutputHash: bytes.Repeat([]byte{9}, 32)}))
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeCompleteLease, b) })
}

func TestCreateOrderValidateBasic(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *MsgCreateOrder)
		ok   bool
	}{
		{"sample", func(*MsgCreateOrder) {}, true},
		{"bad kind", func(m *MsgCreateOrder) { m.Kind = "cron" }, false},
		{"no groups", func(m *MsgCreateOrder) { m.Groups = nil }, false},
		{"zero count", func(m *MsgCreateOrder) { m.Groups[0].Count = 0 }, false},
		{"zero cpu", func(m *MsgCreateOrder) { m.Groups[0].CPUMilli = 0 }, false},
		{"storage overflow", func(m *MsgCreateOrder) { m.Groups[0].Count = 1000; m.Groups[0].StorageBytes = 1 << 60 }, false},
		{"models without units", func(m *MsgCreateOrder) { m.Groups[0].GPU.Units = 0 }, false},
		{"bad interface", func(m *MsgCreateOrder) { m.Groups[0].GPU.Models[0].Interface = "nvlink" }, false},
		{"unsorted attributes", func(m *MsgCreateOrder) {
			m.Groups[0].Attributes = []registry.Attribute{{Key: "b", Value: "1"}, {Key: "a", Value: "1"}}
		}, false},
		{"duplicate group", func(m *MsgCreateOrder) { m.Groups = append(m.Groups, m.Groups[0]) }, false},
		{"zero max price", func(m *MsgCreateOrder) { m.MaxPrice = 0 }, false},
		{"no deposit passes to the handler", func(m *MsgCreateOrder) { m.Deposit = types.Coin{} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleOrder()
			tt.edit(m)
			if err := m.ValidateBasic(); (err == nil) != tt.ok {
				t.Fatalf("ValidateBasic() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// Fit separates what an inventory can never give from what its leases hold now, and
// picks a concrete GPU per group.
func TestFit(t *testing.T) {
	inv := registry.Inventory{Region: "eu-west", CPUCores: 8, MemoryBytes: 32 << 30, StorageBytes: 100 << 30,
		GPUs:    []registry.GPU{{Model: "a100", MemoryBytes: 40 << 30, Interface: "pcie", Count: 2}, {Model: "a100", MemoryBytes: 80 << 30, Interface: "sxm", Count: 4}},
		Runtime: registry.Runtime{Executor: "docker", Containers: true, GPUs: true}}
	g := func(units uint32, filters ...GPUFilter) []Group {
		return []Group{{Name: "g", Count: 1, CPUMilli: 1000, MemoryBytes: 1 << 30, GPU: GPURequest{Units: units, Models: filters}}}
	}
	containers := func(units uint32) []Group {
		gs := g(units)
		gs[0].Containers = true
		return gs
	}
	noGPUs := inv
	noGPUs.Runtime.GPUs = false
	process := inv
	process.Runtime = registry.Runtime{Executor: "process", GPUs: true}
	half := Usage{GPUs: []GPUCount{{GPUSpec{"a100", 80 << 30, "sxm"}, 3}}}
	tests := []struct {
		name         string
		groups       []Group
		prefs        []string
		used         Usage
		static, busy string // first failing constraint, "" for none
		gpu          GPUSpec
		inv          registry.Inventory // zero: inv
	}{
		{"any gpu takes the first spec", g(1), nil, Usage{}, "", "", GPUSpec{"a100", 40 << 30, "pcie"}, registry.Inventory{}},
		{"memory filter", g(2, GPUFilter{Model: "a100", MemoryBytes: 80 << 30}), nil, Usage{}, "", "", GPUSpec{"a100", 80 << 30, "sxm"}, registry.Inventory{}},
		{"count beyond any one spec", g(5), nil, Usage{}, "gpu_count", "", GPUSpec{}, registry.Inventory{}},
		{"wrong model", g(1, GPUFilter{Model: "h100"}), nil, Usage{}, "gpu_model", "", GPUSpec{}, registry.Inventory{}},
		{"in use", g(2, GPUFilter{Interface: "sxm"}), nil, half, "", "capacity_in_use", GPUSpec{}, registry.Inventory{}},
		{"falls to the other spec when busy", g(2), nil, half, "", "", GPUSpec{"a100", 40 << 30, "pcie"}, registry.Inventory{}},
		{"cpu", []Group{{Name: "g", Count: 9, CPUMilli: 1000, MemoryBytes: 1}}, nil, Usage{}, "cpu", "", GPUSpec{}, registry.Inventory{}},
		{"containers on docker", containers(1), nil, Usage{}, "", "", GPUSpec{"a100", 40 << 30, "pcie"}, registry.Inventory{}},
		{"containers on process", containers(0), nil, Usage{}, "runtime", "", GPUSpec{}, process},
		{"commands on process", g(1), nil, Usage{}, "", "", GPUSpec{"a100", 40 << 30, "pcie"}, process},
		{"gpus without a gpu runtime", g(1), nil, Usage{}, "runtime", "", GPUSpec{}, noGPUs},
		{"cpu only without a gpu runtime", g(0), nil, Usage{}, "", "", GPUSpec{}, noGPUs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := inv
			if tt.inv.Runtime.Executor != "" {
				inv = tt.inv
			}
			need, choices, static, busy := Fit(tt.groups, tt.prefs, inv, tt.used)
			first := func(fs []Failure) string {
				if len(fs) == 0 {
					return ""
				}
				return fs[0].Constraint
			}
			if first(static) != tt.static || first(busy) != tt.busy {
				t.Fatalf("Fit = static %v, in use %v; want %q, %q", static, busy, tt.static, tt.busy)
			}
			if tt.static == "" && tt.busy == "" {
				if choices[0] != tt.gpu {
					t.Fatalf("choice = %+v, want %+v", choices[0], tt.gpu)
				}
				if err := need.FitsIn(Free(Total(inv), tt.used)); err != nil {
					t.Fatalf("need %+v does not fit: %v", need, err)
				}
			}
		})
	}
}
