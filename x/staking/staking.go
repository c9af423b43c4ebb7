// Package staking bonds stake: validators (with delegations) and the generic bonds that
// providers and verifiers post. It returns validator power updates to CometBFT, queues
// unbonding stake for an unbonding period, and slashes and jails for double-signing
// (Misbehavior evidence) and downtime (votes absent from DecidedLastCommit).
//
// Bonded and unbonding stake is held by the BondedPool module account, which MUST hold
// exactly the validators' tokens, the generic bonds and the unbonding entries
// (CheckInvariants). Slashed validator stake is burned, so total supply falls by exactly
// the slashed amount. Slashed provider and verifier bonds (SlashBond) go to the
// community pool instead, supply unchanged: the verify module pays reporters and
// compensates tenants from there.
//
// A generic bond can be locked: modules register UnbondGuards per purpose (the market
// locks a provider's bond while it has an active lease or one in its dispute window),
// and Unbond asks them before any stake leaves the bond.
package staking

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
)

// ModuleName is staking's name in params and state.
const ModuleName = "staking"

// BondedPool holds all bonded and unbonding stake.
var BondedPool = types.ModuleAddress("bonded_pool")

var (
	valPrefix       = []byte("staking/val/")
	consPrefix      = []byte("staking/cons/")
	delPrefix       = []byte("staking/del/")
	bondPrefix      = []byte("staking/bond/")
	ubdPrefix       = []byte("staking/ubd/")
	ubdSeqKey       = []byte("staking/ubdseq")
	ubdOwnerPrefix  = []byte("staking/ubdo/") // purpose/owner|completion|seq → {}: an owner's unbondings
	lastPowerPrefix = []byte("staking/lastpower/")
	signPrefix      = []byte("staking/sign/")
)

// Params are staking's on-chain parameters. Periods are in blocks, not wall time:
// block heights are what every validator agrees on.
type Params struct {
	BondDenom          string `json:"bond_denom"`
	PowerReduction     uint64 `json:"power_reduction,string"` // stake units per unit of voting power
	UnbondingBlocks    int64  `json:"unbonding_blocks,string"`
	MaxValidators      uint32 `json:"max_validators"`
	MinSelfBond        uint64 `json:"min_self_bond,string"`
	SignedBlocksWindow int64  `json:"signed_blocks_window,string"`
	MinSignedBps       uint32 `json:"min_signed_bps"` // of the window
	DowntimeJailBlocks int64  `json:"downtime_jail_blocks,string"`
	SlashDowntimeBps   uint32 `json:"slash_downtime_bps"`
	SlashDoubleSignBps uint32 `json:"slash_double_sign_bps"`
}

// DefaultParams: one day of 1-second blocks to unbond; jailed after missing more than
// half of the last 100 blocks; 1% slashed for downtime, 5% and tombstoned for
// double-signing (Cosmos Hub's rates).
func DefaultParams() Params {
	return Params{
		BondDenom: types.NativeDenom, PowerReduction: 1_000_000, UnbondingBlocks: 86_400,
		MaxValidators: 100, MinSelfBond: 1_000_000, SignedBlocksWindow: 100, MinSignedBps: 5000,
		DowntimeJailBlocks: 600, SlashDowntimeBps: 100, SlashDoubleSignBps: 500,
	}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case types.ValidateDenom(p.BondDenom) != nil:
		return fmt.Errorf("bond_denom: %v", types.ValidateDenom(p.BondDenom))
	case p.PowerReduction == 0:
		return fmt.Errorf("power_reduction: must be > 0")
	case p.UnbondingBlocks < 1:
		return fmt.Errorf("unbonding_blocks: must be >= 1 (got %d)", p.UnbondingBlocks)
	case p.MaxValidators < 1 || p.MaxValidators > 1000:
		return fmt.Errorf("max_validators: must be 1 to 1000 (got %d)", p.MaxValidators)
	case p.SignedBlocksWindow < 2:
		return fmt.Errorf("signed_blocks_window: must be >= 2 (got %d)", p.SignedBlocksWindow)
	case p.MinSignedBps > 10000 || p.SlashDowntimeBps > 10000 || p.SlashDoubleSignBps > 10000:
		return fmt.Errorf("basis-point parameters must be <= 10000")
	case p.DowntimeJailBlocks < 0:
		return fmt.Errorf("downtime_jail_blocks: must be >= 0")
	}
	return nil
}

