// Package infer runs AI inference on chain, Phala style: a tenant posts a request
// (model, input, fee); providers that serve the model answer with the output and its
// hash; the answer is accepted when k independent providers agree on it, or at once
// when it comes from a provider with an active TEE attestation; the result is stored
// and paid from the fee.
//
// Contracts:
//
//   - A model is registered once with its hash (the SHA-256 of its weights); a provider
//     serves it by declaring that same hash. Only registered providers serve.
//   - MsgInferRequest escrows max_fee in the module account until the request is
//     resolved or expires. The module account always holds exactly the fees of open
//     requests (CheckInvariants).
//   - MsgInferResult MUST carry output_hash = SHA-256(output), from a provider serving
//     the request's model that has not answered it yet, before the deadline.
//   - A request resolves when agree_k answers from distinct providers carry the same
//     output hash, or when one answer comes from a provider whose TEE attestation is
//     active. The agreeing providers (or the TEE provider) split max_fee equally; the
//     remainder of the split, if any, goes back to the requester. Providers whose
//     answers disagree are outvoted and paid nothing.
//   - A request still open at the end of its deadline height expires: max_fee goes back
//     to the requester in full.
package infer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// ModuleName is the module's name in params, state and queries.
const ModuleName = "infer"

// Account is the module account holding open requests' fees.
var Account = types.ModuleAddress(ModuleName)

// Limits.
const (
	MaxInputBytes  = 8 << 10
	MaxOutputBytes = 8 << 10
	maxModelID     = 64
)

var modelIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Params are the module's on-chain parameters.
type Params struct {
	// Denom is the denomination of fees.
	Denom string `json:"denom"`
	// AgreeK is how many distinct providers must return the same output for a request
	// to resolve without TEE evidence.
	AgreeK uint32 `json:"agree_k"`
	// DeadlineBlocks is how long a request stays open: it expires, refunded, at the end
	// of height request + DeadlineBlocks.
	DeadlineBlocks int64 `json:"deadline_blocks,string"`
	// MinFee is the least max_fee a request may offer.
	MinFee uint64 `json:"min_fee,string"`
}

// DefaultParams: two matching answers (one more than a single cheater can fake), ten
// blocks to answer (a 1-second block each), a fee of at least 1 ukiln.
func DefaultParams() Params {
	return Params{Denom: types.NativeDenom, AgreeK: 2, DeadlineBlocks: 10, MinFee: 1}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case types.ValidateDenom(p.Denom) != nil:
		return fmt.Errorf("denom: %v", types.ValidateDenom(p.Denom))
	case p.AgreeK < 1 || p.AgreeK > 16:
		return fmt.Errorf("agree_k: must be 1 to 16 (got %d)", p.AgreeK)
	case p.DeadlineBlocks < 1 || p.DeadlineBlocks > 100_000:
		return fmt.Errorf("deadline_blocks: must be 1 to 100000 (got %d)", p.DeadlineBlocks)
	}
	return nil
}

// GetParams returns the module's parameters.
func GetParams(ctx *types.Context) Params {
	var p Params
	params.Get(ctx, ModuleName, &p)
	return p
}

// Model is a registered model.
type Model struct {
	ID            string        `json:"id"`
	Hash          string        `json:"hash"` // SHA-256 of the weights, hex
	Owner         types.Address `json:"owner"`
	CreatedHeight int64         `json:"created_height,string"`
}

// Request states.
const (
	StateOpen     = "open"
	StateResolved = "resolved"
	StateExpired  = "expired"
)

// Answer is one provider's answer to a request.
type Answer struct {
	Provider   types.Address `json:"provider"`
	OutputHash string        `json:"output_hash"`
	// Output is kept until the request resolves; then only the agreed output stays
	// (on the request).
	Output []byte `json:"output,omitempty"`
	// TEE is true when the provider had an active TEE attestation when it answered.
	TEE    bool  `json:"tee"`
	Height int64 `json:"height,string"`
	// Outcome is "agreed" or "outvoted" once the request resolves.
	Outcome string `json:"outcome,omitempty"`
	Paid    uint64 `json:"paid,string,omitempty"`
}

