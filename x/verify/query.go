package verify

import (
	"encoding/binary"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-network/kiln/types"
)

// Query answers verify's query paths:
//
//	/verify/commitments[?lease=ID&provider=ADDR&verifier=ADDR&state=S]  {"commitments":[...]}
//	/verify/commitment/ID     the commitment
//	/verify/challenges[?commitment=ID&state=S&member=ADDR]  {"challenges":[...]}
//	/verify/challenge/ID      the challenge
//	/verify/verifiers         {"verifiers":[...]}
//	/verify/verifier/ADDR     the verifier
//	/verify/duty/LEASE/ADDR   what verifier ADDR is to check of lease LEASE now (Duty); not found when nothing
//
// Lists walk every record: they are for clients and tests, not for the block path.
func Query(ctx *types.Context, full string) (any, error) {
	path, rawq, _ := strings.Cut(full, "?")
	q, err := url.ParseQuery(rawq)
	if err != nil {
		return nil, types.Wrapf(types.ErrInvalidRequest, "query string %q: %v", rawq, err)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	id := func(s string) (uint64, error) {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return 0, types.Wrapf(types.ErrInvalidRequest, "id %q: must be a positive integer", s)
		}
		return n, nil
	}
	addr := func(key string) (*types.Address, error) {
		s := q.Get(key)
		if s == "" {
			return nil, nil
		}
		a, err := types.ParseAddress(s)
		if err != nil {
			return nil, types.Wrapf(types.ErrInvalidRequest, "%s: %v", key, err)
		}
		return &a, nil
	}
	switch {
	case len(parts) == 2 && parts[1] == "commitments":
		prov, err := addr("provider")
		if err != nil {
			return nil, err
		}
		ver, err := addr("verifier")
		if err != nil {
			return nil, err
		}
		var lease uint64
		if s := q.Get("lease"); s != "" {
			if lease, err = id(s); err != nil {
				return nil, err
			}
		}
		state := q.Get("state")
		out := []Commitment{}
		ctx.Store.Iterate(commitPrefix, func(_, v []byte) bool {
			var c Commitment
			if err := json.Unmarshal(v, &c); err != nil {
				panic(err)
			}
			if (lease == 0 || c.LeaseID == lease) && (prov == nil || c.Provider == *prov) &&
				(ver == nil || (c.Verifier != nil && *c.Verifier == *ver)) && (state == "" || c.State == state) {
				out = append(out, c)
			}
			return true
		})
		return map[string]any{"commitments": out}, nil
	case len(parts) == 3 && parts[1] == "commitment":
		n, err := id(parts[2])
		if err != nil {
			return nil, err
		}
		c, ok := GetCommitment(ctx, n)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "commitment %d", n)
		}
		return c, nil
	case len(parts) == 2 && parts[1] == "challenges":
		member, err := addr("member")
		if err != nil {
			return nil, err
		}
		var commit uint64
		if s := q.Get("commitment"); s != "" {
			if commit, err = id(s); err != nil {
				return nil, err
			}
		}
		state := q.Get("state")
		out := []Challenge{}
		ctx.Store.Iterate(challengePrefix, func(_, v []byte) bool {
			var c Challenge
			if err := json.Unmarshal(v, &c); err != nil {
				panic(err)
			}
			in := member == nil
			for _, m := range c.Committee {
				in = in || m == *member
			}
			if in && (commit == 0 || c.CommitID == commit) && (state == "" || c.State == state) {
				out = append(out, c)
			}
			return true
		})
		return map[string]any{"challenges": out}, nil
	case len(parts) == 3 && parts[1] == "challenge":
		n, err := id(parts[2])
		if err != nil {
			return nil, err
		}
		c, ok := GetChallenge(ctx, n)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "challenge %d", n)
		}
		return c, nil
	case len(parts) == 2 && parts[1] == "verifiers":
		out := []Verifier{}
		ctx.Store.Iterate(verifierPrefix, func(k, _ []byte) bool {
			var a types.Address
			copy(a[:], k[len(verifierPrefix):])
			v, _ := GetVerifier(ctx, a)
			out = append(out, v)
			return true
		})
		return map[string]any{"verifiers": out}, nil
	case len(parts) == 4 && parts[1] == "duty":
		lease, err := id(parts[2])
		if err != nil {
			return nil, err
		}
		a, err := types.ParseAddress(parts[3])
		if err != nil {
			return nil, types.Wrapf(types.ErrInvalidRequest, "verifier address: %v", err)
		}
		d, ok := DutyOf(ctx, lease, a)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "verifier %s has no check or committee vote due on lease %d", a, lease)
		}
		return d, nil
	case len(parts) == 3 && parts[1] == "verifier":
		a, err := types.ParseAddress(parts[2])
		if err != nil {
			return nil, types.Wrapf(types.ErrInvalidRequest, "verifier address: %v", err)
		}
		v, ok := GetVerifier(ctx, a)
		if !ok {
			return nil, types.Wrapf(types.ErrNotFound, "verifier %s", a)
		}
		return v, nil
	}
	return nil, types.Wrapf(types.ErrInvalidRequest, "unknown query path %q", full)
}

// Duty roles.
const (
	DutyCheck     = "check"     // assigned to re-execute a commitment's samples
	DutyCommittee = "committee" // drawn to vote on a challenged unit
)

// Duty is what a verifier has to re-execute of a lease now: the commitment it is
// assigned to check, or the challenge whose committee it sits on, still unanswered
// by it. Providers serve a lease's units and pinned assets to verifiers with a duty
// on it, and to nobody else but the lease's tenant.
type Duty struct {
	Lease      uint64        `json:"lease,string"`
	Verifier   types.Address `json:"verifier"`
	Role       string        `json:"role"`
	Commitment uint64        `json:"commitment,string"`
	Challenge  uint64        `json:"challenge,string,omitempty"`
	Deadline   int64         `json:"deadline,string"`
}

// DutyOf returns verifier a's duty on lease, if it has one: a commitment of the lease
// assigned to it and not yet answered, or a challenge on one whose committee it sits
// on and has not voted in. It reads only the lease's own commitments.
func DutyOf(ctx *types.Context, lease uint64, a types.Address) (Duty, bool) {
	var ids []uint64
	ctx.Store.Iterate(u64key(leaseIdxPrefix, lease), func(_, v []byte) bool {
		ids = append(ids, binary.BigEndian.Uint64(v))
		return true
	})
	for _, id := range ids {
		c, ok := GetCommitment(ctx, id)
		if !ok {
			continue
		}
		if c.State == CommitAssigned && c.Verifier != nil && *c.Verifier == a {
			return Duty{Lease: lease, Verifier: a, Role: DutyCheck, Commitment: c.ID, Deadline: c.Deadline}, true
		}
		for _, chID := range c.Challenges {
			ch, ok := GetChallenge(ctx, chID)
			if !ok || ch.State != ChallengeVoting || !slices.Contains(ch.Committee, a) {
				continue
			}
			if slices.ContainsFunc(ch.Votes, func(v Vote) bool { return v.Verifier == a }) {
				continue
			}
			return Duty{Lease: lease, Verifier: a, Role: DutyCommittee, Commitment: c.ID, Challenge: ch.ID, Deadline: ch.Deadline}, true
		}
	}
	return Duty{}, false
}
