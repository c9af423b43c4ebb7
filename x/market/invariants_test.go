package market

import (
	"testing"

	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
)

// CheckInvariants reports the same broken denom on every run: which of several is named
// must not depend on map iteration order.
func TestCheckInvariantsReportsDenomsInOrder(t *testing.T) {
	const want = "market: open bids' deposits of 5uaaa are not in the module account"
	for run := 0; run < 50; run++ {
		ctx := &types.Context{Store: store.NewMem(), Height: 1}
		for i, d := range []string{"uccc", "uaaa", "ubbb", "uddd"} {
			p := types.Address{byte(i + 1)}
			setJSON(ctx, bidKey(7, p), Bid{OrderID: 7, Provider: p, Price: 1, Deposit: types.NewCoin(d, 5)})
		}
		if err := CheckInvariants(ctx); err == nil || err.Error() != want {
			t.Fatalf("run %d: CheckInvariants = %v, want %q", run, err, want)
		}
	}
}
