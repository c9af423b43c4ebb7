package units

import (
	"fmt"

	"github.com/kiln-network/kiln/proof"
)

// Items returns the units as Merkle items: name = unit id, SHA256 = the file's hash.
// Call on a validated Set (Parse, Read and Put only make valid ones).
func (s Set) Items() []proof.Item {
	items := make([]proof.Item, 0, len(s))
	for _, id := range s.IDs() {
		sum, err := ParseSum(s[id].SHA256)
		if err != nil {
			panic(fmt.Sprintf("units: Items on an unvalidated set: unit %s: %v", id, err))
		}
		items = append(items, proof.Item{Name: id, SHA256: sum})
	}
	return items
}

// Root is the Merkle root a provider commits for s: proof.ItemsRoot over its items.
func (s Set) Root() [32]byte { return proof.ItemsRoot(s.Items()) }

// Prove returns unit id's item and its inclusion proof under s.Root().
func (s Set) Prove(id string) (proof.Item, proof.Proof, error) {
	if _, ok := s[id]; !ok {
		return proof.Item{}, proof.Proof{}, fmt.Errorf("unit %q: %w", id, ErrUnknownUnit)
	}
	sum, _ := ParseSum(s[id].SHA256)
	it := proof.Item{Name: id, SHA256: sum}
	p, err := proof.ProveItem(s.Items(), id)
	return it, p, err
}

// Root reads DIR/units.json, checks that every unit's file has its recorded hash, and
// returns the Merkle root over the units: what the provider commits on chain. A provider
// never commits a root its own files do not match.
func Root(dir string) ([32]byte, error) {
	s, err := Read(dir)
	if err != nil {
		return [32]byte{}, err
	}
	for _, id := range s.IDs() {
		if _, err := s.Load(dir, id); err != nil {
			return [32]byte{}, err
		}
	}
	return s.Root(), nil
}

// VerifyUnit checks data fetched as unit id against a committed root with its inclusion
// proof: what a verifier does with a unit it fetched from a provider before re-executing
// it. A wrong byte, another unit's proof or a proof for another root is refused.
func VerifyUnit(root [32]byte, id string, data []byte, p proof.Proof) error {
	if err := ValidID(id); err != nil {
		return err
	}
	sum, _ := ParseSum(Sum(data))
	if err := p.VerifyItem(root, proof.Item{Name: id, SHA256: sum}); err != nil {
		return fmt.Errorf("unit %s: %w", id, err)
	}
	return nil
}
