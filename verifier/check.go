// Package verifier is Kiln's verifier: it re-executes units of committed work sampled
// by the chain, reports mismatches with their Merkle proofs, and votes on committees
// (`kiln verifier run`).
package verifier

import (
	"context"
	"sort"

	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/units"
)

// Check re-executes the claimed units of job (unit id → the bytes the provider
// committed) and returns the ids that are not honest results, with why, sorted: matmul
// blocks by Freivalds' algorithm (O(n²) for the job, not O(r·n²) per block), every
// other kind through reg (units.Registry.CheckUnits: Blender or PyTorch start once for
// all of them) with inputs (the committed units that RunUnit needs, e.g. the previous
// checkpoint); a job with assets must carry the directory holding them (Job.WithDir). An error means the check could not
// be done, never a verdict.
func Check(ctx context.Context, reg *units.Registry, job units.Job, claimed, inputs map[string][]byte, seed int64) ([]string, map[string]string, error) {
	why := map[string]string{}
	if job.Kind == matmul.Kind {
		res, err := matmul.CheckBlocks(job, claimed, seed)
		if err != nil {
			return nil, nil, err
		}
		for id, e := range res {
			if e != nil {
				why[id] = e.Error()
			}
		}
	} else {
		res, err := reg.CheckUnits(ctx, job, claimed, inputs)
		if err != nil {
			return nil, nil, err
		}
		for id, e := range res {
			if e != nil {
				why[id] = e.Error()
			}
		}
	}
	failed := make([]string, 0, len(why))
	for id := range why {
		failed = append(failed, id)
	}
	sort.Strings(failed)
	return failed, why, nil
}
