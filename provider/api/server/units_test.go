package server_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"sync"
	"testing"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/provider/api"
)

// verifiers is the fake chain's verifier registry.
var (
	verifiersMu sync.Mutex
	verifiers   = map[string]bool{}
)

func (c *fakeChain) IsVerifier(_ context.Context, account string) (bool, error) {
	verifiersMu.Lock()
	defer verifiersMu.Unlock()
	return verifiers[account], nil
}

// A lease's units are served with Merkle proofs under the root of its units.json, by
// id or by committed index, to its tenant and to registered verifiers only.
func TestUnitsServedWithProofs(t *testing.T) {
	h := newHarness(t)
	owner := h.tenant(t, alice, true)
	stranger := h.tenant(t, bob, true)
	h.chain.addLease(batchLease(1, alice))
	ctx := context.Background()
	if _, err := owner.SendManifest(ctx, 1, shManifest(`cd "$KILN_OUT" && printf A > a.bin && printf BB > b.bin && `+
		`printf '{"a":{"file":"a.bin","sha256":"%s"},"b":{"file":"b.bin","sha256":"%s"}}' `+
		`$(sha256sum a.bin | cut -d" " -f1) $(sha256sum b.bin | cut -d" " -f1) > units.json`)); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, owner, 1, api.StateCompleted, api.StateFailed); st.State != api.StateCompleted {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	items := []proof.Item{{Name: "a", SHA256: sha256.Sum256([]byte("A"))}, {Name: "b", SHA256: sha256.Sum256([]byte("BB"))}}
	root := proof.ItemsRoot(items)
	check := func(who string, u api.UnitProof, err error, name, data string, index int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if u.Unit != name || string(u.Data) != data || u.Proof.Index != index || u.Proof.Total != 2 {
			t.Fatalf("%s: got %+v, want unit %s (%q) at %d of 2", who, u, name, data, index)
		}
		if err := u.Proof.VerifyItem(root, proof.Item{Name: u.Unit, SHA256: sha256.Sum256(u.Data)}); err != nil {
			t.Fatalf("%s: proof does not lead to the root: %v", who, err)
		}
	}
	u, err := owner.Unit(ctx, 1, "b")
	check("tenant by id", u, err, "b", "BB", 1)

	_, err = stranger.UnitAt(ctx, 1, 0)
	if e := apiError(t, err); e.Status != http.StatusForbidden || e.Code != api.CodeNotVerifier {
		t.Fatalf("unregistered stranger: %+v, want 403 %s", e, api.CodeNotVerifier)
	}
	verifiersMu.Lock()
	verifiers[bob] = true
	verifiersMu.Unlock()
	u, err = stranger.UnitAt(ctx, 1, 0)
	check("verifier by index", u, err, "a", "A", 0)

	for _, tt := range []struct {
		get    func() error
		status int
	}{
		{func() error { _, err := owner.Unit(ctx, 1, "zz"); return err }, http.StatusNotFound},
		{func() error { _, err := owner.UnitAt(ctx, 1, 2); return err }, http.StatusNotFound},
		{func() error { _, err := owner.Unit(ctx, 1, "../x"); return err }, http.StatusBadRequest},
	} {
		if e := apiError(t, tt.get()); e.Status != tt.status {
			t.Fatalf("got %+v, want status %d", e, tt.status)
		}
	}
}
