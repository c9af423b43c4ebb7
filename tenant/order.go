package tenant

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/quantity"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// OrderSpec is the file a tenant writes for `kiln tx market create-order` (YAML or
// JSON). Sizes take units (512Mi, 80Gi); cpu is cores ("2", "0.5") or millicores
// ("500m").
type OrderSpec struct {
	Kind         string `yaml:"kind"`      // batch (default) or service
	MaxPrice     string `yaml:"max_price"` // per block, e.g. 1000 or 1000ukiln
	Deposit      string `yaml:"deposit"`   // e.g. 100000ukiln
	Manual       bool   `yaml:"manual"`
	AutoRedeploy bool   `yaml:"auto_redeploy"`
	// Pricing is the pricing mode (auction, market, ...); empty: the auction.
	Pricing string `yaml:"pricing"`
	// Fill is how an order-book order (pricing: market) fills: all, partial,
	// all_now or partial_now.
	Fill   string      `yaml:"fill"`
	Groups []GroupSpec `yaml:"groups"`
	// TEE restricts the order to attested providers: cpu (a confidential VM) or
	// cpu-gpu (with GPUs in a group); AllowedMeasurements, with it, the launch
	// measurements (hex) the tenant accepts.
	TEE                 string   `yaml:"tee"`
	AllowedMeasurements []string `yaml:"allowed_measurements"`
	// Reclamation accepts a reclaimable lease that runs at least min_window (a Go
	// duration, 1h-720h), as SDL 2.1's reclamation block.
	Reclamation *struct {
		MinWindow string `yaml:"min_window"`
	} `yaml:"reclamation"`
	// Cluster makes the order a GPU cluster: members machines of the (one) group,
	// placed together across providers, with one rendezvous.
	Cluster *ClusterSpec `yaml:"cluster"`
}

// ClusterSpec is an OrderSpec's cluster: block.
//
//	cluster: {members: 3, gpus_per_member: 1, same_region: false, max_rtt_ms: 0, on_member_failure: refund}
type ClusterSpec struct {
	Members uint32 `yaml:"members"`
	// GPUsPerMember defaults to the group's gpu.units; set alone, it sets them.
	GPUsPerMember   uint32 `yaml:"gpus_per_member"`
	SameRegion      bool   `yaml:"same_region"`
	MaxRTTMs        uint32 `yaml:"max_rtt_ms"`
	OnMemberFailure string `yaml:"on_member_failure"` // refund (default) or replace
}

// GroupSpec is one group of an OrderSpec.
type GroupSpec struct {
	Name       string            `yaml:"name"`
	Count      uint32            `yaml:"count"` // default 1
	CPU        string            `yaml:"cpu"`
	Memory     string            `yaml:"memory"`
	Storage    string            `yaml:"storage"`
	GPU        GPUSpec           `yaml:"gpu"`
	Region     string            `yaml:"region"`
	Attributes map[string]string `yaml:"attributes"`
}

// GPUSpec asks for GPUs in a GroupSpec.
type GPUSpec struct {
	Units  uint32         `yaml:"units"`
	Models []GPUModelSpec `yaml:"models"`
}

// GPUModelSpec is one acceptable GPU model.
type GPUModelSpec struct {
	Model     string `yaml:"model"`
	Memory    string `yaml:"memory"`
	Interface string `yaml:"interface"`
}

// LoadOrderSpec reads and parses an order spec file.
func LoadOrderSpec(path string) (OrderSpec, error) {
	b, err := readSpecFile(path)
	if err != nil {
		return OrderSpec{}, err
	}
	s, err := ParseOrderSpec(b)
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseOrderSpec parses an order spec (YAML, or JSON, which is YAML), refusing unknown
// fields and specs over the limits (MaxSpecBytes, MaxSpecNodes, MaxSpecMapEntries).
func ParseOrderSpec(b []byte) (OrderSpec, error) {
	var s OrderSpec
	if err := decodeSpec(b, &s); err != nil {
		return s, fmt.Errorf("order spec: %w", err)
	}
	return s, nil
}

// lowerAll returns ss in lower case (hex measurements may be written in either).
func lowerAll(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, strings.ToLower(strings.TrimSpace(s)))
	}
	return out
}

