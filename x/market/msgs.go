package market

import (
	"fmt"
	"math/bits"
	"regexp"
	"strings"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/registry"
)

// Bounds on an order. Per-group totals are bounded by the largest inventory the registry
// accepts, so no sum over an order's groups can overflow.
const (
	MaxGroups        = 16
	MaxGroupCount    = 1000
	MaxGPUFilters    = 8
	MaxAttributes    = 16
	MaxGPUUnits      = 64
	MaxOutputHash    = 64
	maxGroupCPUMilli = 8192 * 1000
	maxGroupMemory   = 64 * registry.Ti
	maxGroupStorage  = 10 * registry.Pi
	maxGroupGPUs     = 1024
)

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62})$`)
	modelRe  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	regionRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)
	attrRe   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9._/-]{0,63}$`)
)

// MsgCreateOrder posts an order and escrows its deposit.
type MsgCreateOrder struct {
	Owner        types.Address `json:"owner"`
	Kind         string        `json:"kind"`
	Groups       []Group       `json:"groups"`
	MaxPrice     uint64        `json:"max_price,string"` // per block, whole order
	Deposit      types.Coin    `json:"deposit"`
	Manual       bool          `json:"manual"`
	AutoRedeploy bool          `json:"auto_redeploy"`
	// Mode is the pricing mode (ModeAuction, ...); empty means the auction.
	Mode string `json:"mode,omitempty"`
	// Fill is how an order-book order fills (FillAll, FillPartial, FillAllNow,
	// FillPartialNow); empty means FillAll. Only for mode market.
	Fill string `json:"fill,omitempty"`
	// Session makes the order a session (mode sealed only): nil for none.
	Session *Session `json:"session,omitempty"`
	// TEE, when set, restricts the order to providers with an attested trusted
	// execution environment: TEECPU or TEECPUGPU (which needs GPUs in a group).
	TEE string `json:"tee,omitempty"`
	// AllowedMeasurements, with TEE, lists the launch measurements (hex, 48 bytes)
	// the tenant accepts; empty: any attested environment.
	AllowedMeasurements []string `json:"allowed_measurements,omitempty"`
	// ReclaimWindowSeconds, when not 0, makes the lease reclaimable (Akash AEP-82):
	// its provider may take it back, giving at least this much notice.
	ReclaimWindowSeconds uint64 `json:"reclaim_window_seconds,string,omitempty"`
	// Cluster makes the order a GPU cluster (auction only): nil for none.
	Cluster *Cluster `json:"cluster,omitempty"`
}

// MsgCloseOrder closes the signer's order (and its lease, if any), refunding the escrow.
type MsgCloseOrder struct {
	Owner   types.Address `json:"owner"`
	OrderID uint64        `json:"order_id,string"`
}

// MsgCreateBid bids on an order. GPUModels optionally names, per group, the inventory
// GPU model to offer; empty entries (or an empty list) let the chain pick the first
// matching model with enough free units.
type MsgCreateBid struct {
	Provider  types.Address `json:"provider"`
	OrderID   uint64        `json:"order_id,string"`
	Price     uint64        `json:"price,string"`
	GPUModels []string      `json:"gpu_models,omitempty"`
	// Members, on a cluster order, is how many of its members the provider offers to
	// run (0 means 1), at Price per member per block; 0 on other orders.
	Members uint32 `json:"members,omitempty"`
}

// MsgCloseBid withdraws the signer's bid on an order.
type MsgCloseBid struct {
	Provider types.Address `json:"provider"`
	OrderID  uint64        `json:"order_id,string"`
}

// MsgCreateLease picks a provider's bid on the signer's manual order.
type MsgCreateLease struct {
	Owner    types.Address `json:"owner"`
	OrderID  uint64        `json:"order_id,string"`
	Provider types.Address `json:"provider"`
}

// MsgCloseLease closes a lease; only its tenant or its provider may.
type MsgCloseLease struct {
	Sender  types.Address `json:"sender"`
	LeaseID uint64        `json:"lease_id,string"`
}

// MsgHeartbeat tells the chain the provider is still running the lease.
type MsgHeartbeat struct {
	Provider types.Address `json:"provider"`
	LeaseID  uint64        `json:"lease_id,string"`
}