// Validator is a bonded validator.
type Validator struct {
	Operator      types.Address `json:"operator"`
	ConsPubKey    []byte        `json:"cons_pubkey"` // ed25519, 32 bytes
	ConsAddress   string        `json:"cons_address"`
	Moniker       string        `json:"moniker"`
	Tokens        uint64        `json:"tokens,string"`
	Jailed        bool          `json:"jailed"`
	JailedUntil   int64         `json:"jailed_until,string"`
	Tombstoned    bool          `json:"tombstoned"`
	CreatedHeight int64         `json:"created_height,string"`
	UpdatedHeight int64         `json:"updated_height,string"`
}

// ConsAddr returns the CometBFT address of the validator's consensus key.
func ConsAddr(pub []byte) []byte {
	a := types.AddressFromPubKey(pub)
	return a[:]
}

func valKey(op types.Address) []byte { return append(append([]byte{}, valPrefix...), op[:]...) }

// GetValidator returns the validator operated by op.
func GetValidator(ctx *types.Context, op types.Address) (Validator, bool) {
	v, ok := ctx.Store.Get(valKey(op))
	if !ok {
		return Validator{}, false
	}
	var val Validator
	if err := json.Unmarshal(v, &val); err != nil {
		panic(fmt.Sprintf("staking: corrupt validator %s: %v", op, err))
	}
	return val, true
}

func setValidator(ctx *types.Context, v Validator) {
	v.UpdatedHeight = ctx.Height
	b, _ := json.Marshal(v)
	ctx.Store.Set(valKey(v.Operator), b)
}

// ValidatorByConsAddr finds a validator by its consensus address.
func ValidatorByConsAddr(ctx *types.Context, cons []byte) (Validator, bool) {
	op, ok := ctx.Store.Get(append(append([]byte{}, consPrefix...), cons...))
	if !ok {
		return Validator{}, false
	}
	var a types.Address
	copy(a[:], op)
	return GetValidator(ctx, a)
}

// Validators returns all validators sorted by operator address.
func Validators(ctx *types.Context) []Validator {
	var out []Validator
	ctx.Store.Iterate(valPrefix, func(_, v []byte) bool {
		var val Validator
		if err := json.Unmarshal(v, &val); err != nil {
			panic(err)
		}
		out = append(out, val)
		return true
	})
	return out
}

