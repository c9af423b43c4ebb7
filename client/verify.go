package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/verify"
)

// CommitmentFilter narrows Commitments; zero fields match everything.
type CommitmentFilter struct {
	Lease    uint64
	Provider types.Address
	Verifier types.Address
	State    string
}

// Commitments returns the work commitments that match f.
func (c *Client) Commitments(ctx context.Context, f CommitmentFilter) ([]verify.Commitment, error) {
	q := url.Values{}
	if f.Lease != 0 {
		q.Set("lease", fmt.Sprint(f.Lease))
	}
	if !f.Provider.IsZero() {
		q.Set("provider", f.Provider.String())
	}
	if !f.Verifier.IsZero() {
		q.Set("verifier", f.Verifier.String())
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	var out struct {
		Commitments []verify.Commitment `json:"commitments"`
	}
	err := c.QueryJSON(ctx, withQuery(PathCommitments, flatten(q)...), &out)
	return out.Commitments, err
}

// ChallengeFilter narrows VerifyChallenges; zero fields match everything.
type ChallengeFilter struct {
	Commitment uint64
	Member     types.Address
	State      string
}

// VerifyChallenges returns the verification challenges (disputed units) that match f.
func (c *Client) VerifyChallenges(ctx context.Context, f ChallengeFilter) ([]verify.Challenge, error) {
	q := url.Values{}
	if f.Commitment != 0 {
		q.Set("commitment", fmt.Sprint(f.Commitment))
	}
	if !f.Member.IsZero() {
		q.Set("member", f.Member.String())
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	var out struct {
		Challenges []verify.Challenge `json:"challenges"`
	}
	err := c.QueryJSON(ctx, withQuery(PathVerifyChallenges, flatten(q)...), &out)
	return out.Challenges, err
}

// Verifier returns verifier a, or found=false when a is not registered.
func (c *Client) Verifier(ctx context.Context, a types.Address) (v verify.Verifier, found bool, err error) {
	err = c.QueryJSON(ctx, PathVerifier(a), &v)
	var qe *QueryError
	if errors.As(err, &qe) && qe.Code == types.CodeNotFound {
		return v, false, nil
	}
	return v, err == nil, err
}

// VerifierDuty returns what verifier a has to re-execute of lease now (x/verify.DutyOf),
// or found=false when it has nothing due there.
func (c *Client) VerifierDuty(ctx context.Context, lease uint64, a types.Address) (d verify.Duty, found bool, err error) {
	err = c.QueryJSON(ctx, PathVerifierDuty(lease, a), &d)
	var qe *QueryError
	if errors.As(err, &qe) && qe.Code == types.CodeNotFound {
		return d, false, nil
	}
	return d, err == nil, err
}

// flatten turns q into withQuery's key, value list.
func flatten(q url.Values) []string {
	var kv []string
	for k, vs := range q {
		kv = append(kv, k, vs[0])
	}
	return kv
}

// Commitment returns work commitment id.
func (c *Client) Commitment(ctx context.Context, id uint64) (verify.Commitment, error) {
	var cm verify.Commitment
	return cm, c.QueryJSON(ctx, PathCommitment(id), &cm)
}

// VerifyChallenge returns verification challenge id.
func (c *Client) VerifyChallenge(ctx context.Context, id uint64) (verify.Challenge, error) {
	var ch verify.Challenge
	return ch, c.QueryJSON(ctx, PathVerifyChallenge(id), &ch)
}