// Request is an inference request and, once resolved, its result.
type Request struct {
	ID        uint64        `json:"id,string"`
	Requester types.Address `json:"requester"`
	Model     string        `json:"model"`
	ModelHash string        `json:"model_hash"`
	Input     []byte        `json:"input"`
	MaxFee    uint64        `json:"max_fee,string"`
	Denom     string        `json:"denom"`
	State     string        `json:"state"`
	// Deadline is the height at whose end an open request expires.
	Deadline int64    `json:"deadline,string"`
	Answers  []Answer `json:"answers,omitempty"`
	// Output and OutputHash are the accepted result; Via says how it was accepted
	// ("k_agree" or "tee").
	Output         []byte `json:"output,omitempty"`
	OutputHash     string `json:"output_hash,omitempty"`
	Via            string `json:"via,omitempty"`
	Refunded       uint64 `json:"refunded,string,omitempty"`
	ResolvedHeight int64  `json:"resolved_height,string,omitempty"`
	CreatedHeight  int64  `json:"created_height,string"`
	UpdatedHeight  int64  `json:"updated_height,string"`
}

var (
	modelPrefix   = []byte("infer/model/")
	servePrefix   = []byte("infer/serve/")
	requestPrefix = []byte("infer/req/")
	openPrefix    = []byte("infer/open/")
	seqKey        = []byte("infer/seq")
)

func u64(prefix []byte, vs ...uint64) []byte {
	k := append([]byte{}, prefix...)
	for _, v := range vs {
		k = append(k, []byte(fmt.Sprintf("%020d/", v))...)
	}
	return k
}

func getJSON(ctx *types.Context, k []byte, out any) bool {
	v, ok := ctx.Store.Get(k)
	if !ok {
		return false
	}
	if err := json.Unmarshal(v, out); err != nil {
		panic(fmt.Sprintf("infer: corrupt record %q: %v", k, err))
	}
	return true
}

func setJSON(ctx *types.Context, k []byte, v any) {
	b, _ := json.Marshal(v)
	ctx.Store.Set(k, b)
}

// GetModel returns the model registered as id.
func GetModel(ctx *types.Context, id string) (Model, bool) {
	var m Model
	return m, getJSON(ctx, append(append([]byte{}, modelPrefix...), id...), &m)
}

func serveKey(model string, p types.Address) []byte {
	return append(append(append([]byte{}, servePrefix...), (model+"/")...), p[:]...)
}

// Serves reports whether provider p serves model.
func Serves(ctx *types.Context, model string, p types.Address) bool {
	_, ok := ctx.Store.Get(serveKey(model, p))
	return ok
}

// GetRequest returns request id.
func GetRequest(ctx *types.Context, id uint64) (Request, bool) {
	var r Request
	return r, getJSON(ctx, u64(requestPrefix, id), &r)
}

func setRequest(ctx *types.Context, r *Request) {
	r.UpdatedHeight = ctx.Height
	setJSON(ctx, u64(requestPrefix, r.ID), r)
}

// OpenRequests returns the open requests, oldest deadline first; model, if not
// empty, keeps only that model's.
func OpenRequests(ctx *types.Context, model string) []Request {
	var out []Request
	ctx.Store.Iterate(openPrefix, func(k, _ []byte) bool {
		id, err := strconv.ParseUint(string(k[len(openPrefix)+21:len(k)-1]), 10, 64)
		if err != nil {
			panic(fmt.Sprintf("infer: corrupt open key %q", k))
		}
		if r, ok := GetRequest(ctx, id); ok && (model == "" || r.Model == model) {
			out = append(out, r)
		}
		return true
	})
	return out
}

// HashOutput is the output hash a result carries.
func HashOutput(out []byte) string {
	s := sha256.Sum256(out)
	return hex.EncodeToString(s[:])
}

// Messages.

// MsgRegisterModel registers a model id with the hash of its weights.
type MsgRegisterModel struct {
	Owner types.Address `json:"owner"`
	ID    string        `json:"id"`
	Hash  string        `json:"hash"`
}

// MsgServeModel declares that the signer, a provider, serves a registered model; Hash
// must be the model's.
type MsgServeModel struct {
	Provider types.Address `json:"provider"`
	Model    string        `json:"model"`
	Hash     string        `json:"hash"`
}

// MsgInferRequest asks for model's output on input, paying at most MaxFee.
type MsgInferRequest struct {
	Requester types.Address `json:"requester"`
	Model     string        `json:"model"`
	Input     []byte        `json:"input"`
	MaxFee    uint64        `json:"max_fee,string"`
}

// MsgInferResult is a provider's answer to a request.
type MsgInferResult struct {
	Provider   types.Address `json:"provider"`
	RequestID  uint64        `json:"request_id,string"`
	Output     []byte        `json:"output"`
	OutputHash string        `json:"output_hash"`
}

