package app

import (
	"context"
	"encoding/json"
	"strings"

	abcitypes "github.com/cometbft/cometbft/abci/types"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// Query paths served by the app. Values are JSON. ADDR is a bech32 address.
//
//	/auth/account/ADDR      {"address","sequence"}
//	/bank/balances/ADDR     {"balances":[{"denom","amount"}]}
//	/bank/supply            {"supply":[...]}
//	/staking/validators     {"validators":[...]}
//	/staking/delegations    {"delegations":[...]}
//	/staking/unbondings     {"unbondings":[...]}
//	/registry/providers     {"providers":[...]}
//	/registry/provider/ADDR the provider
//	/params                 every module's parameters
//	/app/status             {"chain_id","height","app_hash"}
func (a *App) Query(_ context.Context, req *abcitypes.RequestQuery) (*abcitypes.ResponseQuery, error) {
	ctx := &types.Context{Store: a.db, Height: a.db.Height(), ChainID: a.chainID, Logger: a.log}
	v, err := a.query(ctx, req.Path)
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

func (a *App) query(ctx *types.Context, path string) (any, error) {
	switch {
	case strings.HasPrefix(path, "/auth/account/"):
		addr, err := addrArg(path, "/auth/account/")
		if err != nil {
			return nil, err
		}
		acc, ok := auth.Get(ctx, addr)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "account %s", addr)
		}
		return acc, nil
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
	case path == "/staking/validators":
		return map[string]any{"validators": nonNil(staking.Validators(ctx))}, nil
	case path == "/staking/delegations":
		return map[string]any{"delegations": nonNil(staking.Delegations(ctx))}, nil
	case path == "/staking/unbondings":
		return map[string]any{"unbondings": nonNil(staking.Unbondings(ctx))}, nil
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
	case path == "/params":
		if ctx.Height == 0 {
			return map[string]any{}, nil
		}
		return params.All(ctx), nil
	case path == "/app/status":
		return map[string]any{"chain_id": a.chainID, "height": ctx.Height, "app_hash": a.db.AppHash()}, nil
	}
	return nil, types.Wrapf(types.ErrInvalidRequest, "unknown query path %q", path)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
