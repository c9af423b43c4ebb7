package bank

import (
	"testing"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
)

// CheckInvariants reports the same broken denom on every run: which of several is named
// must not depend on map iteration order.
func TestCheckInvariantsReportsDenomsInOrder(t *testing.T) {
	const want = "balances of uaaa add up to 5 with no recorded supply"
	for run := 0; run < 50; run++ {
		ctx := &types.Context{Store: store.NewMem()}
		for _, d := range []string{"uccc", "uaaa", "ubbb", "uddd"} {
			setUint(ctx, balanceKey(types.Address{1}, d), 5)
		}
		if err := CheckInvariants(ctx); err == nil || err.Error() != want {
			t.Fatalf("run %d: CheckInvariants = %v, want %q", run, err, want)
		}
	}
}