// ReclaimSeconds is the spec's reclamation.min_window in seconds (0: none), checked
// against Akash's bounds (1h-720h).
func (s OrderSpec) ReclaimSeconds() (uint64, error) {
	if s.Reclamation == nil {
		return 0, nil
	}
	d, err := time.ParseDuration(s.Reclamation.MinWindow)
	if err != nil || d < time.Hour || d > 720*time.Hour {
		return 0, fmt.Errorf("reclamation.min_window %q: must be a duration from 1h to 720h (e.g. 24h)", s.Reclamation.MinWindow)
	}
	return uint64(d / time.Second), nil
}

// Msg builds the MsgCreateOrder for owner; denom is the market's (MarketParams).
// It checks the message with ValidateBasic.
func (s OrderSpec) Msg(owner types.Address, denom string) (*market.MsgCreateOrder, error) {
	m := &market.MsgCreateOrder{Owner: owner, Kind: s.Kind, Manual: s.Manual, AutoRedeploy: s.AutoRedeploy, Mode: s.Pricing, Fill: s.Fill,
		TEE: s.TEE, AllowedMeasurements: lowerAll(s.AllowedMeasurements)}
	if m.Kind == "" {
		m.Kind = market.KindBatch
	}
	var err error
	if m.ReclaimWindowSeconds, err = s.ReclaimSeconds(); err != nil {
		return nil, err
	}
	if m.MaxPrice, err = client.ParsePrice(s.MaxPrice, denom); err != nil {
		return nil, fmt.Errorf("max_price: %w", err)
	}
	if s.Deposit != "" {
		if m.Deposit, err = types.ParseCoin(s.Deposit); err != nil {
			return nil, fmt.Errorf("deposit: %w", err)
		}
	}
	for i, gs := range s.Groups {
		f := fmt.Sprintf("groups[%d]", i)
		g := market.Group{Name: gs.Name, Count: gs.Count, Region: gs.Region, GPU: market.GPURequest{Units: gs.GPU.Units}}
		if g.Count == 0 {
			g.Count = 1
		}
		if g.CPUMilli, err = quantity.ParseCPU(gs.CPU); err != nil {
			return nil, fmt.Errorf("%s.cpu: %w (got %q)", f, err, gs.CPU)
		}
		if g.MemoryBytes, err = quantity.ParseBytes(gs.Memory); err != nil {
			return nil, fmt.Errorf("%s.memory: %w (got %q)", f, err, gs.Memory)
		}
		if gs.Storage != "" {
			if g.StorageBytes, err = quantity.ParseBytes(gs.Storage); err != nil {
				return nil, fmt.Errorf("%s.storage: %w (got %q)", f, err, gs.Storage)
			}
		}
		for j, ms := range gs.GPU.Models {
			gf := market.GPUFilter{Model: ms.Model, Interface: ms.Interface}
			if ms.Memory != "" {
				if gf.MemoryBytes, err = quantity.ParseBytes(ms.Memory); err != nil {
					return nil, fmt.Errorf("%s.gpu.models[%d].memory: %w (got %q)", f, j, err, ms.Memory)
				}
			}
			g.GPU.Models = append(g.GPU.Models, gf)
		}
		for k, v := range gs.Attributes {
			g.Attributes = append(g.Attributes, registry.Attribute{Key: k, Value: v})
		}
		sort.Slice(g.Attributes, func(a, b int) bool { return g.Attributes[a].Key < g.Attributes[b].Key })
		m.Groups = append(m.Groups, g)
	}
	if c := s.Cluster; c != nil {
		m.Cluster = &market.Cluster{Members: c.Members, GPUsPerMember: c.GPUsPerMember, SameRegion: c.SameRegion, MaxRTTMs: c.MaxRTTMs, OnMemberFailure: c.OnMemberFailure}
		if m.Cluster.OnMemberFailure == "" {
			m.Cluster.OnMemberFailure = market.FailRefund
		}
		if len(m.Groups) == 1 {
			g := &m.Groups[0]
			switch {
			case m.Cluster.GPUsPerMember == 0:
				m.Cluster.GPUsPerMember = g.GPU.Units
			case g.GPU.Units == 0:
				g.GPU.Units = m.Cluster.GPUsPerMember
			}
		}
	}
	return m, m.ValidateBasic()
}