func (m *MsgRegisterModel) Type() types.MsgType { return types.MsgTypeInferRegisterModel }
func (m *MsgServeModel) Type() types.MsgType    { return types.MsgTypeInferServeModel }
func (m *MsgInferRequest) Type() types.MsgType  { return types.MsgTypeInferRequest }
func (m *MsgInferResult) Type() types.MsgType   { return types.MsgTypeInferResult }

func (m *MsgRegisterModel) Signer() types.Address { return m.Owner }
func (m *MsgServeModel) Signer() types.Address    { return m.Provider }
func (m *MsgInferRequest) Signer() types.Address  { return m.Requester }
func (m *MsgInferResult) Signer() types.Address   { return m.Provider }

var hashRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkModelID(id string) error {
	if !modelIDRe.MatchString(id) {
		return types.InvalidField("model", id, "must be 1-64 of [a-z0-9._-], starting with a letter or digit")
	}
	return nil
}

func checkHash(field, h string) error {
	if !hashRe.MatchString(h) {
		return types.InvalidField(field, h, "must be a SHA-256 in lower-case hex (64 digits)")
	}
	return nil
}

func (m *MsgRegisterModel) ValidateBasic() error {
	if err := checkModelID(m.ID); err != nil {
		return err
	}
	return checkHash("hash", m.Hash)
}

func (m *MsgServeModel) ValidateBasic() error {
	if err := checkModelID(m.Model); err != nil {
		return err
	}
	return checkHash("hash", m.Hash)
}

func (m *MsgInferRequest) ValidateBasic() error {
	if err := checkModelID(m.Model); err != nil {
		return err
	}
	if len(m.Input) == 0 || len(m.Input) > MaxInputBytes {
		return types.InvalidField("input", fmt.Sprintf("%d bytes", len(m.Input)), fmt.Sprintf("must be 1 to %d bytes", MaxInputBytes))
	}
	if m.MaxFee == 0 {
		return types.InvalidField("max_fee", 0, "must be > 0")
	}
	return nil
}

func (m *MsgInferResult) ValidateBasic() error {
	if m.RequestID == 0 {
		return types.InvalidField("request_id", 0, "must be > 0")
	}
	if len(m.Output) > MaxOutputBytes {
		return types.InvalidField("output", fmt.Sprintf("%d bytes", len(m.Output)), fmt.Sprintf("must be at most %d bytes", MaxOutputBytes))
	}
	if err := checkHash("output_hash", m.OutputHash); err != nil {
		return err
	}
	if got := HashOutput(m.Output); got != m.OutputHash {
		return types.InvalidField("output_hash", m.OutputHash, "must be the SHA-256 of output ("+got+")")
	}
	return nil
}

func (m *MsgRegisterModel) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Owner[:])
	w.String(m.ID)
	w.String(m.Hash)
}

func (m *MsgServeModel) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.String(m.Model)
	w.String(m.Hash)
}

func (m *MsgInferRequest) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Requester[:])
	w.String(m.Model)
	w.WriteBytes(m.Input)
	w.Uvarint(m.MaxFee)
}

func (m *MsgInferResult) MarshalTo(w *codec.Writer) {
	w.Fixed(m.Provider[:])
	w.Uvarint(m.RequestID)
	w.WriteBytes(m.Output)
	w.String(m.OutputHash)
}

// DecodeRegisterModel decodes a MsgRegisterModel body.
func DecodeRegisterModel(r *codec.Reader) types.Msg {
	return &MsgRegisterModel{Owner: bank.ReadAddress(r), ID: r.String(maxModelID), Hash: r.String(64)}
}

// DecodeServeModel decodes a MsgServeModel body.
func DecodeServeModel(r *codec.Reader) types.Msg {
	return &MsgServeModel{Provider: bank.ReadAddress(r), Model: r.String(maxModelID), Hash: r.String(64)}
}

// DecodeRequest decodes a MsgInferRequest body.
func DecodeRequest(r *codec.Reader) types.Msg {
	return &MsgInferRequest{Requester: bank.ReadAddress(r), Model: r.String(maxModelID), Input: r.Bytes(MaxInputBytes), MaxFee: r.Uvarint()}
}

// DecodeResult decodes a MsgInferResult body.
func DecodeResult(r *codec.Reader) types.Msg {
	return &MsgInferResult{Provider: bank.ReadAddress(r), RequestID: r.Uvarint(), Output: r.Bytes(MaxOutputBytes), OutputHash: r.String(64)}
}

