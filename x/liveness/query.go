package liveness

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/kiln-network/kiln/types"
)

// ChallengeFilter selects challenges; zero fields match anything. Pending selects the
// challenges awaiting the provider (open or answered).
type ChallengeFilter struct {
	Provider types.Address
	State    string
	Lease    uint64
	Pending  bool
}

func (f ChallengeFilter) keep(c Challenge) bool {
	return (f.Provider.IsZero() || c.Provider == f.Provider) && (f.State == "" || c.State == f.State) &&
		(f.Lease == 0 || c.Lease == f.Lease) && (!f.Pending || c.State == StateOpen || c.State == StateAnswered)
}

// Challenges returns the challenges matching f, by ID. A provider's pending ones come
// from an index (O(pending)); anything else walks every challenge.
func Challenges(ctx *types.Context, f ChallengeFilter) []Challenge {
	out := []Challenge{}
	if !f.Provider.IsZero() && (f.Pending || f.State == StateOpen || f.State == StateAnswered) {
		prefix := cat(openPfx, f.Provider[:])
		var ids []uint64
		ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
			ids = append(ids, binary.BigEndian.Uint64(k[len(prefix):]))
			return true
		})
		for _, id := range ids {
			if c, ok := GetChallenge(ctx, id); ok && f.keep(c) {
				out = append(out, c)
			}
		}
		return out
	}
	ctx.Store.Iterate(challengePfx, func(k, v []byte) bool {
		var c Challenge
		if err := json.Unmarshal(v, &c); err != nil {
			panic(fmt.Sprintf("liveness: corrupt challenge at %q: %v", k, err))
		}
		if f.keep(c) {
			out = append(out, c)
		}
		return true
	})
	return out
}

// CheckInvariants returns an error unless every pending challenge is indexed under its
// provider and queued at its current deadline, which lies ahead (EndBlock fails the
// due ones); nothing else is indexed or queued; and every running lease's record
// either has one pending challenge or is scheduled ahead. O(challenges): for tests and
// audits.
func CheckInvariants(ctx *types.Context) error {
	pending := map[uint64]Challenge{}
	for _, c := range Challenges(ctx, ChallengeFilter{Pending: true}) {
		pending[c.ID] = c
		due := c.Deadline
		if c.State == StateAnswered {
			due = c.RevealDeadline
		}
		if due <= ctx.Height {
			return fmt.Errorf("liveness: challenge %d is %s past its deadline %d (height %d)", c.ID, c.State, due, ctx.Height)
		}
		if _, ok := ctx.Store.Get(cat(duePfx, heightKey(due), u64(c.ID))); !ok {
			return fmt.Errorf("liveness: %s challenge %d is not queued at its deadline %d", c.State, c.ID, due)
		}
		if _, ok := ctx.Store.Get(cat(openPfx, c.Provider[:], u64(c.ID))); !ok {
			return fmt.Errorf("liveness: %s challenge %d is missing from %s's index", c.State, c.ID, c.Provider)
		}
	}
	var err error
	count := func(prefix []byte, idAt func(k []byte) uint64) int {
		n := 0
		ctx.Store.Iterate(prefix, func(k, _ []byte) bool {
			n++
			if _, ok := pending[idAt(k)]; !ok && err == nil {
				err = fmt.Errorf("liveness: %q names challenge %d, which is not pending", k, idAt(k))
			}
			return true
		})
		return n
	}
	queued := count(duePfx, func(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) })
	indexed := count(openPfx, func(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-8:]) })
	if err != nil {
		return err
	}
	if queued != len(pending) || indexed != len(pending) {
		return fmt.Errorf("liveness: %d pending challenges, %d queued, %d indexed", len(pending), queued, indexed)
	}
	ctx.Store.Iterate(leasePfx, func(k, v []byte) bool {
		var r leaseRecord
		if e := json.Unmarshal(v, &r); e != nil {
			err = fmt.Errorf("liveness: corrupt lease record at %q: %v", k, e)
			return false
		}
		id := binary.BigEndian.Uint64(k[len(leasePfx):])
		switch {
		case r.Open != 0 && r.Next != 0:
			err = fmt.Errorf("liveness: lease %d has challenge %d open and another scheduled at %d", id, r.Open, r.Next)
		case r.Open != 0:
			if c, ok := pending[r.Open]; !ok || c.Lease != id {
				err = fmt.Errorf("liveness: lease %d names challenge %d, which is not its pending challenge", id, r.Open)
			}
		case r.Next != 0:
			if _, ok := ctx.Store.Get(cat(leaseSchedPfx, heightKey(r.Next), u64(id))); !ok || r.Next <= ctx.Height {
				err = fmt.Errorf("liveness: lease %d's next challenge at %d is not scheduled ahead (height %d)", id, r.Next, ctx.Height)
			}
		}
		return err == nil
	})
	return err
}
