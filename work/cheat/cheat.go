// Package cheat fakes the units of a verifiable job the ways a dishonest provider
// would, the cheap way and well-formed, so that only re-execution tells (tests, the
// demo's cheating provider).
package cheat

import (
	"context"
	"fmt"

	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
)

// Pick names the cheat for unit id, the i-th of job's units in id order: a
// render.Cheat, train.Cheat or matmul.Cheat of the job's kind; "" leaves the unit
// honest.
type Pick func(job units.Job, i int, id string) string

// Dir fakes, in place, the units of the job in dir that pick names a cheat for, and
// rewrites units.json to match, so that the root a provider commits is over its fakes.
// A training checkpoint is faked from the checkpoint before it as the job directory
// then holds it (faked or not), so the checkpoints still form a hash chain. It
// returns how many units it faked; a job dir without units.json or job.json is left
// alone (0, nil).
func Dir(ctx context.Context, dir string, pick Pick) (int, error) {
	job, err := units.ReadJob(dir)
	if err != nil {
		return 0, nil // not a verifiable job
	}
	set, err := units.Read(dir)
	if err != nil {
		return 0, nil
	}
	faked := 0
	ids := set.IDs() // NB: sorted; checkpoint ids sort by step
	for i, id := range ids {
		c := pick(job, i, id)
		if c == "" {
			continue
		}
		b, err := forge(ctx, job, dir, set, id, c)
		if err != nil {
			return faked, fmt.Errorf("fake unit %s of the %s job in %s (%s): %w", id, job.Kind, dir, c, err)
		}
		file := set[id].File
		delete(set, id) // NB: Put records a new unit; this one is replaced
		if err := set.Put(dir, id, file, b); err != nil {
			return faked, err
		}
		faked++
	}
	if faked > 0 {
		if err := set.Write(dir); err != nil {
			return faked, err
		}
	}
	return faked, nil
}

func forge(ctx context.Context, job units.Job, dir string, set units.Set, id, c string) ([]byte, error) {
	switch job.Kind {
	case render.Kind:
		return render.Workload{}.Forge(ctx, job, id, render.Cheat(c))
	case matmul.Kind:
		return matmul.Workload{}.Forge(ctx, job, id, matmul.Cheat(c))
	case train.Kind:
		w := train.Workload{}
		need, err := w.Inputs(job, id)
		if err != nil {
			return nil, err
		}
		in := map[string][]byte{}
		for _, n := range need {
			if in[n], err = set.Load(dir, n); err != nil {
				return nil, err
			}
		}
		return w.Forge(ctx, job, id, in, train.Cheat(c))
	}
	return nil, fmt.Errorf("no cheat for kind %q", job.Kind)
}
