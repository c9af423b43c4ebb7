package app

import (
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/liveness"
)

// queryLiveness serves the /liveness paths:
//
//	/liveness/challenges[?provider=ADDR&state=open|answered|passed|failed|pending&lease=ID]  {"challenges":[...]}
//	/liveness/challenge/ID  the challenge
//	/liveness/scores[?provider=ADDR]  {"scores":[...]}: per provider and model
func queryLiveness(ctx *types.Context, full string) (any, error) {
	path, parts, q, err := splitPath(full)
	if err != nil {
		return nil, err
	}
	switch {
	case path == "/liveness/challenges":
		prov, err := optAddr(q, "provider")
		if err != nil {
			return nil, err
		}
		f := liveness.ChallengeFilter{Provider: prov, State: q.Get("state")}
		switch f.State {
		case "", liveness.StateOpen, liveness.StateAnswered, liveness.StatePassed, liveness.StateFailed:
		case "pending":
			f.State, f.Pending = "", true
		default:
			return nil, types.Wrapf(types.ErrInvalidRequest, "state %q: want open, answered, pending, passed or failed", f.State)
		}
		if s := q.Get("lease"); s != "" {
			if f.Lease, err = idArg(s); err != nil {
				return nil, err
			}
		}
		return map[string]any{"challenges": liveness.Challenges(ctx, f)}, nil
	case len(parts) == 3 && parts[1] == "challenge":
		id, err := idArg(parts[2])
		if err != nil {
			return nil, err
		}
		c, ok := liveness.GetChallenge(ctx, id)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "challenge %d", id)
		}
		return c, nil
	case path == "/liveness/scores":
		prov, err := optAddr(q, "provider")
		if err != nil {
			return nil, err
		}
		if prov.IsZero() {
			return map[string]any{"scores": liveness.Scores(ctx)}, nil
		}
		return map[string]any{"scores": liveness.ScoresOf(ctx, prov)}, nil
	}
	return nil, types.Wrapf(types.ErrInvalidRequest, "unknown liveness query path %q", path)
}
