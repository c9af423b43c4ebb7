package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/work/catalog"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/verify"
)

// commitMsg returns the work commitment of lease id's sealed outputs: when they hold
// units.json and job.json (a verifiable workload), the Merkle root of its units, their
// count, kind and job. It returns nil, nil for outputs without units, and an error when
// units.json names a file the outputs do not hold with that hash: a provider never
// commits a root its own files do not match, nor a job verifiers cannot re-execute (an
// unknown kind, a pinned asset it does not hold).
func (d *Daemon) commitMsg(id uint64) (*verify.MsgCommit, error) {
	if d.vault == nil {
		return nil, nil
	}
	vl, err := d.vault.Find(id)
	if err != nil {
		return nil, nil
	}
	files, err := vl.Outputs()
	if err != nil {
		return nil, err
	}
	byName := map[string]vault.File{}
	for _, f := range files {
		byName[f.Name] = f
	}
	if _, ok := byName[units.FileName]; !ok {
		return nil, nil
	}
	if _, ok := byName[units.JobFile]; !ok {
		return nil, nil
	}
	idx, err := vl.ReadOutput(units.FileName, units.MaxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", units.FileName, err)
	}
	set, err := units.Parse(idx)
	if err != nil {
		return nil, err
	}
	jb, err := vl.ReadOutput(units.JobFile, verify.MaxJobBytes)
	if errors.Is(err, vault.ErrTooLarge) {
		return nil, fmt.Errorf("%s is over %d bytes: too big to commit on chain", units.JobFile, verify.MaxJobBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", units.JobFile, err)
	}
	job, err := units.ParseJob(jb)
	if err != nil {
		return nil, err
	}
	// NB: a job no verifier can re-execute (a kind it does not know, params its
	// workload refuses) would get honest verifiers slashed for silence: not committed.
	w, err := catalog.Registry().Lookup(job.Kind)
	if err != nil {
		return nil, err
	}
	if len(set) > 0 {
		if _, err := w.Inputs(job, set.IDs()[0]); err != nil {
			return nil, fmt.Errorf("%s job: %w", job.Kind, err)
		}
	}
	// NB: verifiers fetch the assets the job pins (GET /v1/leases/{id}/assets/{name})
	// to re-execute its units: a provider never commits a job whose assets it does
	// not hold with the pinned hash, which would leave its verifiers nothing to run.
	for _, name := range slices.Sorted(maps.Keys(job.Assets)) {
		want := job.Assets[name]
		f, ok := byName[name]
		if !ok || f.SHA256Hex() != want {
			return nil, fmt.Errorf("%s job pins asset %s with sha256 %s, which is not among the sealed outputs: verifiers could not re-execute it", job.Kind, name, want)
		}
	}
	for _, uid := range set.IDs() {
		u := set[uid]
		f, ok := byName[u.File]
		if !ok || hex.EncodeToString(f.SHA256[:]) != u.SHA256 {
			return nil, fmt.Errorf("unit %s: %s is not among the sealed outputs with sha256 %s", uid, u.File, u.SHA256)
		}
	}
	if len(set) == 0 || len(set) > verify.MaxUnits {
		return nil, fmt.Errorf("%d units: must be 1 to %d", len(set), verify.MaxUnits)
	}
	root := set.Root()
	return &verify.MsgCommit{Provider: d.self, LeaseID: id, Kind: job.Kind, Root: root[:], Units: uint32(len(set)), Job: jb}, nil
}

// sendCommit commits lease id's units on chain, when it has any; failures are logged
// (the lease still completes: it is then verified only by tenant disputes). A commit
// the node could not be asked about stays pending and resendCommits tries again; one
// that can never be made (no units, a job verifiers cannot run, refused by the chain)
// is dropped.
func (d *Daemon) sendCommit(ctx context.Context, id uint64) {
	m, err := d.commitMsg(id)
	if err != nil {
		d.log.Warn("outputs not committed for verification", "lease", id, "err", err)
		d.commitDone(id)
		return
	}
	if m == nil {
		d.commitDone(id)
		return
	}
	d.mu.Lock()
	d.commSent[id] = d.height
	d.mu.Unlock()
	if err := d.snd.send(ctx, m); err != nil {
		var te *client.TxError
		if errors.As(err, &te) {
			d.log.Warn("work commitment refused", "lease", id, "err", err)
			d.commitDone(id)
			return
		}
		d.log.Warn("send work commitment; will retry", "lease", id, "err", err)
		return
	}
	d.log.Info("work committed", "lease", id, "kind", m.Kind, "units", m.Units, "root", hex.EncodeToString(m.Root))
}

// commitDone forgets lease id's pending commitment.
func (d *Daemon) commitDone(id uint64) {
	d.mu.Lock()
	_, had := d.st.Commits[id]
	delete(d.st.Commits, id)
	delete(d.commSent, id)
	d.mu.Unlock()
	if had {
		d.save()
	}
}

// resendCommits sends again, at most every 3 blocks, the work commitments recorded
// pending (Commits) that the chain does not show yet, and forgets those it shows.
func (d *Daemon) resendCommits(ctx context.Context, h int64) {
	d.mu.Lock()
	due := map[uint64]uint32{}
	for id, attempt := range d.st.Commits {
		if s, sent := d.commSent[id]; !sent || h-s >= 3 {
			due[id] = attempt
		}
	}
	d.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(due)) {
		if ctx.Err() != nil {
			return
		}
		cs, err := d.deps.Client.Commitments(ctx, client.CommitmentFilter{Lease: id, Provider: d.self})
		if err != nil {
			d.log.Warn("look up work commitment; will retry", "lease", id, "err", err)
			continue
		}
		if slices.ContainsFunc(cs, func(c verify.Commitment) bool { return c.Attempt == due[id] }) {
			d.commitDone(id)
			continue
		}
		d.sendCommit(ctx, id)
	}
}