func u64(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func b64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func delKey(val, del types.Address) []byte {
	k := append(append([]byte{}, delPrefix...), val[:]...)
	return append(k, del[:]...)
}

// Delegation returns how much del has bonded to validator val.
func Delegation(ctx *types.Context, val, del types.Address) uint64 {
	v, _ := ctx.Store.Get(delKey(val, del))
	return u64(v)
}

func setDelegation(ctx *types.Context, val, del types.Address, amt uint64) {
	if amt == 0 {
		ctx.Store.Delete(delKey(val, del))
		return
	}
	ctx.Store.Set(delKey(val, del), b64(amt))
}

// DelegationEntry is one delegation, for queries.
type DelegationEntry struct {
	Validator types.Address `json:"validator"`
	Delegator types.Address `json:"delegator"`
	Amount    uint64        `json:"amount,string"`
}

// Delegations returns all delegations, sorted by validator then delegator.
func Delegations(ctx *types.Context) []DelegationEntry {
	var out []DelegationEntry
	ctx.Store.Iterate(delPrefix, func(k, v []byte) bool {
		var e DelegationEntry
		copy(e.Validator[:], k[len(delPrefix):])
		copy(e.Delegator[:], k[len(delPrefix)+types.AddressLen:])
		e.Amount = u64(v)
		out = append(out, e)
		return true
	})
	return out
}

// CreateValidator registers a validator bonding amount from the operator.
func CreateValidator(ctx *types.Context, op types.Address, pub []byte, moniker string, amount uint64) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	if _, exists := GetValidator(ctx, op); exists {
		return types.Wrapf(types.ErrAlreadyExists, "validator %s", op)
	}
	cons := ConsAddr(pub)
	if _, taken := ctx.Store.Get(append(append([]byte{}, consPrefix...), cons...)); taken {
		return types.Wrapf(types.ErrAlreadyExists, "consensus key %X is used by another validator", cons)
	}
	if amount < p.MinSelfBond {
		return types.Wrapf(types.ErrInvalidMsg, "self-bond %d%s below the minimum %d", amount, p.BondDenom, p.MinSelfBond)
	}
	if err := bank.Send(ctx, op, BondedPool, types.NewCoin(p.BondDenom, amount)); err != nil {
		return err
	}
	v := Validator{Operator: op, ConsPubKey: bytes.Clone(pub), ConsAddress: fmt.Sprintf("%X", cons),
		Moniker: moniker, Tokens: amount, CreatedHeight: ctx.Height}
	setValidator(ctx, v)
	ctx.Store.Set(append(append([]byte{}, consPrefix...), cons...), op[:])
	setDelegation(ctx, op, op, amount)
	ctx.Emit("create_validator", "operator", op.String(), "cons_address", v.ConsAddress, "amount", fmt.Sprint(amount))
	return nil
}

// Delegate bonds amount from del to validator val.
func Delegate(ctx *types.Context, val, del types.Address, amount uint64) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	v, ok := GetValidator(ctx, val)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "validator %s", val)
	}
	if v.Tombstoned {
		return types.Wrapf(types.ErrInvalidMsg, "validator %s is tombstoned for double-signing", val)
	}
	if err := bank.Send(ctx, del, BondedPool, types.NewCoin(p.BondDenom, amount)); err != nil {
		return err
	}
	v.Tokens += amount
	setValidator(ctx, v)
	setDelegation(ctx, val, del, Delegation(ctx, val, del)+amount)
	ctx.Emit("delegate", "validator", val.String(), "delegator", del.String(), "amount", fmt.Sprint(amount))
	return nil
}

// Undelegate starts unbonding amount of del's delegation to val.
func Undelegate(ctx *types.Context, val, del types.Address, amount uint64) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	v, ok := GetValidator(ctx, val)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "validator %s", val)
	}
	have := Delegation(ctx, val, del)
	if have < amount {
		return types.Wrapf(types.ErrInsufficientFunds, "%s has %d bonded to %s, cannot unbond %d", del, have, val, amount)
	}
	setDelegation(ctx, val, del, have-amount)
	v.Tokens -= amount
	setValidator(ctx, v)
	queueUnbonding(ctx, p, del, "validator:"+val.String(), amount)
	return nil
}

// Unjail lets a jailed validator back once its jail time is over.
func Unjail(ctx *types.Context, op types.Address) error {
	v, ok := GetValidator(ctx, op)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "validator %s", op)
	}
	switch {
	case !v.Jailed:
		return types.Wrapf(types.ErrInvalidMsg, "validator %s is not jailed", op)
	case v.Tombstoned:
		return types.Wrapf(types.ErrUnauthorized, "validator %s is tombstoned for double-signing and can never be unjailed", op)
	case ctx.Height < v.JailedUntil:
		return types.Wrapf(types.ErrUnauthorized, "validator %s is jailed until height %d (now %d)", op, v.JailedUntil, ctx.Height)
	}
	v.Jailed = false
	setValidator(ctx, v)
	ctx.Emit("unjail", "operator", op.String())
	return nil
}

