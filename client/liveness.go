package client

import (
	"context"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/liveness"
)

// Challenges returns the liveness and hardware challenges of provider (zero: anyone's)
// in state (open, answered, passed, failed; "pending": open or answered, what a
// provider polls, from an index; empty: all).
func (c *Client) Challenges(ctx context.Context, provider types.Address, state string) ([]liveness.Challenge, error) {
	var out struct {
		Challenges []liveness.Challenge `json:"challenges"`
	}
	err := c.QueryJSON(ctx, PathChallenges(provider, state, 0), &out)
	return out.Challenges, err
}

// Challenge returns challenge id.
func (c *Client) Challenge(ctx context.Context, id uint64) (liveness.Challenge, error) {
	var ch liveness.Challenge
	err := c.getOr404(ctx, PathChallenge(id), &ch)
	return ch, err
}

// Scores returns the challenge scores of provider (zero: every provider's), per model.
func (c *Client) Scores(ctx context.Context, provider types.Address) ([]liveness.Score, error) {
	var out struct {
		Scores []liveness.Score `json:"scores"`
	}
	err := c.QueryJSON(ctx, PathScores(provider), &out)
	return out.Scores, err
}