// MsgStartLease reports that the lease's workload runs: the provider received the
// manifest and started it. A lease bills from the block after this one; one never
// started pays nothing and closes with reason start_timeout after the market's
// start_timeout_blocks.
type MsgStartLease struct {
	Provider types.Address `json:"provider"`
	LeaseID  uint64        `json:"lease_id,string"`
}

// MsgCompleteLease reports a batch lease done, with the hash (or Merkle root) of its
// outputs, and closes it: with reason completed, or workload_failed when Failed says
// the tenant's workload exited with an error. A service lease can only be reported
// failed (its workload died); it never completes.
type MsgCompleteLease struct {
	Provider   types.Address `json:"provider"`
	LeaseID    uint64        `json:"lease_id,string"`
	OutputHash []byte        `json:"output_hash"`
	Failed     bool          `json:"failed"`
}

func (m *MsgCreateOrder) Type() types.MsgType   { return types.MsgTypeMarketCreateOrder }
func (m *MsgCloseOrder) Type() types.MsgType    { return types.MsgTypeMarketCloseOrder }
func (m *MsgCreateBid) Type() types.MsgType     { return types.MsgTypeMarketCreateBid }
func (m *MsgCloseBid) Type() types.MsgType      { return types.MsgTypeMarketCloseBid }
func (m *MsgCreateLease) Type() types.MsgType   { return types.MsgTypeMarketCreateLease }
func (m *MsgCloseLease) Type() types.MsgType    { return types.MsgTypeMarketCloseLease }
func (m *MsgHeartbeat) Type() types.MsgType     { return types.MsgTypeMarketHeartbeat }
func (m *MsgCompleteLease) Type() types.MsgType { return types.MsgTypeMarketCompleteLease }
func (m *MsgStartLease) Type() types.MsgType    { return types.MsgTypeMarketStartLease }

func (m *MsgCreateOrder) Signer() types.Address   { return m.Owner }
func (m *MsgCloseOrder) Signer() types.Address    { return m.Owner }
func (m *MsgCreateBid) Signer() types.Address     { return m.Provider }
func (m *MsgCloseBid) Signer() types.Address      { return m.Provider }
func (m *MsgCreateLease) Signer() types.Address   { return m.Owner }
func (m *MsgCloseLease) Signer() types.Address    { return m.Sender }
func (m *MsgHeartbeat) Signer() types.Address     { return m.Provider }
func (m *MsgCompleteLease) Signer() types.Address { return m.Provider }
func (m *MsgStartLease) Signer() types.Address    { return m.Provider }

func mulOK(a, b, limit uint64) bool {
	hi, lo := bits.Mul64(a, b)
	return hi == 0 && lo <= limit
}