// Unbonding is stake waiting out the unbonding period.
type Unbonding struct {
	Owner      types.Address `json:"owner"`
	Purpose    string        `json:"purpose"`
	Amount     uint64        `json:"amount,string"`
	Denom      string        `json:"denom"`
	Completion int64         `json:"completion_height,string"`
	// CreationHeight is when the stake left its bond: a fault proven at or after this
	// height can no longer reach it, one committed before can (SlashBond).
	CreationHeight int64 `json:"creation_height,string"`
	// Slashed is what SlashBond took from this entry.
	Slashed uint64 `json:"slashed,string,omitempty"`
}

func ubdKey(completion int64, seq uint64) []byte {
	k := append(append([]byte{}, ubdPrefix...), b64(uint64(completion))...)
	return append(k, b64(seq)...)
}

func ubdOwnerPrefixOf(purpose string, owner types.Address) []byte {
	k := append(append([]byte{}, ubdOwnerPrefix...), purpose...)
	k = append(k, '/')
	return append(k, owner[:]...)
}

func queueUnbonding(ctx *types.Context, p Params, owner types.Address, purpose string, amount uint64) {
	seqb, _ := ctx.Store.Get(ubdSeqKey)
	seq := u64(seqb)
	ctx.Store.Set(ubdSeqKey, b64(seq+1))
	u := Unbonding{Owner: owner, Purpose: purpose, Amount: amount, Denom: p.BondDenom, Completion: ctx.Height + p.UnbondingBlocks, CreationHeight: ctx.Height}
	setUnbonding(ctx, ubdKey(u.Completion, seq), u)
	ctx.Store.Set(append(ubdOwnerPrefixOf(purpose, owner), ubdKey(u.Completion, seq)[len(ubdPrefix):]...), []byte{})
	ctx.Emit("unbond", "owner", owner.String(), "purpose", purpose, "amount", fmt.Sprint(amount), "completion_height", fmt.Sprint(u.Completion))
}

func setUnbonding(ctx *types.Context, k []byte, u Unbonding) {
	b, _ := json.Marshal(u)
	ctx.Store.Set(k, b)
}

func getUnbonding(ctx *types.Context, k []byte) (Unbonding, bool) {
	v, ok := ctx.Store.Get(k)
	if !ok {
		return Unbonding{}, false
	}
	var u Unbonding
	if err := json.Unmarshal(v, &u); err != nil {
		panic(fmt.Sprintf("staking: corrupt unbonding at %q: %v", k, err))
	}
	return u, true
}

// deleteUnbonding removes the entry at queue key k and its owner index.
func deleteUnbonding(ctx *types.Context, k []byte, u Unbonding) {
	ctx.Store.Delete(k)
	ctx.Store.Delete(append(ubdOwnerPrefixOf(u.Purpose, u.Owner), k[len(ubdPrefix):]...))
}

// Unbondings returns the unbonding queue in completion order.
func Unbondings(ctx *types.Context) []Unbonding {
	var out []Unbonding
	ctx.Store.Iterate(ubdPrefix, func(_, v []byte) bool {
		var u Unbonding
		json.Unmarshal(v, &u)
		out = append(out, u)
		return true
	})
	return out
}

// matureUnbondings pays out every unbonding entry due at or before this height.
func matureUnbondings(ctx *types.Context) {
	var due [][]byte
	ctx.Store.Iterate(ubdPrefix, func(k, v []byte) bool {
		if int64(binary.BigEndian.Uint64(k[len(ubdPrefix):])) > ctx.Height {
			return false
		}
		due = append(due, bytes.Clone(k))
		return true
	})
	for _, k := range due {
		u, _ := getUnbonding(ctx, k)
		if err := bank.Send(ctx, BondedPool, u.Owner, types.NewCoin(u.Denom, u.Amount)); err != nil {
			panic(fmt.Sprintf("staking: bonded pool cannot pay matured unbonding: %v", err))
		}
		auth.Ensure(ctx, u.Owner)
		deleteUnbonding(ctx, k, u)
		ctx.Emit("unbond_complete", "owner", u.Owner.String(), "purpose", u.Purpose, "amount", fmt.Sprint(u.Amount))
	}
}

