package app

import (
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// Performance pricing's expected scores follow the catalogue: a faster model scores
// more, an unknown one has none.
func TestCatalogueScore(t *testing.T) {
	h100, ok1 := catalogueScore(nil, types.Address{}, market.GPUSpec{Model: "h100"})
	a100, ok2 := catalogueScore(nil, types.Address{}, market.GPUSpec{Model: "a100"})
	if !ok1 || !ok2 || h100 <= a100 || a100 == 0 {
		t.Fatalf("h100 %d (%v), a100 %d (%v): want both known, h100 faster", h100, ok1, a100, ok2)
	}
	if s, ok := catalogueScore(nil, types.Address{}, market.GPUSpec{Model: "no-such-gpu"}); ok {
		t.Fatalf("unknown model scored %d", s)
	}
}
