package app

import (
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/infer"
	xtee "github.com/kiln-network/kiln/x/tee"
)

// queryTEE serves /tee/attestation/ADDR, /tee/nonce and /tee/params.
func queryTEE(ctx *types.Context, full string) (any, error) {
	_, parts, _, err := splitPath(full)
	if err != nil {
		return nil, err
	}
	if len(parts) == 3 && parts[1] == "attestation" {
		a, err := addrArg(parts[2], "")
		if err != nil {
			return nil, err
		}
		at, ok := xtee.Get(ctx, a)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "attestation of %s", a)
		}
		return at, nil
	}
	if len(parts) == 2 {
		return xtee.Query(ctx, parts[1:])
	}
	return nil, unknownPath(full)
}

// queryInfer serves /infer/request/ID, /infer/model/ID, /infer/open[?model=ID] and
// /infer/params.
func queryInfer(ctx *types.Context, full string) (any, error) {
	path, parts, q, err := splitPath(full)
	if err != nil {
		return nil, err
	}
	switch {
	case len(parts) == 3 && parts[1] == "request":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		r, ok := infer.GetRequest(ctx, id)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "inference request %d", id)
		}
		return r, nil
	case len(parts) == 3 && parts[1] == "model":
		m, ok := infer.GetModel(ctx, parts[2])
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "model %q", parts[2])
		}
		return m, nil
	case path == "/infer/open":
		return map[string]any{"requests": nonNil(infer.OpenRequests(ctx, q.Get("model")))}, nil
	case path == "/infer/params":
		return infer.GetParams(ctx), nil
	}
	return nil, unknownPath(full)
}
