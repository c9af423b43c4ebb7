package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/verify"
)

// commitMsg returns the work commitment of lease id's sealed outputs: when they hold
// units.json and job.json (a verifiable workload), the Merkle root of its units, their
// count, kind and job. It returns nil, nil for outputs without units, and an error when
// units.json names a file the outputs do not hold with that hash: a provider never
// commits a root its own files do not match.
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
	read := func(name string, limit int64) ([]byte, error) {
		rc, _, err := vl.OutputReader(name)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, limit))
	}
	idx, err := read(units.FileName, units.MaxIndexSize+1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", units.FileName, err)
	}
	set, err := units.Parse(idx)
	if err != nil {
		return nil, err
	}
	jb, err := read(units.JobFile, verify.MaxJobBytes+1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", units.JobFile, err)
	}
	if len(jb) > verify.MaxJobBytes {
		return nil, fmt.Errorf("%s is over %d bytes: too big to commit on chain", units.JobFile, verify.MaxJobBytes)
	}
	job, err := units.ParseJob(jb)
	if err != nil {
		return nil, err
	}
	// NB: a job with pinned assets (a Blender scene, a training set) cannot be
	// re-executed by a verifier yet: providers serve units, not assets, to verifiers.
	// Committing it would get honest verifiers slashed for silence, so it is left to
	// tenant disputes until an assets route exists.
	if len(job.Assets) > 0 {
		return nil, fmt.Errorf("%s job pins %d assets, which verifiers cannot fetch yet: not committed for spot checks", job.Kind, len(job.Assets))
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
// (the lease still completes: it is then verified only by tenant disputes).
func (d *Daemon) sendCommit(ctx context.Context, id uint64) {
	m, err := d.commitMsg(id)
	if err != nil {
		d.log.Warn("outputs not committed for verification", "lease", id, "err", err)
		return
	}
	if m == nil {
		return
	}
	if err := d.snd.send(ctx, m); err != nil {
		d.log.Warn("send work commitment", "lease", id, "err", err)
		return
	}
	d.log.Info("work committed", "lease", id, "kind", m.Kind, "units", m.Units, "root", hex.EncodeToString(m.Root))
}
