// Package bank holds balances of every denomination, transfers between accounts, the
// total supply, and the per-block distribution of collected fees.
//
// Invariant: for every denom, the sum of all balances equals the recorded supply, and
// supply changes only through Mint and Burn.
package bank

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/params"
)

// ModuleName is the bank's name in params and state.
const ModuleName = "bank"

// State prefixes. Balance keys are prefix|address(20)|denom.
var (
	balancePrefix = []byte("bank/bal/")
	supplyPrefix  = []byte("bank/supply/")
)

// Well-known module accounts.
var (
	FeeCollector  = types.ModuleAddress("fee_collector")
	CommunityPool = types.ModuleAddress("community_pool")
)

// Params are the bank's on-chain parameters.
type Params struct {
	// FeeProposerBps is the share of each block's fees paid to its proposer, in basis
	// points; the rest goes to the community pool.
	FeeProposerBps uint32 `json:"fee_proposer_bps"`
}

// DefaultParams: half the fees to the proposer, half to the community pool.
func DefaultParams() Params { return Params{FeeProposerBps: 5000} }

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.FeeProposerBps > 10000 {
		return fmt.Errorf("fee_proposer_bps: must be <= 10000 (got %d)", p.FeeProposerBps)
	}
	return nil
}

func balanceKey(a types.Address, denom string) []byte {
	k := make([]byte, 0, len(balancePrefix)+types.AddressLen+len(denom))
	k = append(k, balancePrefix...)
	k = append(k, a[:]...)
	return append(k, denom...)
}

func getUint(ctx *types.Context, key []byte) uint64 {
	v, ok := ctx.Store.Get(key)
	if !ok {
		return 0
	}
	if len(v) != 8 {
		panic(fmt.Sprintf("bank: corrupt amount at %q", key))
	}
	return binary.BigEndian.Uint64(v)
}

func setUint(ctx *types.Context, key []byte, v uint64) {
	if v == 0 {
		ctx.Store.Delete(key)
		return
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	ctx.Store.Set(key, b)
}

// Balance returns a's balance of denom.
func Balance(ctx *types.Context, a types.Address, denom string) uint64 {
	return getUint(ctx, balanceKey(a, denom))
}

// Balances returns all of a's balances, sorted by denom.
func Balances(ctx *types.Context, a types.Address) types.Coins {
	prefix := append(append([]byte{}, balancePrefix...), a[:]...)
	var out types.Coins
	ctx.Store.Iterate(prefix, func(k, v []byte) bool {
		out = append(out, types.Coin{Denom: string(k[len(prefix):]), Amount: binary.BigEndian.Uint64(v)})
		return true
	})
	return out
}

// Supply returns the total supply of every denom, sorted.
func Supply(ctx *types.Context) types.Coins {
	var out types.Coins
	ctx.Store.Iterate(supplyPrefix, func(k, v []byte) bool {
		out = append(out, types.Coin{Denom: string(k[len(supplyPrefix):]), Amount: binary.BigEndian.Uint64(v)})
		return true
	})
	return out
}

// SupplyOf returns the total supply of denom.
func SupplyOf(ctx *types.Context, denom string) uint64 {
	return getUint(ctx, append(append([]byte{}, supplyPrefix...), denom...))
}

// Send moves coins from one account to another. It refuses with ErrInsufficientFunds
// and changes nothing if from lacks any of them.
func Send(ctx *types.Context, from, to types.Address, coins ...types.Coin) error {
	for _, c := range coins {
		if bal := Balance(ctx, from, c.Denom); bal < c.Amount {
			return types.Wrapf(types.ErrInsufficientFunds, "%s has %d%s, needs %s", from, bal, c.Denom, c)
		}
	}
	for _, c := range coins {
		if c.Amount == 0 || from == to {
			continue
		}
		setUint(ctx, balanceKey(from, c.Denom), Balance(ctx, from, c.Denom)-c.Amount)
		nb, ok := types.AddUint64(Balance(ctx, to, c.Denom), c.Amount)
		if !ok {
			// NB: unreachable while supply fits uint64 (a balance never exceeds supply).
			panic("bank: balance overflow")
		}
		setUint(ctx, balanceKey(to, c.Denom), nb)
	}
	return nil
}

// Mint creates coins in an account and raises supply. It refuses a supply overflow.
func Mint(ctx *types.Context, to types.Address, c types.Coin) error {
	sk := append(append([]byte{}, supplyPrefix...), c.Denom...)
	ns, ok := types.AddUint64(getUint(ctx, sk), c.Amount)
	if !ok {
		return types.Wrapf(types.ErrInvalidMsg, "minting %s overflows the supply of %s", c, c.Denom)
	}
	setUint(ctx, sk, ns)
	setUint(ctx, balanceKey(to, c.Denom), Balance(ctx, to, c.Denom)+c.Amount)
	return nil
}

// Burn destroys coins held by an account and lowers supply.
func Burn(ctx *types.Context, from types.Address, c types.Coin) error {
	bal := Balance(ctx, from, c.Denom)
	if bal < c.Amount {
		return types.Wrapf(types.ErrInsufficientFunds, "burn %s from %s: balance %d", c, from, bal)
	}
	setUint(ctx, balanceKey(from, c.Denom), bal-c.Amount)
	sk := append(append([]byte{}, supplyPrefix...), c.Denom...)
	setUint(ctx, sk, getUint(ctx, sk)-c.Amount)
	return nil
}

// CheckInvariants returns an error if any denom's balances do not add up to its supply.
func CheckInvariants(ctx *types.Context) error {
	if a := Audit(ctx, nil); !a.Conserved {
		return errors.New(a.Problems[0])
	}
	return nil
}

// DistributeFees pays the fees collected in this block: FeeProposerBps to proposer
// (if known), the rest to the community pool.
func DistributeFees(ctx *types.Context, proposer *types.Address) {
	var p Params
	params.Get(ctx, ModuleName, &p)
	for _, c := range Balances(ctx, FeeCollector) {
		toProposer := uint64(0)
		if proposer != nil {
			toProposer = types.MulDiv(c.Amount, uint64(p.FeeProposerBps), 10000)
		}
		if toProposer > 0 {
			if err := Send(ctx, FeeCollector, *proposer, types.NewCoin(c.Denom, toProposer)); err != nil {
				panic(err)
			}
		}
		if err := Send(ctx, FeeCollector, CommunityPool, types.NewCoin(c.Denom, c.Amount-toProposer)); err != nil {
			panic(err)
		}
		ctx.Emit("fees", "amount", c.String(), "to_proposer", fmt.Sprint(toProposer))
	}
}

// MsgSend transfers coins.
type MsgSend struct {
	From   types.Address `json:"from"`
	To     types.Address `json:"to"`
	Amount types.Coins   `json:"amount"`
}

// Type implements types.Msg.
func (m *MsgSend) Type() types.MsgType { return types.MsgTypeBankSend }

// Signer implements types.Msg.
func (m *MsgSend) Signer() types.Address { return m.From }

// ValidateBasic implements types.Msg.
func (m *MsgSend) ValidateBasic() error {
	if m.To.IsZero() {
		return types.InvalidField("to", "", "must be a non-empty address")
	}
	if len(m.Amount) == 0 {
		return types.InvalidField("amount", "[]", "must hold at least one coin")
	}
	if err := m.Amount.Validate(); err != nil {
		return types.InvalidField("amount", m.Amount, err.Error())
	}
	return nil
}

// MarshalTo implements types.Msg.
func (m *MsgSend) MarshalTo(w *codec.Writer) {
	w.Fixed(m.From[:])
	w.Fixed(m.To[:])
	MarshalCoins(w, m.Amount)
}

// MarshalCoins writes a coin list.
func MarshalCoins(w *codec.Writer, cs types.Coins) {
	w.Uvarint(uint64(len(cs)))
	for _, c := range cs {
		w.String(c.Denom)
		w.Uvarint(c.Amount)
	}
}

// UnmarshalCoins reads a coin list of at most 16 coins.
func UnmarshalCoins(r *codec.Reader) types.Coins {
	n := r.Uvarint()
	if n > 16 {
		r.Fail("%d coins, limit 16", n)
		return nil
	}
	var cs types.Coins
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		cs = append(cs, types.Coin{Denom: r.String(128), Amount: r.Uvarint()})
	}
	return cs
}

