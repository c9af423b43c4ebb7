package app

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/cert"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// Query paths served by the app. Values are JSON. ADDR is a bech32 address.
//
//	/auth/account/ADDR      {"address","sequence"}
//	/bank/balances/ADDR     {"balances":[{"denom","amount"}]}
//	/bank/supply            {"supply":[...]}
//	/bank/accounting        every balance summed against supply, each module account against its records (bank.Accounting); O(accounts)
//	/staking/validators     {"validators":[...]}
//	/staking/delegations    {"delegations":[...]}
//	/staking/unbondings     {"unbondings":[...]}
//	/registry/providers     {"providers":[...]}
//	/registry/provider/ADDR the provider
//	/market/orders[?state=open|active|closed&owner=ADDR]   {"orders":[...]}
//	/market/order/ID        the order
//	/market/order/ID/match  per provider, the constraints it fails (why no bids)
//	/market/bids[?order=ID&provider=ADDR]  {"bids":[...]} (open bids)
//	/market/bids/ID         {"bids":[...]} on order ID
//	/market/leases[?state=active|closed&owner=ADDR&provider=ADDR]  {"leases":[...]}
//	/market/lease/ID        the latest lease of order ID
//	/market/stake/rewards   the last stake epoch's reward pool and its split
//	/market/prices          {"prices":[...]}: per class, best ask, last trade, 24 h range
//	/market/asks/CLASS      {"asks":[...]}: the asks of a class, cheapest first
//	/market/provider/ADDR/capacity  {"total","used","free","active_leases"}
//	/market/order/ID/candidates[?limit=N]  {"candidates":[...]}: providers that can take it now (free-capacity index)
//	/market/stats[?blocks=N&blocks_per_hour=N&ref=USD&ref_per_kiln=X]  network statistics (GPUs, CPUs, prices, utilization)
//	/escrow/account/ID      the escrow account of order ID
//	/escrow/holds/ID        {"holds":[...]}: pay held back on order ID's leases, per provider
//	/escrow/accounts        {"accounts":[...]}: every escrow account, by order ID; O(accounts)
//	/escrow/totals          {"totals":[{"denom","deposited","balance","paid","fees","refunded","held"}]}: the accounts summed per denom; O(accounts)
//	/liveness/challenges[?provider=ADDR&state=open|answered|pending|passed|failed&lease=ID]  {"challenges":[...]}
//	/liveness/challenge/ID  the challenge
//	/liveness/scores[?provider=ADDR]  {"scores":[...]}: challenge scores per provider and model
//	/cert/ADDR              the account's client certificate record
//	/params                 every module's parameters
//	/app/status             {"chain_id","height","app_hash"}
//	/app/modules            {"modules":[{"name","query","msgs"}]}: the module table, in its order (query: the module answers /NAME/...)
//
// A query reads one committed height whole, from a snapshot taken when it was
// committed, while the next block commits beside it; the response's Height says which.
func (a *App) Query(_ context.Context, req *abcitypes.RequestQuery) (*abcitypes.ResponseQuery, error) {
	view := a.db.View()
	defer view.Release()
	ctx := &types.Context{Store: view, Height: view.Height(), Time: view.BlockTime(), ChainID: a.chainID, Logger: a.log}
	a.wire(ctx, storedBlockRand(view))
	v, err := a.query(ctx, view, req.Path)
	if err != nil {
		return &abcitypes.ResponseQuery{Code: types.CodeOf(err), Log: err.Error(), Codespace: types.Codespace, Height: ctx.Height}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return &abcitypes.ResponseQuery{Code: types.CodeInternal, Log: err.Error(), Height: ctx.Height}, nil
	}
	return &abcitypes.ResponseQuery{Value: b, Height: ctx.Height}, nil
}

func addrArg(path, prefix string) (types.Address, error) {
	a, err := types.ParseAddress(strings.TrimPrefix(path, prefix))
	if err != nil {
		return a, types.Wrapf(types.ErrInvalidRequest, "%v", err)
	}
	return a, nil
}

func (a *App) query(ctx *types.Context, view *store.View, path string) (any, error) {
	switch path {
	case "/params":
		if ctx.Height == 0 {
			return map[string]any{}, nil
		}
		return params.All(ctx), nil
	case "/app/status":
		return map[string]any{"chain_id": a.chainID, "height": ctx.Height, "app_hash": view.AppHash()}, nil
	case "/app/modules":
		return map[string]any{"modules": a.l.describe()}, nil
	}
	// NB: /NAME/... goes to module NAME's Query (the module table).
	root, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	root, _, _ = strings.Cut(root, "?")
	if q, ok := a.l.queries[root]; ok && strings.HasPrefix(path, "/") {
		return q(ctx, path)
	}
	return nil, unknownPath(path)
}

func unknownPath(path string) error {
	return types.Wrapf(types.ErrInvalidRequest, "unknown query path %q", path)
}