func printable(s string, n int) bool {
	return len(s) <= n && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Validate checks a group, naming the field (prefixed by f), the value and the rule.
func (g *Group) Validate(f string) error {
	switch {
	case !nameRe.MatchString(g.Name):
		return types.InvalidField(f+".name", g.Name, "must be 1-63 of [a-z0-9-], starting with a letter or digit")
	case g.Count < 1 || g.Count > MaxGroupCount:
		return types.InvalidField(f+".count", g.Count, fmt.Sprintf("must be 1 to %d", MaxGroupCount))
	case g.CPUMilli < 1 || !mulOK(uint64(g.Count), g.CPUMilli, maxGroupCPUMilli):
		return types.InvalidField(f+".cpu_milli", g.CPUMilli, fmt.Sprintf("must be >= 1 and count x cpu_milli <= %d", maxGroupCPUMilli))
	case g.MemoryBytes < 1 || !mulOK(uint64(g.Count), g.MemoryBytes, maxGroupMemory):
		return types.InvalidField(f+".memory_bytes", g.MemoryBytes, "must be >= 1 and count x memory <= 64Ti")
	case !mulOK(uint64(g.Count), g.StorageBytes, maxGroupStorage):
		return types.InvalidField(f+".storage_bytes", g.StorageBytes, "count x storage must be <= 10Pi")
	case g.GPU.Units > MaxGPUUnits || !mulOK(uint64(g.Count), uint64(g.GPU.Units), maxGroupGPUs):
		return types.InvalidField(f+".gpu.units", g.GPU.Units, fmt.Sprintf("must be <= %d and count x units <= %d", MaxGPUUnits, maxGroupGPUs))
	case g.GPU.Units == 0 && len(g.GPU.Models) > 0:
		return types.InvalidField(f+".gpu.models", len(g.GPU.Models), "must be empty when gpu.units is 0")
	case len(g.GPU.Models) > MaxGPUFilters:
		return types.InvalidField(f+".gpu.models", len(g.GPU.Models), fmt.Sprintf("at most %d", MaxGPUFilters))
	case g.Region != "" && !regionRe.MatchString(g.Region):
		return types.InvalidField(f+".region", g.Region, "must be empty or 2-63 of [a-z0-9-]")
	case len(g.Attributes) > MaxAttributes:
		return types.InvalidField(f+".attributes", len(g.Attributes), fmt.Sprintf("at most %d", MaxAttributes))
	}
	for i, m := range g.GPU.Models {
		ff := fmt.Sprintf("%s.gpu.models[%d]", f, i)
		switch {
		case m.Model != "" && m.Model != "*" && (len(m.Model) > 32 || !modelRe.MatchString(m.Model)):
			return types.InvalidField(ff+".model", m.Model, "must be *, empty or a lowercase model key like h100")
		case m.MemoryBytes > registry.Ti:
			return types.InvalidField(ff+".memory_bytes", m.MemoryBytes, "must be <= 1Ti")
		case m.Interface != "" && m.Interface != "pcie" && m.Interface != "sxm":
			return types.InvalidField(ff+".interface", m.Interface, "must be empty, pcie or sxm")
		}
	}
	for i, a := range g.Attributes {
		ff := fmt.Sprintf("%s.attributes[%d]", f, i)
		switch {
		case !attrRe.MatchString(a.Key):
			return types.InvalidField(ff+".key", a.Key, "must match "+attrRe.String())
		case a.Value == "" || !printable(a.Value, 128):
			return types.InvalidField(ff+".value", a.Value, "must be 1-128 printable bytes")
		case i > 0 && g.Attributes[i-1].Key >= a.Key:
			return types.InvalidField(ff+".key", a.Key, "keys must be sorted and unique")
		}
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgCreateOrder) ValidateBasic() error {
	if m.Kind != KindBatch && m.Kind != KindService {
		return types.InvalidField("kind", m.Kind, "must be batch or service")
	}
	if len(m.Groups) < 1 || len(m.Groups) > MaxGroups {
		return types.InvalidField("groups", len(m.Groups), fmt.Sprintf("must hold 1 to %d groups", MaxGroups))
	}
	for i := range m.Groups {
		if err := m.Groups[i].Validate(fmt.Sprintf("groups[%d]", i)); err != nil {
			return err
		}
		for j := 0; j < i; j++ {
			if m.Groups[j].Name == m.Groups[i].Name {
				return types.InvalidField(fmt.Sprintf("groups[%d].name", i), m.Groups[i].Name, "must be unique in the order")
			}
		}
	}
	if m.MaxPrice == 0 {
		return types.InvalidField("max_price", 0, "must be > 0 (per block)")
	}
	if !ValidMode(m.Mode) {
		return types.InvalidField("mode", m.Mode, "must be empty or a pricing mode: "+strings.Join(ModeNames(), ", "))
	}
	if m.ReclaimWindowSeconds > MaxReclaimWindowSeconds {
		return types.InvalidField("reclaim_window_seconds", m.ReclaimWindowSeconds, fmt.Sprintf("must be 0 (not reclaimable) to %d (720h)", MaxReclaimWindowSeconds))
	}
	if m.Session != nil && m.Mode != ModeSealed {
		return types.InvalidField("session", m.Session.Blocks, "only a sealed-bid order (mode sealed) is a session")
	}
	if m.Fill != "" && m.Mode != ModeMarket {
		return types.InvalidField("fill", m.Fill, "only an order-book order (mode market) has a fill policy")
	}
	if p, ok := modes[m.Mode].(placer); ok {
		if err := p.validateOrder(m); err != nil {
			return err
		}
	}
	if err := validateTEE(m.TEE, m.AllowedMeasurements, m.Groups); err != nil {
		return err
	}
	if m.Cluster != nil {
		if err := m.validateCluster(); err != nil {
			return err
		}
	}
	// NB: a zero or missing deposit is refused by the handler with
	// ErrInsufficientDeposit, which says how much is needed.
	if m.Deposit.Amount > 0 {
		if err := types.ValidateDenom(m.Deposit.Denom); err != nil {
			return types.InvalidField("deposit.denom", m.Deposit.Denom, err.Error())
		}
	}
	return nil
}

// TEE types an order may require (Order.TEE), as in Akash SDL params.tee.
const (
	TEECPU    = "cpu"     // a confidential VM (AMD SEV-SNP or Intel TDX)
	TEECPUGPU = "cpu-gpu" // a confidential VM with an NVIDIA GPU in confidential-computing mode
)

// MaxMeasurements bounds an order's allowed_measurements.
const MaxMeasurements = 16

// measurementHexLen is a launch measurement (48 bytes: SEV-SNP MEASUREMENT, TDX
// MRTD) in hex.
const measurementHexLen = 96

var measurementRe = regexp.MustCompile(`^[0-9a-f]{96}$`)

// validateTEE checks an order's TEE requirement: a known type, cpu-gpu only with
// GPUs, measurements only with a TEE, each 48 bytes of lower-case hex, no repeats.
func validateTEE(tee string, ms []string, groups []Group) error {
	switch tee {
	case "", TEECPU:
	case TEECPUGPU:
		gpus := false
		for _, g := range groups {
			gpus = gpus || g.GPU.Units > 0
		}
		if !gpus {
			return types.InvalidField("tee", tee, "cpu-gpu needs GPUs: no group asks for gpu units (use tee cpu for a CPU-only confidential VM)")
		}
	default:
		return types.InvalidField("tee", tee, "must be empty, cpu or cpu-gpu")
	}
	if len(ms) > 0 && tee == "" {
		return types.InvalidField("allowed_measurements", len(ms), "need tee cpu or cpu-gpu: only an attested environment has a measurement")
	}
	if len(ms) > MaxMeasurements {
		return types.InvalidField("allowed_measurements", len(ms), fmt.Sprintf("at most %d", MaxMeasurements))
	}
	for i, m := range ms {
		if !measurementRe.MatchString(m) {
			return types.InvalidField(fmt.Sprintf("allowed_measurements[%d]", i), m, "must be 48 bytes of lower-case hex (96 digits)")
		}
		for _, prev := range ms[:i] {
			if prev == m {
				return types.InvalidField(fmt.Sprintf("allowed_measurements[%d]", i), m, "listed twice")
			}
		}
	}
	return nil
}

func needID(field string, id uint64) error {
	if id == 0 {
		return types.InvalidField(field, 0, "must be > 0")
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgCloseOrder) ValidateBasic() error { return needID("order_id", m.OrderID) }

// ValidateBasic implements types.Msg.
func (m *MsgCreateBid) ValidateBasic() error {
	if err := needID("order_id", m.OrderID); err != nil {
		return err
	}
	if m.Price == 0 {
		return types.InvalidField("price", 0, "must be > 0 (per block)")
	}
	if len(m.GPUModels) > MaxGroups {
		return types.InvalidField("gpu_models", len(m.GPUModels), fmt.Sprintf("at most %d, one per group", MaxGroups))
	}
	if m.Members > MaxClusterMembers {
		return types.InvalidField("members", m.Members, fmt.Sprintf("must be 0 to %d (a cluster's most members)", MaxClusterMembers))
	}
	for i, g := range m.GPUModels {
		if g != "" && (len(g) > 32 || !modelRe.MatchString(g)) {
			return types.InvalidField(fmt.Sprintf("gpu_models[%d]", i), g, "must be empty or a lowercase model key like h100")
		}
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgCloseBid) ValidateBasic() error { return needID("order_id", m.OrderID) }

// ValidateBasic implements types.Msg.
func (m *MsgCreateLease) ValidateBasic() error {
	if m.Provider.IsZero() {
		return types.InvalidField("provider", "", "must be set")
	}
	return needID("order_id", m.OrderID)
}

// ValidateBasic implements types.Msg.
func (m *MsgCloseLease) ValidateBasic() error { return needID("lease_id", m.LeaseID) }

// ValidateBasic implements types.Msg.
func (m *MsgHeartbeat) ValidateBasic() error { return needID("lease_id", m.LeaseID) }

// ValidateBasic implements types.Msg.
func (m *MsgStartLease) ValidateBasic() error { return needID("lease_id", m.LeaseID) }

// ValidateBasic implements types.Msg.
func (m *MsgCompleteLease) ValidateBasic() error {
	// NB: a failed workload may have no outputs to commit to; a completed one must.
	if (len(m.OutputHash) < 1 && !m.Failed) || len(m.OutputHash) > MaxOutputHash {
		return types.InvalidField("output_hash", len(m.OutputHash), fmt.Sprintf("must be 1 to %d bytes (0 allowed when failed)", MaxOutputHash))
	}
	return needID("lease_id", m.LeaseID)
}

// --- canonical encoding ---

func writeGroup(w *codec.Writer, g *Group) {
	w.String(g.Name)
	w.Uvarint(uint64(g.Count))
	w.Uvarint(g.CPUMilli)
	w.Uvarint(g.MemoryBytes)
	w.Uvarint(g.StorageBytes)
	w.Uvarint(uint64(g.GPU.Units))
	w.Uvarint(uint64(len(g.GPU.Models)))
	for _, f := range g.GPU.Models {
		w.String(f.Model)
		w.Uvarint(f.MemoryBytes)
		w.String(f.Interface)
	}
	w.String(g.Region)
	w.Uvarint(uint64(len(g.Attributes)))
	for _, a := range g.Attributes {
		w.String(a.Key)
		w.String(a.Value)
	}
	w.Bool(g.Containers)
}

func readU32(r *codec.Reader, what string) uint32 {
	v := r.Uvarint()
	if v > 1<<32-1 {
		r.Fail("%s %d out of range", what, v)
		return 0
	}
	return uint32(v)
}

func readGroup(r *codec.Reader) Group {
	g := Group{Name: r.String(64), Count: readU32(r, "count"), CPUMilli: r.Uvarint(), MemoryBytes: r.Uvarint(), StorageBytes: r.Uvarint()}
	g.GPU.Units = readU32(r, "gpu units")
	n := r.Uvarint()
	if n > MaxGPUFilters {
		r.Fail("%d GPU filters, limit %d", n, MaxGPUFilters)
		return g
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		g.GPU.Models = append(g.GPU.Models, GPUFilter{Model: r.String(32), MemoryBytes: r.Uvarint(), Interface: r.String(8)})
	}
	g.Region = r.String(64)
	n = r.Uvarint()
	if n > MaxAttributes {
		r.Fail("%d attributes, limit %d", n, MaxAttributes)
		return g
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		g.Attributes = append(g.Attributes, registry.Attribute{Key: r.String(64), Value: r.String(128)})
	}
	g.Containers = r.Bool()
	return g
}

func (m *MsgCreateOrder) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Owner[:])
	w.String(m.Kind)
	w.Uvarint(uint64(len(m.Groups)))
	for i := range m.Groups {
		writeGroup(w, &m.Groups[i])
	}
	w.Uvarint(m.MaxPrice)
	w.String(m.Deposit.Denom)
	w.Uvarint(m.Deposit.Amount)
	w.Bool(m.Manual)
	w.Bool(m.AutoRedeploy)
	w.String(m.Mode)
	w.String(m.Fill)
	w.Bool(m.Session != nil)
	if m.Session != nil {
		w.Uvarint(m.Session.Blocks)
		w.String(m.Session.Location)
		w.Uvarint(uint64(m.Session.MaxRTTMs))
	}
	w.String(m.TEE)
	w.Uvarint(uint64(len(m.AllowedMeasurements)))
	for _, ms := range m.AllowedMeasurements {
		w.String(ms)
	}
	w.Uvarint(m.ReclaimWindowSeconds)
	w.Bool(m.Cluster != nil)
	if c := m.Cluster; c != nil {
		w.Uvarint(uint64(c.Members))
		w.Uvarint(uint64(c.GPUsPerMember))
		w.Bool(c.SameRegion)
		w.Uvarint(uint64(c.MaxRTTMs))
		w.String(c.OnMemberFailure)
	}
}

func (m *MsgCloseOrder) MarshalTo(w *codec.Writer) { w.Fixed(m.Owner[:]); w.Uvarint(m.OrderID) }

func (m *MsgCreateBid) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.OrderID)
	w.Uvarint(m.Price)
	w.Uvarint(uint64(len(m.GPUModels)))
	for _, g := range m.GPUModels {
		w.String(g)
	}
	w.Uvarint(uint64(m.Members))
}