// ReadAddress reads a fixed 20-byte address.
func ReadAddress(r *codec.Reader) types.Address {
	var a types.Address
	copy(a[:], r.Fixed(types.AddressLen))
	return a
}

// DecodeMsgSend decodes a MsgSend body.
func DecodeMsgSend(r *codec.Reader) types.Msg {
	m := &MsgSend{From: ReadAddress(r), To: ReadAddress(r)}
	m.Amount = UnmarshalCoins(r)
	return m
}

// HandleSend executes a MsgSend. It creates the recipient's account if needed through
// the onReceive hook (auth registers it).
//
// A send to a module account whose module keeps records of what it holds (escrow, bid
// deposits, bonded stake...) is refused: money reaches those only through their
// module's messages, or the books would no longer balance.
func HandleSend(ctx *types.Context, m *MsgSend) error {
	if name, ok := blockedRecipient(ctx.Hooks, m.To); ok {
		return types.Wrapf(types.ErrUnauthorized, "to: %s is the %s module account; it takes money only through its module's messages", m.To, name)
	}
	if err := Send(ctx, m.From, m.To, m.Amount...); err != nil {
		return err
	}
	ctx.Emit("transfer", "sender", m.From.String(), "recipient", m.To.String(), "amount", m.Amount.String())
	return nil
}

// Genesis is the bank's genesis state.
type Genesis struct {
	Balances []GenesisBalance `json:"balances"`
}

// GenesisBalance funds one account at genesis.
type GenesisBalance struct {
	Address types.Address `json:"address"`
	Coins   types.Coins   `json:"coins"`
}

// InitGenesis mints the genesis balances.
func InitGenesis(ctx *types.Context, g Genesis) error {
	seen := map[types.Address]bool{}
	for i, b := range g.Balances {
		if seen[b.Address] {
			return fmt.Errorf("bank.balances[%d]: duplicate address %s", i, b.Address)
		}
		seen[b.Address] = true
		if err := b.Coins.Validate(); err != nil {
			return fmt.Errorf("bank.balances[%d].coins: %w", i, err)
		}
		for _, c := range b.Coins {
			if err := Mint(ctx, b.Address, c); err != nil {
				return fmt.Errorf("bank.balances[%d]: %w", i, err)
			}
		}
	}
	return nil
}

// blockedTable is bank's hooks table: the module accounts MsgSend may not credit.
const blockedTable = "bank/blocked_recipients"

// BlockRecipient makes MsgSend refuse to credit addr, the module account name, from
// now on. The app calls it for every module account whose module keeps records of
// its balance, while it wires its hooks.
func BlockRecipient(h *types.Hooks, addr types.Address, name string) {
	h.MustBeOpen("blocked recipient " + name)
	t := h.Table(blockedTable, func() any { return map[types.Address]string{} }).(map[types.Address]string)
	t[addr] = name
}

func blockedRecipient(h *types.Hooks, addr types.Address) (string, bool) {
	t, ok := h.Lookup(blockedTable)
	if !ok {
		return "", false
	}
	name, ok := t.(map[types.Address]string)[addr]
	return name, ok
}