// queryAuth serves /auth/account/ADDR.
func queryAuth(ctx *types.Context, path string) (any, error) {
	if !strings.HasPrefix(path, "/auth/account/") {
		return nil, unknownPath(path)
	}
	addr, err := addrArg(path, "/auth/account/")
	if err != nil {
		return nil, err
	}
	acc, ok := auth.Get(ctx, addr)
	if !ok {
		return nil, types.Wrapf(types.ErrNotFound, "account %s", addr)
	}
	return acc, nil
}

// queryBank serves /bank/balances/ADDR, /bank/supply and /bank/accounting.
func queryBank(ctx *types.Context, path string) (any, error) {
	switch {
	case strings.HasPrefix(path, "/bank/balances/"):
		addr, err := addrArg(path, "/bank/balances/")
		if err != nil {
			return nil, err
		}
		bals := bank.Balances(ctx, addr)
		if bals == nil {
			bals = types.Coins{}
		}
		return map[string]any{"balances": bals}, nil
	case path == "/bank/supply":
		return map[string]any{"supply": bank.Supply(ctx)}, nil
	case path == "/bank/accounting":
		if ctx.Height == 0 {
			return nil, types.Wrapf(types.ErrNotFound, "no state committed yet")
		}
		return Accounting(ctx), nil
	}
	return nil, unknownPath(path)
}

// queryStaking serves /staking/validators, /staking/delegations and /staking/unbondings.
func queryStaking(ctx *types.Context, path string) (any, error) {
	switch path {
	case "/staking/validators":
		return map[string]any{"validators": nonNil(staking.Validators(ctx))}, nil
	case "/staking/delegations":
		return map[string]any{"delegations": nonNil(staking.Delegations(ctx))}, nil
	case "/staking/unbondings":
		return map[string]any{"unbondings": nonNil(staking.Unbondings(ctx))}, nil
	}
	return nil, unknownPath(path)
}

// queryRegistry serves /registry/providers and /registry/provider/ADDR.
func queryRegistry(ctx *types.Context, path string) (any, error) {
	switch {
	case path == "/registry/providers":
		return map[string]any{"providers": nonNil(registry.List(ctx))}, nil
	case strings.HasPrefix(path, "/registry/provider/"):
		addr, err := addrArg(path, "/registry/provider/")
		if err != nil {
			return nil, err
		}
		p, ok := registry.Get(ctx, addr)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "provider %s", addr)
		}
		return p, nil
	}
	return nil, unknownPath(path)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func idArg(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, types.Wrapf(types.ErrInvalidRequest, "id %q: want a positive integer", s)
	}
	return id, nil
}

func optAddr(q url.Values, key string) (types.Address, error) {
	if q.Get(key) == "" {
		return types.Address{}, nil
	}
	a, err := types.ParseAddress(q.Get(key))
	if err != nil {
		return a, types.Wrapf(types.ErrInvalidRequest, "%s: %v", key, err)
	}
	return a, nil
}

// splitPath splits a query path into its elements and its query string.
func splitPath(full string) (path string, parts []string, q url.Values, err error) {
	path, rawQ, _ := strings.Cut(full, "?")
	q, err = url.ParseQuery(rawQ)
	if err != nil {
		return "", nil, nil, types.Wrapf(types.ErrInvalidRequest, "query string %q: %v", rawQ, err)
	}
	return path, strings.Split(strings.Trim(path, "/"), "/"), q, nil
}