func (m *MsgCloseBid) MarshalTo(w *codec.Writer) { w.Fixed(m.Provider[:]); w.Uvarint(m.OrderID) }

func (m *MsgCreateLease) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Owner[:])
	w.Uvarint(m.OrderID)
	w.Fixed(m.Provider[:])
}

func (m *MsgCloseLease) MarshalTo(w *codec.Writer) { w.Fixed(m.Sender[:]); w.Uvarint(m.LeaseID) }
func (m *MsgHeartbeat) MarshalTo(w *codec.Writer)  { w.Fixed(m.Provider[:]); w.Uvarint(m.LeaseID) }
func (m *MsgStartLease) MarshalTo(w *codec.Writer) { w.Fixed(m.Provider[:]); w.Uvarint(m.LeaseID) }

func (m *MsgCompleteLease) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.LeaseID)
	w.WriteBytes(m.OutputHash)
	w.Bool(m.Failed)
}

// DecodeCreateOrder decodes a MsgCreateOrder body.
func DecodeCreateOrder(r *codec.Reader) types.Msg {
	m := &MsgCreateOrder{Owner: bank.ReadAddress(r), Kind: r.String(16)}
	n := r.Uvarint()
	if n > MaxGroups {
		r.Fail("%d groups, limit %d", n, MaxGroups)
		return m
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		m.Groups = append(m.Groups, readGroup(r))
	}
	m.MaxPrice = r.Uvarint()
	m.Deposit = types.Coin{Denom: r.String(128), Amount: r.Uvarint()}
	m.Manual = r.Bool()
	m.AutoRedeploy = r.Bool()
	m.Mode = r.String(32)
	m.Fill = r.String(16)
	if r.Bool() {
		m.Session = &Session{Blocks: r.Uvarint(), Location: r.String(64), MaxRTTMs: readU32(r, "max_rtt_ms")}
	}
	m.TEE = r.String(16)
	n = r.Uvarint()
	if n > MaxMeasurements {
		r.Fail("%d allowed measurements, limit %d", n, MaxMeasurements)
		return m
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		m.AllowedMeasurements = append(m.AllowedMeasurements, r.String(measurementHexLen))
	}
	m.ReclaimWindowSeconds = r.Uvarint()
	if r.Bool() {
		m.Cluster = &Cluster{Members: readU32(r, "cluster members"), GPUsPerMember: readU32(r, "gpus per member"), SameRegion: r.Bool(),
			MaxRTTMs: readU32(r, "max_rtt_ms"), OnMemberFailure: r.String(16)}
	}
	return m
}

