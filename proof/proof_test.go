package proof

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func items(n int) []Item {
	out := make([]Item, n)
	for i := range out {
		name := fmt.Sprintf("unit-%03d", n-1-i) // reverse order: roots must not care
		out[i] = Item{Name: name, SHA256: sha256.Sum256([]byte(name))}
	}
	return out
}

// The root of known leaves is pinned: a change of tree shape or leaf encoding moves
// every commitment already on chain.
func TestRootGolden(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	} {
		got := ItemsRoot(items(tc.n))
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("ItemsRoot(%d items) = %x, want %s", tc.n, got, tc.want)
		}
	}
	// One item: RFC 6962 leaf hash of its leaf.
	it := items(1)[0]
	if got, want := ItemsRoot([]Item{it}), [32]byte(leafHash(Leaf(it.Name, it.SHA256))); got != want {
		t.Errorf("one item root %x, want its leaf hash %x", got, want)
	}
	// Three items: H(1 || H(1||l0||l1) || l2), the split at 2.
	_, leaves := sorted(items(3))
	inner := func(a, b []byte) []byte { h := sha256.Sum256(append(append([]byte{1}, a...), b...)); return h[:] }
	want := inner(inner(leafHash(leaves[0]), leafHash(leaves[1])), leafHash(leaves[2]))
	if got := ItemsRoot(items(3)); hex.EncodeToString(got[:]) != hex.EncodeToString(want) {
		t.Errorf("three items root %x, want %x", got, want)
	}
}

func TestProveVerifyEveryItem(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 13} {
		its := items(n)
		root := ItemsRoot(its)
		for _, it := range its {
			p, err := ProveItem(its, it.Name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var back Proof
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("round trip %s: %v", b, err)
			}
			if err := back.VerifyItem(root, it); err != nil {
				t.Errorf("n=%d %s: %v", n, it.Name, err)
			}
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	its := items(5)
	root := ItemsRoot(its)
	p, err := ProveItem(its, "unit-002")
	if err != nil {
		t.Fatal(err)
	}
	other := its[0]
	wrongSum := Item{Name: "unit-002", SHA256: sha256.Sum256([]byte("forged"))}
	flip := func(q Proof) Proof {
		q.Aunts = append([]HexBytes(nil), q.Aunts...)
		a := append(HexBytes(nil), q.Aunts[0]...)
		a[0] ^= 1
		q.Aunts[0] = a
		return q
	}
	for _, tc := range []struct {
		name     string
		p        Proof
		it       Item
		mismatch bool
	}{
		{"another item's proof", p, other, true},
		{"right name, forged contents", p, wrongSum, true},
		{"a flipped aunt", flip(p), its[2], true},
		{"wrong index", Proof{Index: p.Index + 1, Total: p.Total, Aunts: p.Aunts}, Item{Name: "unit-002", SHA256: sha256.Sum256([]byte("unit-002"))}, true},
		{"zero total", Proof{Index: 0, Total: 0}, its[0], false},
		{"index past total", Proof{Index: 5, Total: 5, Aunts: p.Aunts}, its[0], false},
		{"short aunt", Proof{Index: p.Index, Total: p.Total, Aunts: []HexBytes{{1, 2}}}, its[0], false},
		{"too deep", Proof{Index: 0, Total: 1, Aunts: make([]HexBytes, MaxDepth+1)}, its[0], false},
	} {
		err := tc.p.VerifyItem(root, tc.it)
		if err == nil {
			t.Errorf("%s: verified", tc.name)
			continue
		}
		if got := errors.Is(err, ErrMismatch); got != tc.mismatch {
			t.Errorf("%s: errors.Is(ErrMismatch) = %v (%v)", tc.name, got, err)
		}
	}
	if _, err := ProveItem(its, "missing"); err == nil {
		t.Error("ProveItem of a missing name succeeded")
	}
	if _, err := Prove(nil, 0); err == nil {
		t.Error("Prove on no leaves succeeded")
	}
}

func FuzzProofJSON(f *testing.F) {
	its := items(4)
	p, _ := ProveItem(its, "unit-001")
	b, _ := json.Marshal(p)
	f.Add(b)
	f.Add([]byte(`{"index":0,"total":1,"aunts":[]}`))
	f.Add([]byte(`{"index":-1,"total":99999999999,"aunts":["zz"]}`))
	root := ItemsRoot(its)
	f.Fuzz(func(t *testing.T, data []byte) {
		var q Proof
		if json.Unmarshal(data, &q) != nil {
			return
		}
		// Whatever decodes must never panic, and must only verify a leaf that is in the tree.
		for _, it := range append(its, Item{Name: "x"}) {
			if q.VerifyItem(root, it) == nil && it.Name == "x" {
				t.Fatalf("proof %s verified an item not in the tree", data)
			}
		}
	})
}