// --- generic bonds (providers, verifiers) ---

func bondKey(purpose string, owner types.Address) []byte {
	k := append(append([]byte{}, bondPrefix...), purpose...)
	k = append(k, '/')
	return append(k, owner[:]...)
}

// Bonded returns the stake owner has bonded for purpose (e.g. "provider").
func Bonded(ctx *types.Context, purpose string, owner types.Address) uint64 {
	v, _ := ctx.Store.Get(bondKey(purpose, owner))
	return u64(v)
}

// Bond moves amount of the bond denom from owner into the bonded pool for purpose.
func Bond(ctx *types.Context, purpose string, owner types.Address, amount uint64) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	if err := bank.Send(ctx, owner, BondedPool, types.NewCoin(p.BondDenom, amount)); err != nil {
		return err
	}
	setBond(ctx, purpose, owner, Bonded(ctx, purpose, owner)+amount)
	ctx.Emit("bond", "owner", owner.String(), "purpose", purpose, "amount", fmt.Sprint(amount))
	return nil
}

// Unbond starts unbonding amount of owner's bond for purpose; it is paid back after the
// unbonding period. It first asks the purpose's UnbondGuards, and refuses with the
// first guard's error (ErrBondLocked) if one holds the bond; it changes nothing then.
func Unbond(ctx *types.Context, purpose string, owner types.Address, amount uint64) error {
	var p Params
	params.Get(ctx, ModuleName, &p)
	have := Bonded(ctx, purpose, owner)
	if have < amount {
		return types.Wrapf(types.ErrInsufficientFunds, "%s has %d bonded for %s, cannot unbond %d", owner, have, purpose, amount)
	}
	if err := checkGuards(ctx, purpose, owner, have-amount); err != nil {
		return err
	}
	setBond(ctx, purpose, owner, have-amount)
	queueUnbonding(ctx, p, owner, purpose, amount)
	return nil
}

// Held returns the stake the records say the BondedPool holds, per denom: every
// validator's tokens, every generic bond and every unbonding entry. O(validators +
// bonds + unbondings).
func Held(ctx *types.Context) types.Coins {
	var p Params
	params.Get(ctx, ModuleName, &p)
	sums := map[string]uint64{}
	add := func(denom string, amt uint64) {
		s, ok := types.AddUint64(sums[denom], amt)
		if !ok {
			// NB: the stake came out of the supply, which fits in 64 bits.
			panic(fmt.Sprintf("staking: stake of %s overflows: corrupt records", denom))
		}
		sums[denom] = s
	}
	for _, v := range Validators(ctx) {
		add(p.BondDenom, v.Tokens)
	}
	ctx.Store.Iterate(bondPrefix, func(_, v []byte) bool {
		add(p.BondDenom, u64(v))
		return true
	})
	for _, u := range Unbondings(ctx) {
		add(u.Denom, u.Amount)
	}
	return types.SortedCoins(sums)
}

// --- slashing ---

// slashValidator burns bps of the validator's tokens, taking from each delegation in
// proportion, and jails it.
func slashValidator(ctx *types.Context, p Params, v Validator, bps uint32, reason string) {
	var total uint64
	type d struct {
		del types.Address
		amt uint64
	}
	var dels []d
	prefix := append(append([]byte{}, delPrefix...), v.Operator[:]...)
	ctx.Store.Iterate(prefix, func(k, val []byte) bool {
		var a types.Address
		copy(a[:], k[len(prefix):])
		dels = append(dels, d{a, u64(val)})
		return true
	})
	for _, e := range dels {
		cut := types.MulDiv(e.amt, uint64(bps), 10000)
		setDelegation(ctx, v.Operator, e.del, e.amt-cut)
		total += cut
	}
	v.Tokens -= total
	if total > 0 {
		if err := bank.Burn(ctx, BondedPool, types.NewCoin(p.BondDenom, total)); err != nil {
			panic(err)
		}
	}
	v.Jailed = true
	setValidator(ctx, v)
	ctx.Emit("slash", "operator", v.Operator.String(), "reason", reason, "burned", fmt.Sprint(total))
}