// DecodeCloseOrder decodes a MsgCloseOrder body.
func DecodeCloseOrder(r *codec.Reader) types.Msg {
	return &MsgCloseOrder{Owner: bank.ReadAddress(r), OrderID: r.Uvarint()}
}

// DecodeCreateBid decodes a MsgCreateBid body.
func DecodeCreateBid(r *codec.Reader) types.Msg {
	m := &MsgCreateBid{Provider: bank.ReadAddress(r), OrderID: r.Uvarint(), Price: r.Uvarint()}
	n := r.Uvarint()
	if n > MaxGroups {
		r.Fail("%d GPU models, limit %d", n, MaxGroups)
		return m
	}
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		m.GPUModels = append(m.GPUModels, r.String(32))
	}
	m.Members = readU32(r, "members")
	return m
}

// DecodeCloseBid decodes a MsgCloseBid body.
func DecodeCloseBid(r *codec.Reader) types.Msg {
	return &MsgCloseBid{Provider: bank.ReadAddress(r), OrderID: r.Uvarint()}
}

// DecodeCreateLease decodes a MsgCreateLease body.
func DecodeCreateLease(r *codec.Reader) types.Msg {
	return &MsgCreateLease{Owner: bank.ReadAddress(r), OrderID: r.Uvarint(), Provider: bank.ReadAddress(r)}
}

