// Package registry records providers: their endpoint, TLS certificate and hardware
// inventory. Provider stake is bonded through staking (purpose "provider"), so it
// unbonds over the same period, can be slashed (staking.SlashBond) and can be locked by
// the modules whose leases and disputes involve the provider (staking's unbond guards).
// The registry NEVER keeps a copy of the stake: every read takes the live bond.
package registry

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/staking"
)

// ModuleName is the registry's name in params and state.
const ModuleName = "registry"

// BondPurpose is the staking purpose of provider stake.
const BondPurpose = "provider"

var providerPrefix = []byte("registry/prov/")

// Params are the registry's on-chain parameters.
type Params struct {
	// MinProviderStake is the least stake a provider must bond, in the bond denom.
	MinProviderStake uint64 `json:"min_provider_stake,string"`
}

// DefaultParams: 100 KILN of stake per provider.
func DefaultParams() Params { return Params{MinProviderStake: 100_000_000} }

// Validate checks the parameters.
func (p Params) Validate() error { return nil }

// Provider is a registered provider, as Get, List and queries return it.
type Provider struct {
	Owner     types.Address `json:"owner"`
	Endpoint  string        `json:"endpoint"`
	CertPEM   string        `json:"cert_pem"`
	Inventory Inventory     `json:"inventory"`
	// Stake is the provider's live bond, read from staking when the provider is read:
	// it is never stored here, so a slash or a top-up shows at once.
	Stake         uint64 `json:"stake,string"`
	CreatedHeight int64  `json:"created_height,string"`
	UpdatedHeight int64  `json:"updated_height,string"`
}

// record is a Provider as stored: everything but the stake, which staking holds.
type record struct {
	Owner         types.Address `json:"owner"`
	Endpoint      string        `json:"endpoint"`
	CertPEM       string        `json:"cert_pem"`
	Inventory     Inventory     `json:"inventory"`
	CreatedHeight int64         `json:"created_height,string"`
	UpdatedHeight int64         `json:"updated_height,string"`
}

func key(a types.Address) []byte { return append(append([]byte{}, providerPrefix...), a[:]...) }

// decode reads a stored record and fills in the live stake.
func decode(ctx *types.Context, v []byte) Provider {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		panic(fmt.Sprintf("registry: corrupt provider record: %v", err))
	}
	return Provider{Owner: r.Owner, Endpoint: r.Endpoint, CertPEM: r.CertPEM, Inventory: r.Inventory,
		Stake: staking.Bonded(ctx, BondPurpose, r.Owner), CreatedHeight: r.CreatedHeight, UpdatedHeight: r.UpdatedHeight}
}

// Get returns the provider owned by a, with its live stake.
func Get(ctx *types.Context, a types.Address) (Provider, bool) {
	v, ok := ctx.Store.Get(key(a))
	if !ok {
		return Provider{}, false
	}
	return decode(ctx, v), true
}

// Exists reports whether a is a registered provider, without decoding its record.
func Exists(ctx *types.Context, a types.Address) bool {
	_, ok := ctx.Store.Get(key(a))
	return ok
}

func set(ctx *types.Context, p Provider) {
	b, _ := json.Marshal(record{Owner: p.Owner, Endpoint: p.Endpoint, CertPEM: p.CertPEM, Inventory: p.Inventory,
		CreatedHeight: p.CreatedHeight, UpdatedHeight: ctx.Height})
	ctx.Store.Set(key(p.Owner), b)
}

// List returns all providers sorted by owner address, with their live stakes.
func List(ctx *types.Context) []Provider {
	var raw [][]byte
	ctx.Store.Iterate(providerPrefix, func(_, v []byte) bool {
		raw = append(raw, v)
		return true
	})
	out := make([]Provider, 0, len(raw))
	for _, v := range raw {
		out = append(out, decode(ctx, v))
	}
	return out
}

// ValidateEndpoint checks that e is an https URL with a host and port.
func ValidateEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Port() == "" || u.Path != "" && u.Path != "/" || len(e) > 256 {
		return fmt.Errorf("endpoint: must be https://HOST:PORT, at most 256 bytes (got %q)", e)
	}
	return nil
}