// HandleDoubleSign slashes and tombstones the validator with consensus address cons.
func HandleDoubleSign(ctx *types.Context, cons []byte) {
	var p Params
	params.Get(ctx, ModuleName, &p)
	v, ok := ValidatorByConsAddr(ctx, cons)
	if !ok || v.Tombstoned {
		return // already punished, or unknown (it left the set and unbonded)
	}
	v.Tombstoned = true
	v.JailedUntil = 1<<62 - 1
	slashValidator(ctx, p, v, p.SlashDoubleSignBps, "double_sign")
}

// signingInfo tracks a validator's missed blocks over the sliding window.
type signingInfo struct {
	Counter int64  `json:"counter"`
	Missed  int64  `json:"missed"`
	Bitmap  []byte `json:"bitmap"`
}

// HandleVote records whether the validator with consensus address cons signed the
// previous block, and jails it for downtime when it missed too many in the window.
func HandleVote(ctx *types.Context, cons []byte, signed bool) {
	var p Params
	params.Get(ctx, ModuleName, &p)
	v, ok := ValidatorByConsAddr(ctx, cons)
	if !ok || v.Jailed {
		return
	}
	k := append(append([]byte{}, signPrefix...), cons...)
	var si signingInfo
	if b, ok := ctx.Store.Get(k); ok {
		json.Unmarshal(b, &si)
	}
	if int64(len(si.Bitmap)) != (p.SignedBlocksWindow+7)/8 {
		si = signingInfo{Bitmap: make([]byte, (p.SignedBlocksWindow+7)/8)}
	}
	idx := si.Counter % p.SignedBlocksWindow
	was := si.Bitmap[idx/8]&(1<<(idx%8)) != 0
	if !signed && !was {
		si.Bitmap[idx/8] |= 1 << (idx % 8)
		si.Missed++
	} else if signed && was {
		si.Bitmap[idx/8] &^= 1 << (idx % 8)
		si.Missed--
	}
	si.Counter++
	maxMissed := p.SignedBlocksWindow - int64(types.MulDiv(uint64(p.SignedBlocksWindow), uint64(p.MinSignedBps), 10000))
	if si.Counter >= p.SignedBlocksWindow && si.Missed > maxMissed {
		v.JailedUntil = ctx.Height + p.DowntimeJailBlocks
		slashValidator(ctx, p, v, p.SlashDowntimeBps, "downtime")
		si = signingInfo{Bitmap: make([]byte, len(si.Bitmap))}
	}
	b, _ := json.Marshal(si)
	ctx.Store.Set(k, b)
}

// Update is a voting power change for CometBFT.
type Update struct {
	PubKey []byte
	Power  int64
}