// DecodeCloseLease decodes a MsgCloseLease body.
func DecodeCloseLease(r *codec.Reader) types.Msg {
	return &MsgCloseLease{Sender: bank.ReadAddress(r), LeaseID: r.Uvarint()}
}

// DecodeHeartbeat decodes a MsgHeartbeat body.
func DecodeHeartbeat(r *codec.Reader) types.Msg {
	return &MsgHeartbeat{Provider: bank.ReadAddress(r), LeaseID: r.Uvarint()}
}

// DecodeCompleteLease decodes a MsgCompleteLease body.
func DecodeCompleteLease(r *codec.Reader) types.Msg {
	return &MsgCompleteLease{Provider: bank.ReadAddress(r), LeaseID: r.Uvarint(), OutputHash: r.Bytes(MaxOutputHash), Failed: r.Bool()}
}

// DecodeStartLease decodes a MsgStartLease body.
func DecodeStartLease(r *codec.Reader) types.Msg {
	return &MsgStartLease{Provider: bank.ReadAddress(r), LeaseID: r.Uvarint()}
}

// MsgAsk posts (or amends) the provider's standing ask in the order book: up to Units
// of Class (a GPU model key like h100, or cpu for CPU cores) at Price per unit per
// block. A provider has one ask per class; posting again replaces it.
type MsgAsk struct {
	Provider types.Address `json:"provider"`
	Class    string        `json:"class"`
	Price    uint64        `json:"price,string"`
	Units    uint64        `json:"units,string"`
}

