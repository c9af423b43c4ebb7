package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// runner guards Deploy: a lease the daemon saw close never starts.
type runner struct {
	*lease.Manager
	d *Daemon
}

func (r runner) Deploy(ctx context.Context, l api.LeaseInfo, m api.Manifest) error {
	lk := r.d.leaseLock(l.ID)
	lk.Lock()
	defer lk.Unlock()
	if r.d.isClosed(l.ID) {
		return fmt.Errorf("deploy lease %d: the lease closed on chain", l.ID)
	}
	if r.d.failedToStart(l.ID) {
		return fmt.Errorf("deploy lease %d: %w earlier; the lease is closing on chain with reason workload_failed", l.ID, api.ErrStartFailed)
	}
	o, isMember, err := r.d.clusterOrder(ctx, l.ID)
	if err != nil {
		return err
	}
	if isMember {
		err = r.d.acceptMember(ctx, l, m, o)
	} else {
		err = r.Manager.Deploy(ctx, l, m)
	}
	if err != nil {
		if errors.Is(err, api.ErrStartFailed) {
			r.d.startFailed(l.ID, err)
			return fmt.Errorf("%w; the provider reported it on chain: lease %d closes with reason workload_failed and the tenant's escrow is refunded, nothing paid", err, l.ID)
		}
		return err
	}
	// NB: track the lease now, not only when the block loop next lists it active: a
	// lease that closes within a block or two (a short job, a quick close) would
	// otherwise never be seen, and its workload never stopped.
	if ml, err := r.d.deps.Client.Lease(ctx, l.ID); err == nil && ml.Provider == r.d.self && ml.State == market.LeaseActive {
		r.d.mu.Lock()
		r.d.trackLocked(ml)
		r.d.mu.Unlock()
		r.d.save()
	}
	r.d.metrics.deployed.Inc()
	r.d.log.Info("lease running", "lease", l.ID, "services", len(m.Services))
	return nil
}

// Status adds a cluster member's overlay link to the manager's status; a member
// waiting for its cluster is waiting.
func (r runner) Status(ctx context.Context, id uint64) (api.LeaseStatus, error) {
	st, err := r.Manager.Status(ctx, id)
	ov := r.d.overlayStatus(id)
	if ov == nil {
		return st, err
	}
	if errors.Is(err, api.ErrNotDeployed) {
		st, err = api.LeaseStatus{LeaseID: id, Kind: api.KindBatch, State: api.StateWaiting}, nil
		if m := r.d.memberOf(id); m != nil {
			st.Kind = m.info.Kind
		}
	}
	st.Overlay = ov
	return st, err
}

// LoadImage refuses a lease the daemon saw close. The upload runs without the
// lease's lock, which would hold a Stop for as long as the transfer; a lease
// that closed meanwhile is stopped again, which releases the image.
func (r runner) LoadImage(ctx context.Context, id uint64, rd io.Reader, maxBytes int64, wantID string) (string, error) {
	if r.d.isClosed(id) {
		return "", fmt.Errorf("load image for lease %d: the lease closed on chain", id)
	}
	img, err := r.Manager.LoadImage(ctx, id, rd, maxBytes, wantID)
	if err != nil {
		return "", err
	}
	if r.d.isClosed(id) {
		r.d.stop(id, "closed during an image upload")
		return "", fmt.Errorf("load image for lease %d: the lease closed on chain", id)
	}
	return img, nil
}

// onStart is the lease manager's OnStart: it reports the workload started, from
// which block the lease bills. It runs before the workload can complete, so the
// start reaches the mempool ahead of any completion; one not sent is resent by the
// block loop.
func (d *Daemon) onStart(id uint64) {
	if d.memberOf(id) != nil {
		return // NB: a cluster member starts with the cluster: MsgMemberRunning (startMember)
	}
	d.mu.Lock()
	h := d.height
	d.running[id] = true
	d.mu.Unlock()
	ctx := d.ctx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	if err := d.snd.send(ctx, &market.MsgStartLease{Provider: d.self, LeaseID: id}); err != nil {
		d.log.Warn("report lease started; will retry", "lease", id, "err", err)
		return
	}
	d.metrics.started.Inc()
	d.mu.Lock()
	d.startSent[id] = h
	d.mu.Unlock()
}

// failedToStart reports whether lease id's workload failed to start here.
func (d *Daemon) failedToStart(id uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.st.Completions[id]
	return ok && rec == startFailedRecord
}