// MsgRegisterProvider registers the signer as a provider.
type MsgRegisterProvider struct {
	Owner     types.Address `json:"owner"`
	Endpoint  string        `json:"endpoint"`
	CertPEM   []byte        `json:"cert_pem"`
	Inventory Inventory     `json:"inventory"`
	Stake     types.Coin    `json:"stake"`
}

// MsgUpdateProvider changes a provider's endpoint, certificate or inventory, and may
// add stake. Empty fields are left as they are.
type MsgUpdateProvider struct {
	Owner     types.Address `json:"owner"`
	Endpoint  string        `json:"endpoint,omitempty"`
	CertPEM   []byte        `json:"cert_pem,omitempty"`
	Inventory *Inventory    `json:"inventory,omitempty"`
	AddStake  uint64        `json:"add_stake,string"`
}

// MsgDeregisterProvider removes the provider and starts unbonding its stake.
type MsgDeregisterProvider struct {
	Owner types.Address `json:"owner"`
}

func (m *MsgRegisterProvider) Type() types.MsgType   { return types.MsgTypeRegistryRegister }
func (m *MsgUpdateProvider) Type() types.MsgType     { return types.MsgTypeRegistryUpdate }
func (m *MsgDeregisterProvider) Type() types.MsgType { return types.MsgTypeRegistryDeregister }

func (m *MsgRegisterProvider) Signer() types.Address   { return m.Owner }
func (m *MsgUpdateProvider) Signer() types.Address     { return m.Owner }
func (m *MsgDeregisterProvider) Signer() types.Address { return m.Owner }

func invalid(err error) error { return types.Wrapf(types.ErrInvalidMsg, "%v", err) }

// ValidateBasic implements types.Msg.
func (m *MsgRegisterProvider) ValidateBasic() error {
	if err := ValidateEndpoint(m.Endpoint); err != nil {
		return invalid(err)
	}
	if _, err := certpem.Parse(m.CertPEM); err != nil {
		return invalid(fmt.Errorf("certificate: %w", err))
	}
	if err := m.Inventory.Validate(); err != nil {
		return invalid(err)
	}
	if err := m.Stake.Validate(); err != nil {
		return types.InvalidField("stake", m.Stake, err.Error())
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgUpdateProvider) ValidateBasic() error {
	if m.Endpoint != "" {
		if err := ValidateEndpoint(m.Endpoint); err != nil {
			return invalid(err)
		}
	}
	if len(m.CertPEM) > 0 {
		if _, err := certpem.Parse(m.CertPEM); err != nil {
			return invalid(fmt.Errorf("certificate: %w", err))
		}
	}
	if m.Inventory != nil {
		if err := m.Inventory.Validate(); err != nil {
			return invalid(err)
		}
	}
	if m.Endpoint == "" && len(m.CertPEM) == 0 && m.Inventory == nil && m.AddStake == 0 {
		return types.Wrapf(types.ErrInvalidMsg, "update changes nothing")
	}
	return nil
}

// ValidateBasic implements types.Msg.
func (m *MsgDeregisterProvider) ValidateBasic() error { return nil }

func (m *MsgRegisterProvider) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Owner[:])
	w.String(m.Endpoint)
	w.WriteBytes(m.CertPEM)
	m.Inventory.MarshalTo(w)
	w.String(m.Stake.Denom)
	w.Uvarint(m.Stake.Amount)
}

func (m *MsgUpdateProvider) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Owner[:])
	w.String(m.Endpoint)
	w.WriteBytes(m.CertPEM)
	w.Bool(m.Inventory != nil)
	if m.Inventory != nil {
		m.Inventory.MarshalTo(w)
	}
	w.Uvarint(m.AddStake)
}

func (m *MsgDeregisterProvider) MarshalTo(w *codec.Writer) { w.Fixed(m.Owner[:]) }