// Handle executes an infer message.
func Handle(ctx *types.Context, msg types.Msg) error {
	switch m := msg.(type) {
	case *MsgRegisterModel:
		if _, ok := GetModel(ctx, m.ID); ok {
			return types.Wrapf(types.ErrAlreadyExists, "model %q is registered", m.ID)
		}
		setJSON(ctx, append(append([]byte{}, modelPrefix...), m.ID...), Model{ID: m.ID, Hash: m.Hash, Owner: m.Owner, CreatedHeight: ctx.Height})
		ctx.Emit("infer_model_registered", "model", m.ID, "hash", m.Hash)
		return nil
	case *MsgServeModel:
		if _, ok := registry.Get(ctx, m.Provider); !ok {
			return types.Wrapf(types.ErrNotProvider, "%s is not a registered provider", m.Provider)
		}
		md, ok := GetModel(ctx, m.Model)
		if !ok {
			return types.Wrapf(types.ErrNotFound, "model %q is not registered", m.Model)
		}
		if md.Hash != m.Hash {
			return types.Wrapf(types.ErrModelMismatch, "model %q has hash %s; the weights served hash to %s", m.Model, md.Hash, m.Hash)
		}
		ctx.Store.Set(serveKey(m.Model, m.Provider), []byte{1})
		ctx.Emit("infer_model_served", "model", m.Model, "provider", m.Provider.String())
		return nil
	case *MsgInferRequest:
		return request(ctx, m)
	case *MsgInferResult:
		return result(ctx, m)
	}
	return types.Wrapf(types.ErrUnknownMsgType, "infer: %T", msg)
}

func request(ctx *types.Context, m *MsgInferRequest) error {
	p := GetParams(ctx)
	md, ok := GetModel(ctx, m.Model)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "model %q is not registered", m.Model)
	}
	if m.MaxFee < p.MinFee {
		return types.InvalidField("max_fee", m.MaxFee, fmt.Sprintf("must be at least min_fee %d%s", p.MinFee, p.Denom))
	}
	if err := bank.Send(ctx, m.Requester, Account, types.NewCoin(p.Denom, m.MaxFee)); err != nil {
		return types.Wrapf(types.ErrInsufficientFunds, "max_fee %d%s: %v", m.MaxFee, p.Denom, err)
	}
	var seq uint64
	if v, ok := ctx.Store.Get(seqKey); ok {
		seq, _ = strconv.ParseUint(string(v), 10, 64)
	}
	seq++
	ctx.Store.Set(seqKey, []byte(strconv.FormatUint(seq, 10)))
	r := Request{ID: seq, Requester: m.Requester, Model: m.Model, ModelHash: md.Hash, Input: m.Input, MaxFee: m.MaxFee,
		Denom: p.Denom, State: StateOpen, Deadline: ctx.Height + p.DeadlineBlocks, CreatedHeight: ctx.Height}
	setRequest(ctx, &r)
	ctx.Store.Set(u64(openPrefix, uint64(r.Deadline), r.ID), []byte{1})
	ctx.Emit("infer_requested", "request", strconv.FormatUint(r.ID, 10), "model", m.Model,
		"max_fee", strconv.FormatUint(m.MaxFee, 10), "deadline", strconv.FormatInt(r.Deadline, 10))
	return nil
}

func result(ctx *types.Context, m *MsgInferResult) error {
	r, ok := GetRequest(ctx, m.RequestID)
	if !ok {
		return types.Wrapf(types.ErrNotFound, "inference request %d", m.RequestID)
	}
	if r.State != StateOpen {
		return types.Wrapf(types.ErrRequestClosed, "request %d is %s (height %d)", r.ID, r.State, max(r.ResolvedHeight, r.Deadline))
	}
	if !Serves(ctx, r.Model, m.Provider) {
		return types.Wrapf(types.ErrUnauthorized, "%s does not serve model %q (declare it with MsgServeModel)", m.Provider, r.Model)
	}
	for _, a := range r.Answers {
		if a.Provider == m.Provider {
			return types.Wrapf(types.ErrAlreadyExists, "%s already answered request %d", m.Provider, r.ID)
		}
	}
	at, hasTEE := xtee.Get(ctx, m.Provider)
	a := Answer{Provider: m.Provider, OutputHash: m.OutputHash, Output: m.Output, TEE: hasTEE && at.Active(ctx.Height), Height: ctx.Height}
	r.Answers = append(r.Answers, a)
	ctx.Emit("infer_answered", "request", strconv.FormatUint(r.ID, 10), "provider", m.Provider.String(), "output_hash", m.OutputHash, "tee", strconv.FormatBool(a.TEE))
	p := GetParams(ctx)
	agree := 0
	for _, x := range r.Answers {
		if x.OutputHash == m.OutputHash {
			agree++
		}
	}
	switch {
	case a.TEE:
		resolve(ctx, &r, m.OutputHash, "tee", func(x Answer) bool { return x.Provider == m.Provider })
	case agree >= int(p.AgreeK):
		resolve(ctx, &r, m.OutputHash, "k_agree", func(x Answer) bool { return x.OutputHash == m.OutputHash })
	default:
		setRequest(ctx, &r)
	}
	return nil
}