// EndBlock pays matured unbondings and returns the validator power changes since the
// last block: the top MaxValidators unjailed validators by power (ties by operator).
func EndBlock(ctx *types.Context) []Update {
	matureUnbondings(ctx)
	var p Params
	params.Get(ctx, ModuleName, &p)
	vals := Validators(ctx)
	type cand struct {
		v     Validator
		power int64
	}
	var cands []cand
	for _, v := range vals {
		pw := int64(v.Tokens / p.PowerReduction)
		if v.Jailed || pw == 0 {
			continue
		}
		cands = append(cands, cand{v, pw})
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].power > cands[j].power })
	if len(cands) > int(p.MaxValidators) {
		cands = cands[:p.MaxValidators]
	}
	want := map[string]cand{}
	for _, c := range cands {
		want[string(ConsAddr(c.v.ConsPubKey))] = c
	}
	var updates []Update
	for _, v := range vals {
		cons := ConsAddr(v.ConsPubKey)
		lk := append(append([]byte{}, lastPowerPrefix...), cons...)
		lb, _ := ctx.Store.Get(lk)
		last := int64(u64(lb))
		now := want[string(cons)].power
		if last == now {
			continue
		}
		updates = append(updates, Update{PubKey: v.ConsPubKey, Power: now})
		if now == 0 {
			ctx.Store.Delete(lk)
		} else {
			ctx.Store.Set(lk, b64(uint64(now)))
		}
	}
	if len(updates) > 0 {
		total := int64(0)
		ctx.Store.Iterate(lastPowerPrefix, func(_, v []byte) bool { total += int64(u64(v)); return true })
		if total == 0 {
			// NB: CometBFT halts on an empty validator set; a chain whose every validator
			// is jailed cannot go on, and must say why rather than hang.
			panic("staking: every validator is jailed or unbonded; the chain cannot continue")
		}
	}
	return updates
}

// CurrentSet returns the validator set the last EndBlock left CometBFT with: every
// validator with a recorded power, in consensus-address order. A chain started from
// an exported state starts with it.
func CurrentSet(ctx *types.Context) []Update {
	type rec struct {
		cons  []byte
		power int64
	}
	var recs []rec
	ctx.Store.Iterate(lastPowerPrefix, func(k, v []byte) bool {
		recs = append(recs, rec{append([]byte(nil), k[len(lastPowerPrefix):]...), int64(u64(v))})
		return true
	})
	out := make([]Update, 0, len(recs))
	for _, r := range recs {
		v, ok := ValidatorByConsAddr(ctx, r.cons)
		if !ok {
			panic(fmt.Sprintf("staking: power recorded for %X, which is no validator", r.cons))
		}
		out = append(out, Update{PubKey: v.ConsPubKey, Power: r.power})
	}
	return out
}

// OperatorOfProposer returns the operator account of the proposer, if known.
func OperatorOfProposer(ctx *types.Context) *types.Address {
	if ctx.Proposer == nil {
		return nil
	}
	v, ok := ValidatorByConsAddr(ctx, ctx.Proposer)
	if !ok {
		return nil
	}
	return &v.Operator
}

// Genesis is staking's genesis state.
type Genesis struct {
	Validators []GenesisValidator `json:"validators"`
}

// GenesisValidator is a validator bonded at genesis; its tokens are minted into the
// bonded pool as the operator's self-delegation.
type GenesisValidator struct {
	Operator   types.Address `json:"operator"`
	ConsPubKey []byte        `json:"cons_pubkey"`
	Moniker    string        `json:"moniker"`
	Tokens     uint64        `json:"tokens,string"`
}

// InitGenesis creates the genesis validators and returns the initial validator set.
func InitGenesis(ctx *types.Context, g Genesis) ([]Update, error) {
	var p Params
	params.Get(ctx, ModuleName, &p)
	for i, gv := range g.Validators {
		if len(gv.ConsPubKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("staking.validators[%d].cons_pubkey: must be a 32-byte ed25519 key (got %d bytes)", i, len(gv.ConsPubKey))
		}
		if err := bank.Mint(ctx, gv.Operator, types.NewCoin(p.BondDenom, gv.Tokens)); err != nil {
			return nil, fmt.Errorf("staking.validators[%d]: %w", i, err)
		}
		auth.Ensure(ctx, gv.Operator)
		if err := CreateValidator(ctx, gv.Operator, gv.ConsPubKey, gv.Moniker, gv.Tokens); err != nil {
			return nil, fmt.Errorf("staking.validators[%d]: %w", i, err)
		}
	}
	ups := EndBlock(ctx)
	if len(ups) == 0 {
		return nil, fmt.Errorf("staking.validators: genesis has no validator with voting power")
	}
	return ups, nil
}

func getParams(ctx *types.Context, p *Params) { params.Get(ctx, ModuleName, p) }