// MsgCancelAsk withdraws the provider's ask in Class.
type MsgCancelAsk struct {
	Provider types.Address `json:"provider"`
	Class    string        `json:"class"`
}

func (m *MsgAsk) Type() types.MsgType         { return types.MsgTypeMarketAsk }
func (m *MsgCancelAsk) Type() types.MsgType   { return types.MsgTypeMarketCancelAsk }
func (m *MsgAsk) Signer() types.Address       { return m.Provider }
func (m *MsgCancelAsk) Signer() types.Address { return m.Provider }

// MaxAskUnits bounds an ask's units: the most GPUs or cores one inventory can hold.
const MaxAskUnits = 1 << 20

func validClass(field, c string) error {
	if c != ClassCPU && (len(c) > 32 || !modelRe.MatchString(c)) {
		return types.InvalidField(field, c, "must be cpu or a lowercase GPU model key like h100")
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgAsk) ValidateBasic() error {
	if err := validClass("class", m.Class); err != nil {
		return err
	}
	if m.Price == 0 {
		return types.InvalidField("price", 0, "must be > 0 (per unit per block)")
	}
	if m.Units < 1 || m.Units > MaxAskUnits {
		return types.InvalidField("units", m.Units, fmt.Sprintf("must be 1 to %d", MaxAskUnits))
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgCancelAsk) ValidateBasic() error { return validClass("class", m.Class) }

func (m *MsgAsk) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.String(m.Class)
	w.Uvarint(m.Price)
	w.Uvarint(m.Units)
}

func (m *MsgCancelAsk) MarshalTo(w *codec.Writer) { w.Fixed(m.Provider[:]); w.String(m.Class) }

// DecodeAsk decodes a MsgAsk body.
func DecodeAsk(r *codec.Reader) types.Msg {
	return &MsgAsk{Provider: bank.ReadAddress(r), Class: r.String(32), Price: r.Uvarint(), Units: r.Uvarint()}
}

// DecodeCancelAsk decodes a MsgCancelAsk body.
func DecodeCancelAsk(r *codec.Reader) types.Msg {
	return &MsgCancelAsk{Provider: bank.ReadAddress(r), Class: r.String(32)}
}
