package server

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/kiln-network/kiln/provider/vault"
)

// Random interleavings of uploads to one lease: whatever order their pieces
// arrive and end in, the inputs stored never exceed the limit, and an upload
// refused found no room for its next piece.
func TestInputQuotaInterleavings(t *testing.T) {
	const limit = 1000
	names := []string{"a", "b", "c", "d"}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var q inputQuota
		store := map[string]int64{} // what the vault holds
		list := func() ([]vault.File, error) {
			var fs []vault.File
			for n, size := range store {
				fs = append(fs, vault.File{Name: n, Size: size})
			}
			return fs, nil
		}
		type live struct {
			u          *upload
			size, sent int64
		}
		var running []*live
		check := func(step string) {
			var sum int64
			for _, s := range store {
				sum += s
			}
			if sum > limit {
				t.Fatalf("seed %d, %s: %d bytes stored (%v), over the limit of %d", seed, step, sum, store, limit)
			}
		}
		for range 200 {
			switch op := rng.IntN(3); {
			case op == 0 || len(running) == 0: // begin, sized or chunked
				name, size := names[rng.IntN(len(names))], int64(rng.IntN(600))
				want := int64(0)
				if rng.IntN(2) == 0 {
					want = size
				}
				u, _, err := q.begin(1, name, limit, want, list)
				if errors.Is(err, errUploadInProgress) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if u != nil {
					running = append(running, &live{u: u, size: size})
				}
			default: // a piece of a running upload arrives; it ends after its last
				i := rng.IntN(len(running))
				l := running[i]
				n := min(int64(1+rng.IntN(200)), l.size-l.sent)
				ok := n == 0 || l.u.grow(n)
				l.sent += n
				if ok && l.sent < l.size && rng.IntN(20) != 0 {
					continue
				}
				if ok && l.sent == l.size {
					store[l.u.name] = l.size // the vault renames it in, then the upload ends
					check("commit")
					l.u.end(&vault.File{Name: l.u.name, Size: l.size})
				} else {
					l.u.end(nil) // refused, or the client went away
				}
				running = append(running[:i], running[i+1:]...)
			}
			check("step")
		}
		for _, l := range running {
			l.u.end(nil)
		}
		if len(q.leases) != 0 {
			t.Fatalf("seed %d: %d lease accounts left after every upload ended", seed, len(q.leases))
		}
	}
}