// queryMarket serves the /market paths.
func queryMarket(ctx *types.Context, full string) (any, error) {
	path, parts, q, err := splitPath(full)
	if err != nil {
		return nil, err
	}
	switch {
	case path == "/market/stats":
		o := market.DefaultStatsOptions()
		for name, dst := range map[string]*int64{"blocks": &o.WindowBlocks, "blocks_per_hour": &o.BlocksPerHour} {
			if v := q.Get(name); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, types.InvalidField(name, v, "must be a whole number")
				}
				*dst = n
			}
		}
		if v := q.Get("ref"); v != "" {
			o.RefCurrency = v
		}
		if v := q.Get("ref_per_kiln"); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, types.InvalidField("ref_per_kiln", v, "must be a number")
			}
			o.RefPerKILN = f
		}
		return market.NetworkStats(ctx, o)
	case len(parts) == 4 && parts[1] == "order" && parts[3] == "candidates":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		limit := 10
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil {
				return nil, types.InvalidField("limit", v, "must be a whole number")
			}
		}
		c, err := market.Candidates(ctx, id, limit)
		if err != nil {
			return nil, err
		}
		return map[string]any{"candidates": c}, nil
	case path == "/market/orders":
		owner, err := optAddr(q, "owner")
		if err != nil {
			return nil, err
		}
		return map[string]any{"orders": nonNil(market.Orders(ctx, market.OrderFilter{State: q.Get("state"), Owner: owner}))}, nil
	case len(parts) == 3 && parts[1] == "order", len(parts) == 4 && parts[1] == "order" && parts[3] == "match":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		if len(parts) == 4 {
			return market.Match(ctx, id)
		}
		o, ok := market.GetOrder(ctx, id)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "order %d", id)
		}
		return o, nil
	case path == "/market/bids", len(parts) == 3 && parts[1] == "bids":
		var id uint64
		if s := q.Get("order"); s != "" || len(parts) == 3 {
			if len(parts) == 3 {
				s = parts[2]
			}
			if id, err = idArg(s); err != nil {
				return nil, err
			}
		}
		prov, err := optAddr(q, "provider")
		if err != nil {
			return nil, err
		}
		return map[string]any{"bids": market.ShowBids(market.Bids(ctx, id, prov))}, nil
	case path == "/market/leases":
		owner, err := optAddr(q, "owner")
		if err != nil {
			return nil, err
		}
		prov, err := optAddr(q, "provider")
		if err != nil {
			return nil, err
		}
		return map[string]any{"leases": market.ShowLeases(market.Leases(ctx, market.LeaseFilter{State: q.Get("state"), Owner: owner, Provider: prov}))}, nil
	case len(parts) == 3 && parts[1] == "lease":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		l, ok := market.GetLease(ctx, id)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "lease %d", id)
		}
		return market.ShowLease(l), nil
	case len(parts) == 3 && parts[1] == "cluster":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		c, ok := market.GetCluster(ctx, id)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "cluster %d (no cluster order %d was placed)", id, id)
		}
		return c, nil
	case path == "/market/stake/rewards":
		r, ok := market.LastEpochReward(ctx)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "no stake epoch has ended yet")
		}
		return r, nil
	case path == "/market/prices":
		return map[string]any{"prices": market.Prices(ctx)}, nil
	case len(parts) == 3 && parts[1] == "asks":
		return map[string]any{"asks": nonNil(market.Asks(ctx, parts[2], 0))}, nil
	case len(parts) == 4 && parts[1] == "provider" && parts[3] == "capacity":
		a, err := addrArg(parts[2], "")
		if err != nil {
			return nil, err
		}
		return market.Capacity(ctx, a)
	}
	return nil, types.Wrapf(types.ErrInvalidRequest, "unknown query path %q", full)
}

// queryEscrow serves /escrow/account/ID and /escrow/holds/ID.
func queryEscrow(ctx *types.Context, full string) (any, error) {
	_, parts, _, err := splitPath(full)
	if err != nil {
		return nil, err
	}
	switch {
	case len(parts) == 3 && parts[0] == "escrow" && parts[1] == "account":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		acct, ok := escrow.Get(ctx, id)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "escrow account of order %d", id)
		}
		return acct, nil
	case len(parts) == 2 && parts[1] == "accounts":
		return map[string]any{"accounts": nonNil(escrow.List(ctx))}, nil
	case len(parts) == 2 && parts[1] == "totals":
		return map[string]any{"totals": escrowTotals(escrow.List(ctx))}, nil
	case len(parts) == 3 && parts[0] == "escrow" && parts[1] == "holds":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		if _, ok := escrow.Get(ctx, id); !ok {
			return nil, types.Wrapf(types.ErrNotFound, "escrow account of order %d", id)
		}
		return map[string]any{"holds": nonNil(escrow.Holds(ctx, id))}, nil
	}
	return nil, unknownPath(full)
}

// EscrowTotal is every escrow account of one denom summed (/escrow/totals).
type EscrowTotal struct {
	Denom     string `json:"denom"`
	Deposited uint64 `json:"deposited,string"`
	Balance   uint64 `json:"balance,string"`
	Paid      uint64 `json:"paid,string"`
	Fees      uint64 `json:"fees,string"`
	Refunded  uint64 `json:"refunded,string"`
	Held      uint64 `json:"held,string"`
}

// escrowTotals sums accts per denom, in denom order. NB: each sum is bounded by the
// supply, which fits in 64 bits.
func escrowTotals(accts []escrow.EscrowAccount) []EscrowTotal {
	out := []EscrowTotal{}
	idx := map[string]int{}
	for _, a := range accts {
		i, ok := idx[a.Denom]
		if !ok {
			i = len(out)
			idx[a.Denom] = i
			out = append(out, EscrowTotal{Denom: a.Denom})
		}
		t := &out[i]
		t.Deposited += a.Deposited
		t.Balance += a.Balance
		t.Paid += a.Paid
		t.Fees += a.Fees
		t.Refunded += a.Refunded
		t.Held += a.Held
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Denom < out[j].Denom })
	return out
}

// queryCert serves /cert/ADDR.
func queryCert(ctx *types.Context, full string) (any, error) {
	_, parts, _, err := splitPath(full)
	if err != nil {
		return nil, err
	}
	switch {
	case len(parts) == 2 && parts[0] == "cert":
		a, err := addrArg(parts[1], "")
		if err != nil {
			return nil, err
		}
		c, ok := cert.Get(ctx, a)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "certificate of %s", a)
		}
		return c, nil
	}
	return nil, unknownPath(full)
}
