package units

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Progress is told how far a long job is: done of total units, and what is running.
// A nil Progress is allowed everywhere one is taken.
type Progress func(done, total int, what string)

// Workload is one kind of verifiable work (render, train, matmul). Implementations MUST
// be deterministic in what RunUnit returns for a given job, unit and inputs, up to the
// tolerance Compare allows (documented in each workload's package doc).
type Workload interface {
	// Kind is the name job.json's "kind" carries.
	Kind() string
	// Run performs the whole job, writing its outputs, units.json and job.json under out.
	Run(ctx context.Context, job Job, out string, progress Progress) error
	// Inputs names the units whose committed bytes RunUnit needs to recompute unitID
	// (a training segment starts from the previous checkpoint); nil when the job alone
	// suffices. A verifier fetches them, with their Merkle proofs, before RunUnit.
	Inputs(job Job, unitID string) ([]string, error)
	// RunUnit recomputes unit unitID alone: its bytes as Run would have written them.
	RunUnit(ctx context.Context, job Job, unitID string, inputs map[string][]byte) ([]byte, error)
	// Compare returns nil when claimed is an honest result for unitID given recomputed,
	// and a *MismatchError saying why not otherwise (the tolerance policy).
	Compare(job Job, unitID string, claimed, recomputed []byte) error
}

// Batcher is a Workload that re-executes several units more cheaply together than one by
// one (Blender or PyTorch start once instead of once per unit). RunUnits MUST return what
// RunUnit would for each id.
type Batcher interface {
	RunUnits(ctx context.Context, job Job, ids []string, inputs map[string][]byte) (map[string][]byte, error)
}

// InputChecker is a Workload whose units start from other committed units (a training
// segment from the previous checkpoint). CheckInputs returns a *MismatchError when the
// committed inputs of unitID cannot be what an honest run wrote (a checkpoint that
// does not parse, or sits at the wrong step): the unit that depends on them is then
// fraud, since no honest run leads to it, rather than a re-execution that cannot be
// done. Any other error means the check could not be done.
type InputChecker interface {
	CheckInputs(job Job, unitID string, inputs map[string][]byte) error
}

// MismatchError is a unit whose claimed output is not an honest one: evidence of fraud,
// not a failure to check.
type MismatchError struct {
	Unit   string
	Reason string
}

func (e *MismatchError) Error() string { return fmt.Sprintf("unit %s: %s", e.Unit, e.Reason) }

// Mismatch returns a *MismatchError for unit.
func Mismatch(unit, format string, args ...any) error {
	return &MismatchError{Unit: unit, Reason: fmt.Sprintf(format, args...)}
}

// IsMismatch reports whether err is (or wraps) a *MismatchError.
func IsMismatch(err error) bool {
	var m *MismatchError
	return errors.As(err, &m)
}

// Registry maps job kinds to workloads: the one place a verifier goes to re-execute any
// unit of any workload.
type Registry struct {
	kinds map[string]Workload
}

// NewRegistry returns a registry of ws; two workloads of one kind panic (a wiring bug).
func NewRegistry(ws ...Workload) *Registry {
	r := &Registry{kinds: map[string]Workload{}}
	for _, w := range ws {
		if _, dup := r.kinds[w.Kind()]; dup {
			panic("units: workload kind " + w.Kind() + " registered twice")
		}
		r.kinds[w.Kind()] = w
	}
	return r
}

// Kinds returns the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	ks := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Lookup returns the workload of kind.
func (r *Registry) Lookup(kind string) (Workload, error) {
	w, ok := r.kinds[kind]
	if !ok {
		return nil, fmt.Errorf("workload kind %q: unknown (known: %v)", kind, r.Kinds())
	}
	return w, nil
}

// CheckUnit re-executes unitID of job and compares it with claimed: nil when honest, a
// *MismatchError when not, another error when the check itself could not be done.
func (r *Registry) CheckUnit(ctx context.Context, job Job, unitID string, claimed []byte, inputs map[string][]byte) error {
	w, err := r.Lookup(job.Kind)
	if err != nil {
		return err
	}
	if ic, ok := w.(InputChecker); ok {
		if err := ic.CheckInputs(job, unitID, inputs); err != nil {
			return err
		}
	}
	got, err := w.RunUnit(ctx, job, unitID, inputs)
	if err != nil {
		return fmt.Errorf("re-execute unit %s: %w", unitID, err)
	}
	return w.Compare(job, unitID, claimed, got)
}