// startFailed records that lease id's workload could not be started and reports the
// lease failed at once, which closes it (workload_failed) and refunds the tenant;
// the block loop resends the report until the lease is closed.
func (d *Daemon) startFailed(id uint64, cause error) {
	d.mu.Lock()
	d.st.Completions[id] = startFailedRecord
	h := d.height
	d.mu.Unlock()
	d.freeGPUs(id)
	d.metrics.startFailures.Inc()
	d.metrics.executorErrors.WithLabelValues("start").Inc()
	d.log.Warn("workload failed to start; reporting the lease failed", "lease", id, "err", cause)
	ctx := d.ctx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	if err := d.snd.send(ctx, &market.MsgCompleteLease{Provider: d.self, LeaseID: id, Failed: true}); err != nil {
		d.log.Error("report failed start; will retry", "lease", id, "err", err)
		return
	}
	d.mu.Lock()
	d.compSent[id] = h
	d.mu.Unlock()
}

// freeGPUs gives lease id's GPUs back once its tasks have exited (a batch job done,
// a workload that never started) and saves the state: the chain frees the lease's
// capacity when it closes, while its outputs may stay for output_retention, and the
// next lease must find the GPUs free.
func (d *Daemon) freeGPUs(id uint64) {
	d.gpus.release(id)
	d.mu.Lock()
	d.st.GPUs = d.gpus.held()
	d.mu.Unlock()
	d.save()
}

// onComplete is the lease manager's OnComplete: it records the completion (so a
// restart resends it) and sends MsgCompleteLease at once.
func (d *Daemon) onComplete(id uint64, root [32]byte, codes map[string]int) {
	d.mu.Lock()
	// A non-zero (or unknown, -1) exit code of any task makes the job failed.
	failed := false
	for _, c := range codes {
		failed = failed || c != 0
	}
	d.st.Completions[id] = completionRecord(root, failed)
	if !failed {
		// NB: saved (by freeGPUs) before anything is sent: a restart from here on
		// still commits the work (resendCommits).
		d.st.Commits[id] = d.st.Leases[id]
	}
	h := d.height
	d.mu.Unlock()
	d.freeGPUs(id)
	d.dropMember(id) // NB: a finished rank needs its overlay no more
	d.log.Info("lease completed locally", "lease", id, "outputs_root", hex.EncodeToString(root[:]), "exit_codes", codes)
	ctx := d.ctx
	if ctx == nil || ctx.Err() != nil {
		return // the next start resends it
	}
	if !failed {
		d.sendCommit(ctx, id)
	}
	if err := d.snd.send(ctx, &market.MsgCompleteLease{Provider: d.self, LeaseID: id, OutputHash: root[:], Failed: failed}); err != nil {
		d.log.Error("send completion; will retry", "lease", id, "err", err)
		return
	}
	d.metrics.completions.Inc()
	d.mu.Lock()
	d.compSent[id] = h
	d.mu.Unlock()
}

