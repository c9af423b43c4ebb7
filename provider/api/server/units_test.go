package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/provider/api"
)

// duties are the fake chain's verification duties: "lease/account" → a check due.
var (
	dutiesMu sync.Mutex
	duties   = map[string]bool{}
)

func dutyKey(lease uint64, account string) string { return fmt.Sprintf("%d/%s", lease, account) }

func setDuty(lease uint64, account string, on bool) {
	dutiesMu.Lock()
	defer dutiesMu.Unlock()
	duties[dutyKey(lease, account)] = on
}

func (c *fakeChain) HasDuty(_ context.Context, lease uint64, account string) (bool, error) {
	dutiesMu.Lock()
	defer dutiesMu.Unlock()
	return duties[dutyKey(lease, account)], nil
}

// A lease's units are served with Merkle proofs under the root of its units.json, by
// id or by committed index, to its tenant and to the verifiers the chain assigned to
// check the lease, only while they are.
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

	refused := func(who string, err error) {
		t.Helper()
		if e := apiError(t, err); e.Status != http.StatusForbidden || e.Code != api.CodeNotAssigned {
			t.Fatalf("%s: %+v, want 403 %s", who, e, api.CodeNotAssigned)
		}
	}
	_, err = stranger.UnitAt(ctx, 1, 0)
	refused("a stranger", err)
	// A duty on another lease opens nothing here.
	setDuty(2, bob, true)
	_, err = stranger.UnitAt(ctx, 1, 0)
	refused("a verifier assigned another lease", err)
	setDuty(1, bob, true)
	u, err = stranger.UnitAt(ctx, 1, 0)
	check("assigned verifier by index", u, err, "a", "A", 0)
	// Once it answered, the duty is over and so is its access.
	setDuty(1, bob, false)
	_, err = stranger.UnitAt(ctx, 1, 0)
	refused("a verifier that answered", err)

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

// The assets a job pins in job.json (a scene, a dataset) are served, with their hash,
// to the tenant and to assigned verifiers only; names it does not pin are not served,
// nor is a file whose bytes are not the pinned ones.
func TestAssetsServedToAssignedVerifiers(t *testing.T) {
	h := newHarness(t)
	owner := h.tenant(t, alice, true)
	verifier := h.tenant(t, bob, true)
	h.chain.addLease(batchLease(3, alice))
	ctx := context.Background()
	data := "1,2,3\n"
	sum := sha256.Sum256([]byte(data))
	// scene.blend is pinned with the hash of other bytes than it holds.
	if _, err := owner.SendManifest(ctx, 3, shManifest(`cd "$KILN_OUT" && printf '1,2,3\n' > data.csv && printf X > scene.blend && printf S > secret.txt && `+
		`printf '{"kind":"train","params":{},"assets":{"data.csv":"%s","scene.blend":"%s"}}' $(sha256sum data.csv | cut -d" " -f1) `+
		hex.EncodeToString(sum[:])+` > job.json`)); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, owner, 3, api.StateCompleted, api.StateFailed); st.State != api.StateCompleted {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	var b bytes.Buffer
	if _, err := verifier.DownloadAsset(ctx, 3, "data.csv", &b); apiError(t, err).Code != api.CodeNotAssigned {
		t.Fatalf("unassigned verifier: %v, want %s", err, api.CodeNotAssigned)
	}
	setDuty(3, bob, true)
	t.Cleanup(func() { setDuty(3, bob, false) })
	fi, err := verifier.DownloadAsset(ctx, 3, "data.csv", &b)
	if err != nil || b.String() != data || fi.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("DownloadAsset(data.csv) = %+v, %q, %v; want %q with its hash", fi, b.String(), err, data)
	}
	for _, tt := range []struct {
		name   string
		status int
		code   string
	}{
		{"secret.txt", http.StatusNotFound, api.CodeNotPinned}, // an output, not an asset
		{"job.json", http.StatusNotFound, api.CodeNotPinned},
		{"scene.blend", http.StatusInternalServerError, api.CodeInternal}, // not the pinned bytes
		{"a b", http.StatusBadRequest, api.CodeBadName},
	} {
		_, err := verifier.DownloadAsset(ctx, 3, tt.name, &bytes.Buffer{})
		if e := apiError(t, err); e.Status != tt.status || e.Code != tt.code {
			t.Errorf("DownloadAsset(%s) = %+v, want %d %s", tt.name, e, tt.status, tt.code)
		}
	}
	if _, err := owner.DownloadAsset(ctx, 3, "data.csv", &bytes.Buffer{}); err != nil {
		t.Fatalf("tenant: %v", err)
	}
}
