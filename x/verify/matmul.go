package verify

import (
	"fmt"

	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/units"
)

// matmulCheck is the chain's own check of a disputed matmul row block: Freivalds'
// algorithm with a random vector from the block's randomness (matmul.CheckBlocks),
// O(n²) (generating A and B) for n up to max_direct_n; bigger jobs go to a committee.
// NB: float64 sums; on architectures that fuse multiply-adds a rounding may differ in
// the last bits, which the tolerance (UnitTolerance·n²) absorbs by nine orders of
// magnitude, so every validator decides alike.
func matmulCheck(p Params, job []byte, unit string, data []byte, seed int64) (bool, string, error) {
	j, err := units.ParseJob(job)
	if err != nil {
		return false, "the committed job is not a valid job: " + err.Error(), nil
	}
	var mp matmul.UnitParams
	if err := j.DecodeParams(&mp); err != nil || mp.Validate() != nil {
		return false, fmt.Sprintf("the committed job's matmul params are invalid: %v", err), nil
	}
	if mp.N > int(p.MaxDirectN) {
		return false, "", fmt.Errorf("matmul n %d is over max_direct_n %d", mp.N, p.MaxDirectN)
	}
	res, err := matmul.CheckBlocks(j, map[string][]byte{unit: data}, seed)
	if err != nil {
		return false, "the unit is not a row block of the committed job: " + err.Error(), nil
	}
	if e := res[unit]; e != nil {
		return false, e.Error(), nil
	}
	return true, "Freivalds' check holds", nil
}