// leases keeps the daemon's leases in step with the chain.
func (d *Daemon) leases(ctx context.Context, h int64) error {
	c := d.deps.Client
	active, err := c.Leases(ctx, market.LeaseFilter{State: market.LeaseActive, Provider: d.self})
	if err != nil {
		return err
	}
	now := map[uint64]market.Lease{}
	var msgs []types.Msg
	var what []string
	// A service whose workload died must not go on heartbeating (and billing): it is
	// reported failed, which closes its lease with reason workload_failed.
	failedSvc := map[uint64]bool{}
	// Leases whose workload runs here but whose start the chain has not recorded
	// (the report was lost, or the daemon restarted): reported again.
	unreported := map[uint64]bool{}
	for _, l := range active {
		if d.mgr == nil {
			continue
		}
		st, err := d.mgr.Status(ctx, l.ID)
		if err != nil {
			continue
		}
		if l.Kind == market.KindService && st.State == api.StateFailed {
			failedSvc[l.ID] = true
		}
	}
	d.mu.Lock()
	for _, l := range active {
		// NB: only a start the manager confirmed (OnStart, or a workload recovered
		// after a restart), never a deploy still in progress, which may yet fail.
		if l.StartedHeight == 0 && d.running[l.ID] && d.members[l.ID] == nil {
			unreported[l.ID] = true
		}
	}
	for _, l := range active {
		now[l.ID] = l
		if unreported[l.ID] {
			if s, sent := d.startSent[l.ID]; !sent || h-s >= 3 {
				msgs = append(msgs, &market.MsgStartLease{Provider: d.self, LeaseID: l.ID})
				what = append(what, fmt.Sprintf("started %d", l.ID))
				d.startSent[l.ID] = h
			}
		}
		if failedSvc[l.ID] {
			if s, sent := d.compSent[l.ID]; !sent || h-s >= 3 {
				msgs = append(msgs, &market.MsgCompleteLease{Provider: d.self, LeaseID: l.ID, Failed: true})
				what = append(what, fmt.Sprintf("service %d failed", l.ID))
				d.compSent[l.ID] = h
			}
			continue
		}
		d.trackLocked(l)
		if root, ok := d.st.Completions[l.ID]; ok {
			if s, sent := d.compSent[l.ID]; !sent || h-s >= 3 {
				b, failed := parseCompletion(root)
				msgs = append(msgs, &market.MsgCompleteLease{Provider: d.self, LeaseID: l.ID, OutputHash: b, Failed: failed})
				what = append(what, fmt.Sprintf("complete %d", l.ID))
				d.compSent[l.ID] = h
				continue // NB: the completion closes the lease; a heartbeat beside it would fail
			}
		}
		if h-max(l.LastHeartbeat, d.lastHB[l.ID]) >= d.every {
			msgs = append(msgs, &market.MsgHeartbeat{Provider: d.self, LeaseID: l.ID})
			what = append(what, fmt.Sprintf("heartbeat %d", l.ID))
			d.lastHB[l.ID] = h
		}
	}
	var gone []uint64
	for id := range d.st.Leases {
		if _, ok := now[id]; !ok {
			gone = append(gone, id)
		}
	}
	var expired []uint64
	for id, at := range d.st.Retain {
		if d.now().After(at) {
			expired = append(expired, id)
			delete(d.st.Retain, id)
		}
	}
	d.mu.Unlock()

	if len(msgs) > 0 {
		errs := d.snd.sendEach(ctx, msgs)
		for i, err := range errs {
			d.log.Warn("tx refused", "msg", what[i], "err", err)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
	changed := len(expired) > 0
	for _, id := range gone {
		l, err := c.Lease(ctx, id)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			return err
		}
		if err == nil && l.State == market.LeaseActive && l.Provider == d.self {
			continue // became active between the two queries: next block
		}
		changed = true
		d.closeLocal(id, l)
	}
	for _, id := range expired {
		d.stop(id, "output retention over")
	}
	if changed {
		d.save()
	}
	return nil
}

// closeLocal handles a tracked lease the chain closed (or gave to another attempt).
func (d *Daemon) closeLocal(id uint64, l market.Lease) {
	d.mu.Lock()
	att := d.st.Leases[id]
	delete(d.st.Leases, id)
	delete(d.st.Completions, id)
	delete(d.lastHB, id)
	delete(d.compSent, id)
	delete(d.startSent, id)
	delete(d.running, id)
	kind := d.kinds[id]
	delete(d.kinds, id)
	d.closed[id] = true
	keep := l.Attempt == att && l.Provider == d.self && kind == market.KindBatch && retained(l.CloseReason) && d.cfg.OutputRetention > 0
	if keep {
		d.st.Retain[id] = d.now().Add(time.Duration(d.cfg.OutputRetention))
	}
	d.mu.Unlock()
	d.chain.forget(id)
	d.log.Info("lease closed on chain", "lease", id, "reason", l.CloseReason, "height", l.ClosedHeight, "outputs_kept", keep)
	if !keep {
		d.stop(id, "lease closed: "+l.CloseReason)
	}
}

// startFailedRecord is the completion persisted for a workload that never started:
// no outputs root, failed.
const startFailedRecord = ":failed"

// completionRecord is how a completion is persisted: the hex outputs root, with
// ":failed" when the workload failed.
func completionRecord(root [32]byte, failed bool) string {
	r := hex.EncodeToString(root[:])
	if failed {
		r += ":failed"
	}
	return r
}

// parseCompletion reads what completionRecord wrote.
func parseCompletion(rec string) (root []byte, failed bool) {
	h, flag, _ := strings.Cut(rec, ":")
	root, _ = hex.DecodeString(h)
	return root, flag == "failed"
}

// retained reports whether a batch lease closed for reason keeps its outputs (and
// logs) for OutputRetention: the tenant wants them whether the job succeeded or not.
func retained(reason string) bool {
	return reason == market.ReasonCompleted || reason == market.ReasonWorkloadFailed
}

// trackLocked records an active lease of this provider (once per attempt). d.mu held.
func (d *Daemon) trackLocked(l market.Lease) {
	if att, ok := d.st.Leases[l.ID]; ok && att == l.Attempt {
		return
	}
	d.st.Leases[l.ID] = l.Attempt
	d.kinds[l.ID] = l.Kind
	delete(d.closed, l.ID)
	d.metrics.won.Inc()
	d.log.Info("lease won", "lease", l.ID, "attempt", l.Attempt, "price", l.Price, "gpus", l.GPUs, "created", l.CreatedHeight)
}