// CheckUnits re-executes the units of claimed (unit id -> claimed bytes) together when the
// workload is a Batcher, one by one otherwise, and returns the verdict of each: nil when
// honest, a *MismatchError when not. An error means the check could not be done.
func (r *Registry) CheckUnits(ctx context.Context, job Job, claimed map[string][]byte, inputs map[string][]byte) (map[string]error, error) {
	w, err := r.Lookup(job.Kind)
	if err != nil {
		return nil, err
	}
	out := map[string]error{}
	ids := make([]string, 0, len(claimed))
	for id := range claimed {
		if ic, ok := w.(InputChecker); ok {
			if err := ic.CheckInputs(job, id, inputs); IsMismatch(err) {
				out[id] = err // NB: nothing honest to re-execute from
				continue
			} else if err != nil {
				return nil, err
			}
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return out, nil
	}
	got := map[string][]byte{}
	if b, ok := w.(Batcher); ok && len(ids) > 1 {
		if got, err = b.RunUnits(ctx, job, ids, inputs); err != nil {
			return nil, fmt.Errorf("re-execute units %v: %w", ids, err)
		}
	} else {
		for _, id := range ids {
			if got[id], err = w.RunUnit(ctx, job, id, inputs); err != nil {
				return nil, fmt.Errorf("re-execute unit %s: %w", id, err)
			}
		}
	}
	for _, id := range ids {
		re, ok := got[id]
		if !ok {
			return nil, fmt.Errorf("re-execute units: no result for %s", id)
		}
		err := w.Compare(job, id, claimed[id], re)
		if err != nil && !IsMismatch(err) {
			return nil, err
		}
		out[id] = err
	}
	return out, nil
}

// Sample picks min(k, len(ids)) distinct ids, determined by seed alone and independent of
// the order of ids: the ones with the smallest SHA-256(seed || id). Returned sorted.
func Sample(ids []string, k int, seed []byte) []string {
	type scored struct {
		id    string
		score [32]byte
	}
	all := make([]scored, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		h := sha256.New()
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(seed)))
		h.Write(n[:])
		h.Write(seed)
		h.Write([]byte(id))
		var s scored
		s.id = id
		copy(s.score[:], h.Sum(nil))
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool {
		if c := compare32(all[i].score, all[j].score); c != 0 {
			return c < 0
		}
		return all[i].id < all[j].id
	})
	if k > len(all) {
		k = len(all)
	}
	if k < 0 {
		k = 0
	}
	out := make([]string, k)
	for i := range out {
		out[i] = all[i].id
	}
	sort.Strings(out)
	return out
}

func compare32(a, b [32]byte) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Verdicts of a Report.
const (
	VerdictOK    = "ok"
	VerdictFraud = "fraud"
)

// Report is the result of Verify (`kiln work verify --output json`).
type Report struct {
	Verdict string            `json:"verdict"`
	Checked int               `json:"checked"`
	Failed  []string          `json:"failed"`
	Reasons map[string]string `json:"reasons,omitempty"` // failed unit -> why
	Root    string            `json:"root"`              // hex Merkle root of units.json
	Units   int               `json:"units"`
	Kind    string            `json:"kind"`
}

// Verify re-executes k units of the job in dir, sampled with seed, and compares each with
// what dir holds. A unit whose file does not match units.json, or whose recomputation does
// not match, is failed; an error means the check could not be done (bad directory, unknown
// kind, a re-execution that broke), never a verdict.
func (r *Registry) Verify(ctx context.Context, dir string, k int, seed []byte, progress Progress) (Report, error) {
	if k < 1 {
		return Report{}, fmt.Errorf("verify: samples %d: must be at least 1", k)
	}
	set, err := Read(dir)
	if err != nil {
		return Report{}, fmt.Errorf("verify %s: %w", dir, err)
	}
	job, err := ReadJob(dir)
	if err != nil {
		return Report{}, fmt.Errorf("verify %s: %w", dir, err)
	}
	w, err := r.Lookup(job.Kind)
	if err != nil {
		return Report{}, fmt.Errorf("verify %s: %w", dir, err)
	}
	root := set.Root()
	rep := Report{Verdict: VerdictOK, Failed: []string{}, Root: fmt.Sprintf("%x", root[:]), Units: len(set), Kind: job.Kind}
	fail := func(id, why string) {
		rep.Failed = append(rep.Failed, id)
		if rep.Reasons == nil {
			rep.Reasons = map[string]string{}
		}
		rep.Reasons[id] = why
	}
	picked := Sample(set.IDs(), k, seed)
	claimed := map[string][]byte{}
	inputs := map[string][]byte{}
	for i, id := range picked {
		if progress != nil {
			progress(i, len(picked), "load unit "+id)
		}
		rep.Checked++
		b, err := set.Load(dir, id)
		if errors.Is(err, ErrHashMismatch) {
			fail(id, err.Error())
			continue
		} else if err != nil {
			return Report{}, fmt.Errorf("verify %s: %w", dir, err)
		}
		need, err := w.Inputs(job, id)
		if err != nil {
			return Report{}, fmt.Errorf("verify %s: unit %s: %w", dir, id, err)
		}
		bad := false
		for _, in := range need {
			ib, err := set.Load(dir, in)
			if errors.Is(err, ErrHashMismatch) {
				fail(id, fmt.Sprintf("input %s", err))
				bad = true
				break
			} else if err != nil {
				return Report{}, fmt.Errorf("verify %s: unit %s input: %w", dir, id, err)
			}
			inputs[in] = ib
		}
		if !bad {
			claimed[id] = b
		}
	}
	if progress != nil {
		progress(len(picked)-len(claimed), len(picked), fmt.Sprintf("re-executing %d units", len(claimed)))
	}
	if len(claimed) > 0 {
		verdicts, err := r.CheckUnits(ctx, job, claimed, inputs)
		if err != nil {
			return Report{}, fmt.Errorf("verify %s: %w", dir, err)
		}
		for _, id := range picked {
			if err := verdicts[id]; err != nil {
				fail(id, err.Error())
			}
		}
	}
	sort.Strings(rep.Failed)
	if progress != nil {
		progress(len(picked), len(picked), "done")
	}
	if len(rep.Failed) > 0 {
		rep.Verdict = VerdictFraud
	}
	return rep, nil
}
