// Package proof is Kiln's one Merkle tree: the commitment a provider puts on chain for
// a lease's outputs (or a job's work units), and inclusion proofs for single items.
//
// The tree is CometBFT's crypto/merkle (RFC 6962: a leaf hashes as
// SHA-256(0x00 || leaf), an inner node as SHA-256(0x01 || left || right), and a level of
// n nodes splits at the largest power of two below n), so a proof is CometBFT's proof
// and verifies with its code. No leaves give SHA-256 of the empty string.
//
// Named items (files, work units) are committed sorted by name, each leaf being
// uint16be(len(name)) || name || sha256: the name is part of what is proven, so a proof
// for one unit cannot be passed off as another's.
package proof

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cometbft/cometbft/crypto/merkle"
)

// MaxNameLen is the longest item name a leaf can carry.
const MaxNameLen = 1<<16 - 1

// MaxDepth bounds a proof's length: a tree of up to 2^62 leaves.
const MaxDepth = 62

// Item is a named unit or file and the SHA-256 of its contents.
type Item struct {
	Name   string
	SHA256 [32]byte
}

// Leaf returns the leaf bytes of an item: uint16be(len(name)) || name || sum. A name
// longer than MaxNameLen is cut to it (names are validated long before this).
func Leaf(name string, sum [32]byte) []byte {
	if len(name) > MaxNameLen {
		name = name[:MaxNameLen]
	}
	b := make([]byte, 0, 2+len(name)+len(sum))
	b = append(b, byte(len(name)>>8), byte(len(name)))
	b = append(b, name...)
	return append(b, sum[:]...)
}

// Root returns the Merkle root of leaves, in the order given.
func Root(leaves [][]byte) [32]byte {
	return [32]byte(merkle.HashFromByteSlices(leaves))
}

// sorted returns items sorted by name, and their leaves.
func sorted(items []Item) ([]Item, [][]byte) {
	s := slices.Clone(items)
	slices.SortFunc(s, func(a, b Item) int { return strings.Compare(a.Name, b.Name) })
	leaves := make([][]byte, len(s))
	for i, it := range s {
		leaves[i] = Leaf(it.Name, it.SHA256)
	}
	return s, leaves
}

// ItemsRoot returns the root committed for a set of named items: the tree over their
// leaves sorted by name. The order items are given in does not matter.
func ItemsRoot(items []Item) [32]byte {
	_, leaves := sorted(items)
	return Root(leaves)
}

// HexBytes is a byte string written in JSON as hex.
type HexBytes []byte

// MarshalJSON writes b as a hex string.
func (b HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(b)) }

// UnmarshalJSON reads a hex string.
func (b *HexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("proof: hash must be a hex string: %w", err)
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("proof: hash %q is not hex: %w", s, err)
	}
	*b = v
	return nil
}

// Proof proves that one leaf is at Index of a tree of Total leaves: Aunts are the
// sibling hashes from the leaf up to the root.
type Proof struct {
	Index int64      `json:"index"`
	Total int64      `json:"total"`
	Aunts []HexBytes `json:"aunts"`
}

// Prove returns the inclusion proof of leaves[index].
func Prove(leaves [][]byte, index int) (Proof, error) {
	if index < 0 || index >= len(leaves) {
		return Proof{}, fmt.Errorf("proof: leaf %d out of range: the tree has %d leaves", index, len(leaves))
	}
	_, proofs := merkle.ProofsFromByteSlices(leaves)
	p := proofs[index]
	out := Proof{Index: p.Index, Total: p.Total, Aunts: make([]HexBytes, len(p.Aunts))}
	for i, a := range p.Aunts {
		out.Aunts[i] = a
	}
	return out, nil
}

// ProveItem returns the inclusion proof of the item named name in ItemsRoot(items).
func ProveItem(items []Item, name string) (Proof, error) {
	s, leaves := sorted(items)
	i, ok := slices.BinarySearchFunc(s, name, func(it Item, n string) int { return strings.Compare(it.Name, n) })
	if !ok {
		return Proof{}, fmt.Errorf("proof: no item named %q", name)
	}
	return Prove(leaves, i)
}

// ErrMismatch is returned (wrapped) when a well-formed proof does not lead to the root.
var ErrMismatch = errors.New("proof: the leaf and proof do not lead to the committed root")

// Verify checks that leaf is at p.Index of the tree whose root is root.
func (p Proof) Verify(root [32]byte, leaf []byte) error {
	if p.Total <= 0 {
		return fmt.Errorf("proof: total %d: a proof needs at least one leaf", p.Total)
	}
	if p.Index < 0 || p.Index >= p.Total {
		return fmt.Errorf("proof: index %d out of range for %d leaves", p.Index, p.Total)
	}
	if len(p.Aunts) > MaxDepth {
		return fmt.Errorf("proof: %d aunts, more than a tree can have (%d)", len(p.Aunts), MaxDepth)
	}
	mp := merkle.Proof{Total: p.Total, Index: p.Index, LeafHash: leafHash(leaf), Aunts: make([][]byte, len(p.Aunts))}
	for i, a := range p.Aunts {
		if len(a) != 32 {
			return fmt.Errorf("proof: aunt %d is %d bytes, want 32", i, len(a))
		}
		mp.Aunts[i] = a
	}
	if err := mp.Verify(root[:], leaf); err != nil {
		return fmt.Errorf("%w (%v)", ErrMismatch, err)
	}
	return nil
}

// VerifyItem checks that item it is in the tree whose root is root (ItemsRoot).
func (p Proof) VerifyItem(root [32]byte, it Item) error {
	if err := p.Verify(root, Leaf(it.Name, it.SHA256)); err != nil {
		return fmt.Errorf("item %q: %w", it.Name, err)
	}
	return nil
}

// leafHash is RFC 6962's leaf hash, as crypto/merkle computes it.
func leafHash(leaf []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, leaf...))
	return h[:]
}