// DecodeRegister decodes a MsgRegisterProvider body.
func DecodeRegister(r *codec.Reader) types.Msg {
	m := &MsgRegisterProvider{Owner: bank.ReadAddress(r), Endpoint: r.String(512), CertPEM: r.Bytes(16 << 10)}
	m.Inventory = UnmarshalInventory(r)
	m.Stake = types.Coin{Denom: r.String(128), Amount: r.Uvarint()}
	return m
}

// DecodeUpdate decodes a MsgUpdateProvider body.
func DecodeUpdate(r *codec.Reader) types.Msg {
	m := &MsgUpdateProvider{Owner: bank.ReadAddress(r), Endpoint: r.String(512), CertPEM: r.Bytes(16 << 10)}
	if r.Bool() {
		inv := UnmarshalInventory(r)
		m.Inventory = &inv
	}
	m.AddStake = r.Uvarint()
	return m
}

// DecodeDeregister decodes a MsgDeregisterProvider body.
func DecodeDeregister(r *codec.Reader) types.Msg {
	return &MsgDeregisterProvider{Owner: bank.ReadAddress(r)}
}

// Handle executes a registry message.
func Handle(ctx *types.Context, msg types.Msg) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	var sp staking.Params
	params.Get(ctx, staking.ModuleName, &sp)
	switch m := msg.(type) {
	case *MsgRegisterProvider:
		if _, exists := Get(ctx, m.Owner); exists {
			return types.Wrapf(types.ErrAlreadyExists, "provider %s is already registered; use update-provider", m.Owner)
		}
		if m.Stake.Denom != sp.BondDenom {
			return types.Wrapf(types.ErrInvalidMsg, "stake must be in %s (got %s)", sp.BondDenom, m.Stake.Denom)
		}
		if m.Stake.Amount < p.MinProviderStake {
			return types.Wrapf(types.ErrInvalidMsg, "stake %s below the minimum %d%s", m.Stake, p.MinProviderStake, sp.BondDenom)
		}
		if err := staking.Bond(ctx, BondPurpose, m.Owner, m.Stake.Amount); err != nil {
			return err
		}
		set(ctx, Provider{Owner: m.Owner, Endpoint: m.Endpoint, CertPEM: string(m.CertPEM), Inventory: m.Inventory, CreatedHeight: ctx.Height})
		ctx.Emit("register_provider", "owner", m.Owner.String(), "endpoint", m.Endpoint)
		prov, _ := Get(ctx, m.Owner)
		fireInventory(ctx, prov, true)
		changed(ctx, m.Owner)
		return nil
	case *MsgUpdateProvider:
		prov, ok := Get(ctx, m.Owner)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "provider %s is not registered", m.Owner)
		}
		if m.Endpoint != "" {
			prov.Endpoint = m.Endpoint
		}
		if len(m.CertPEM) > 0 {
			prov.CertPEM = string(m.CertPEM)
		}
		if m.Inventory != nil {
			prov.Inventory = *m.Inventory
		}
		if m.AddStake > 0 {
			if err := staking.Bond(ctx, BondPurpose, m.Owner, m.AddStake); err != nil {
				return err
			}
		}
		set(ctx, prov)
		ctx.Emit("update_provider", "owner", m.Owner.String())
		if m.Inventory != nil {
			fireInventory(ctx, prov, false)
		}
		changed(ctx, m.Owner)
		return nil
	case *MsgDeregisterProvider:
		if _, ok := Get(ctx, m.Owner); !ok {
			return types.Wrapf(types.ErrNotFound, "provider %s is not registered", m.Owner)
		}
		if amt := staking.Bonded(ctx, BondPurpose, m.Owner); amt > 0 {
			if err := staking.Unbond(ctx, BondPurpose, m.Owner, amt); err != nil {
				return err
			}
		}
		ctx.Store.Delete(key(m.Owner))
		ctx.Emit("deregister_provider", "owner", m.Owner.String())
		changed(ctx, m.Owner)
		return nil
	}
	return types.Wrapf(types.ErrUnknownMsgType, "registry cannot handle %T", msg)
}