// resolve accepts output hash h for r, paying the answers win selects equally from
// the fee and refunding the remainder.
func resolve(ctx *types.Context, r *Request, h, via string, win func(Answer) bool) {
	var winners []int
	for i, x := range r.Answers {
		if win(x) {
			winners = append(winners, i)
			if r.Output == nil {
				r.Output = x.Output
			}
		}
	}
	share := r.MaxFee / uint64(len(winners))
	for i := range r.Answers {
		x := &r.Answers[i]
		x.Output = nil
		x.Outcome = "outvoted"
	}
	for _, i := range winners {
		x := &r.Answers[i]
		x.Outcome, x.Paid = "agreed", share
		if share > 0 {
			if err := bank.Send(ctx, Account, x.Provider, types.NewCoin(r.Denom, share)); err != nil {
				panic(fmt.Sprintf("infer: pay request %d: %v", r.ID, err))
			}
		}
	}
	if rest := r.MaxFee - share*uint64(len(winners)); rest > 0 {
		if err := bank.Send(ctx, Account, r.Requester, types.NewCoin(r.Denom, rest)); err != nil {
			panic(fmt.Sprintf("infer: refund request %d: %v", r.ID, err))
		}
		r.Refunded = rest
	}
	if r.Output == nil {
		r.Output = []byte{}
	}
	r.OutputHash, r.Via, r.State, r.ResolvedHeight = h, via, StateResolved, ctx.Height
	ctx.Store.Delete(u64(openPrefix, uint64(r.Deadline), r.ID))
	setRequest(ctx, r)
	ctx.Emit("infer_resolved", "request", strconv.FormatUint(r.ID, 10), "output_hash", h, "via", via, "providers", strconv.Itoa(len(winners)))
}

// EndBlock expires the requests whose deadline is this height, refunding their fee.
func EndBlock(ctx *types.Context) {
	prefix := u64(openPrefix, uint64(ctx.Height))
	var ids []uint64
	ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
		id, err := strconv.ParseUint(string(k[len(prefix):len(k)-1]), 10, 64)
		if err != nil {
			panic(fmt.Sprintf("infer: corrupt open key %q", k))
		}
		ids = append(ids, id)
		return true
	})
	for _, id := range ids {
		r, ok := GetRequest(ctx, id)
		if !ok || r.State != StateOpen {
			panic(fmt.Sprintf("infer: open index names request %d, which is not open", id))
		}
		if err := bank.Send(ctx, Account, r.Requester, types.NewCoin(r.Denom, r.MaxFee)); err != nil {
			panic(fmt.Sprintf("infer: refund expired request %d: %v", id, err))
		}
		r.State, r.Refunded = StateExpired, r.MaxFee
		for i := range r.Answers {
			r.Answers[i].Output = nil
		}
		ctx.Store.Delete(u64(openPrefix, uint64(r.Deadline), r.ID))
		setRequest(ctx, &r)
		ctx.Emit("infer_expired", "request", strconv.FormatUint(id, 10), "refunded", strconv.FormatUint(r.MaxFee, 10))
	}
}

// Owed is what the module account must hold: the fees of open requests.
func Owed(ctx *types.Context) types.Coins {
	var sum uint64
	denom := GetParams(ctx).Denom
	for _, r := range OpenRequests(ctx, "") {
		sum += r.MaxFee
	}
	if sum == 0 {
		return types.Coins{}
	}
	return types.Coins{types.NewCoin(denom, sum)}
}

// CheckInvariants checks that every open-index entry names an open request.
func CheckInvariants(ctx *types.Context) error {
	for _, r := range OpenRequests(ctx, "") {
		if r.State != StateOpen {
			return fmt.Errorf("infer: request %d is indexed open but is %s", r.ID, r.State)
		}
	}
	return nil
}
