package daemon

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/netns"
	"github.com/kiln-network/kiln/overlay"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/rendezvous"
	"github.com/kiln-network/kiln/x/market"
)

// Cluster members. A lease whose order is a member of a cluster (Order.MemberOf)
// does not start when its manifest arrives. The daemon makes the lease a network
// namespace (executor.Namespacer), brings up the member's overlay link in it and
// reports the member ready with the link's key and endpoint (MsgMemberReady). As the
// other members report theirs, it adds them as the link's peers; once every member
// is ready for the cluster's epoch and every handshake is done, it starts the rank:
// the rendezvous environment (rendezvous.Env, KILN_CLUSTER_ID, KILN_CLUSTER_EPOCH),
// the MPI hostfile as the input `hostfile`, the tasks in the namespace; then
// MsgMemberRunning, from which the lease bills.
//
// A member is one rank: one task (one service, count 1), which starts torchrun or
// mpirun itself to use several GPUs. A rank that fails in a cluster whose policy is
// replace is held (lease.Config.Hold): its outputs stay, nothing is reported. When
// the chain re-places a lost member it bumps the epoch; every member reports ready
// again and the held ranks restart, in the same namespace and over the same outputs
// (rank 0's checkpoints), with KILN_CLUSTER_EPOCH set to the new epoch: the job's
// command resumes (kiln work train --resume DIR starts afresh when DIR holds no
// checkpoint and resumes from the last one otherwise). A rank held longer than
// the chain takes to notice a lost provider, with no new epoch, is reported failed.
//
// A member's overlay key is derived from the provider's account key and the lease
// (memberKey): a restarted daemon re-attaches its running ranks (reattachMembers),
// bringing each link up again in the lease's namespace with the same key, address
// and endpoint, so the peers need nothing new; the rank's connections carry on once
// the link is back (they lose packets only while it is down). A member that cannot
// be re-attached (its rank no longer runs, its endpoint's port was taken) is
// reported failed.

// MasterPort is rank 0's rendezvous port (MASTER_PORT) in epoch 0: torch.distributed's
// usual. Epoch e uses MasterPort + e%1000 (masterPort): a rank restarted for a new epoch
// must not reach the old epoch's rank 0, which its provider may not have stopped yet
// (it would join a run that is ending, and torch's store client aborts the process when
// that rank 0 goes); on the next port it finds nothing until the new rank 0 listens, and
// retries. NB: every member has a namespace of its own, so no other program holds them.
const MasterPort = 29500

// masterPort is the rendezvous port of a cluster's epoch.
func masterPort(epoch uint32) int { return MasterPort + int(epoch%1000) }

// member is one cluster member this provider runs.
type member struct {
	lease   uint64
	cluster uint64
	rank    int
	policy  string
	slots   int // GPUs per member: the hostfile's slots
	info    api.LeaseInfo
	man     api.Manifest
	netns   string
	link    *overlay.Link

	// Guarded by the daemon's mu.
	readyEpoch  uint32
	readySent   int64  // height the last MsgMemberReady was sent at (0: never)
	runEpoch    int64  // the epoch the rank was started in; -1 before the first start
	runningSent int64  // height the last MsgMemberRunning was sent at
	busy        bool   // a start is in progress
	heldAt      int64  // height the rank was first seen held in its epoch (0: not held)
	peers       string // the peers last set on the link (peerKey)
	startFails  int    // failed starts in a row in epoch failEpoch
	failEpoch   uint32
	startAfter  int64 // no start is tried before this height (startBackoff)
}

// maxStartBackoff caps the blocks between a member's start tries: 64 blocks, 13 s
// at 200 ms blocks, is well inside the chain's heartbeat timeout, so a member whose
// peers come late still starts long before anyone gives the cluster up.
const maxStartBackoff = 64

// startBackoff is how many blocks a member's start waits after fails failed tries in
// a row in one epoch: 1, 2, 4, … up to maxStartBackoff; a peer that never answers
// then costs a try and a log line every maxStartBackoff blocks, not every block.
func startBackoff(fails int) int64 {
	if fails <= 0 {
		return 0
	}
	return min(int64(1)<<min(fails-1, 16), maxStartBackoff)
}

// clusterSupport says why this provider cannot run cluster members, or "" when it can:
// its executor must give a lease a network namespace and the overlay needs root,
// iproute2, a TUN device and an address other providers reach.
func (d *Daemon) clusterSupport(ex executor.Executor) string {
	if _, ok := ex.(executor.Namespacer); !ok {
		return fmt.Sprintf("the %T executor cannot give a lease a network namespace of its own", ex)
	}
	if why := netns.Available(); why != "" {
		return why
	}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("no TUN device for the overlay: %v", err)
	}
	f.Close()
	if _, why := d.cfg.overlayIP(); why != "" {
		return why
	}
	return ""
}

func (d *Daemon) memberOf(id uint64) *member {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.members[id]
}

// holdMember is the lease manager's Hold: a failed rank of a cluster that re-places
// lost members waits for the next epoch.
func (d *Daemon) holdMember(id uint64) bool {
	m := d.memberOf(id)
	return m != nil && m.policy == market.FailReplace
}

// clusterOrder returns lease id's order if it is a cluster member's.
func (d *Daemon) clusterOrder(ctx context.Context, id uint64) (market.Order, bool, error) {
	o, err := d.chain.order(ctx, id)
	if err != nil {
		return o, false, fmt.Errorf("deploy lease %d: look up its order: %w", id, err)
	}
	return o, o.MemberOf != 0, nil
}

// acceptMember takes member lease l's manifest: it makes the lease's namespace and
// overlay link and reports the member ready; the rank starts with the cluster
// (memberStep). The caller holds the lease's lock.
func (d *Daemon) acceptMember(ctx context.Context, l api.LeaseInfo, man api.Manifest, o market.Order) error {
	if d.memberOf(l.ID) != nil {
		return fmt.Errorf("deploy lease %d: %w", l.ID, api.ErrAlreadyDeployed)
	}
	if _, err := d.mgr.Status(ctx, l.ID); err == nil {
		return fmt.Errorf("deploy lease %d: %w", l.ID, api.ErrAlreadyDeployed)
	}
	if d.clusterWhy != "" {
		return fmt.Errorf("deploy lease %d: rank %d of cluster %d: this provider cannot run cluster members: %s", l.ID, o.Rank, o.MemberOf, d.clusterWhy)
	}
	if err := api.CheckManifest(man, l.Resources); err != nil {
		return fmt.Errorf("deploy lease %d: %w", l.ID, err)
	}
	tasks := 0
	for _, s := range man.Services {
		tasks += int(s.Count)
		if len(s.Expose) > 0 {
			return fmt.Errorf("deploy lease %d: manifest: service %s exposes ports: a cluster member's rank reaches the others over the overlay, and nothing else reaches it", l.ID, s.Name)
		}
	}
	if tasks != 1 {
		return fmt.Errorf("deploy lease %d: manifest: %d tasks: a cluster member runs one (its rank: one service, count 1; start torchrun or mpirun in it for one process per GPU)", l.ID, tasks)
	}
	cl, err := d.deps.Client.Cluster(ctx, o.MemberOf)
	if err != nil {
		return fmt.Errorf("deploy lease %d: cluster %d: %w", l.ID, o.MemberOf, err)
	}
	ns, err := d.mgr.Executor().(executor.Namespacer).LeaseNetNS(ctx, lease.ExecLeaseID(l.ID))
	if err != nil {
		return fmt.Errorf("deploy lease %d: %w", l.ID, err)
	}
	ip, _ := d.cfg.overlayIP()
	link, err := overlay.Up(ctx, overlay.Config{LeaseID: clusterName(o.MemberOf), Rank: int(o.Rank), Key: d.memberKey(l.ID),
		Listen: netip.AddrPortFrom(ip, 0), NetNS: ns, Log: d.log})
	if err != nil {
		d.releaseNetNS(l.ID)
		return fmt.Errorf("deploy lease %d: %w", l.ID, err)
	}
	m := &member{lease: l.ID, cluster: o.MemberOf, rank: int(o.Rank), policy: cl.Policy, slots: max(1, int(o.Groups[0].GPU.Units)),
		info: l, man: man, netns: ns, link: link, runEpoch: -1}
	d.mu.Lock()
	d.members[l.ID] = m
	d.st.Members[l.ID] = true
	h := d.height
	d.mu.Unlock()
	d.save()
	d.log.Info("cluster member accepted: overlay up, reporting ready", "lease", l.ID, "cluster", m.cluster, "rank", m.rank,
		"addr", link.Addr(), "endpoint", link.Endpoint(), "epoch", cl.Epoch)
	d.sendReady(ctx, m, cl.Epoch, h)
	return nil
}

// clusterName is the overlay's name of cluster id: its subnet's seed, the same on
// every provider.
func clusterName(id uint64) string { return "cluster-" + strconv.FormatUint(id, 10) }

// ClusterSubnet is cluster id's overlay subnet; rank r is overlay.MemberAddr of it.
func ClusterSubnet(id uint64) netip.Prefix { return overlay.SubnetFor(clusterName(id)) }

func (d *Daemon) sendReady(ctx context.Context, m *member, epoch uint32, h int64) {
	msg := &market.MsgMemberReady{Provider: d.self, Cluster: m.cluster, Rank: uint32(m.rank), Epoch: epoch,
		PublicKey: m.link.PublicKey().String(), Endpoint: m.link.Endpoint().String()}
	d.mu.Lock()
	m.readyEpoch, m.readySent = epoch, max(h, 1)
	d.mu.Unlock()
	if err := d.snd.send(ctx, msg); err != nil && ctx.Err() == nil {
		d.log.Warn("report cluster member ready; will retry", "lease", m.lease, "cluster", m.cluster, "rank", m.rank, "epoch", epoch, "err", err)
	}
}

// releaseNetNS removes lease id's namespace if no task of it is left.
func (d *Daemon) releaseNetNS(id uint64) {
	if r, ok := d.mgr.Executor().(executor.NetNSReleaser); ok {
		if err := r.ReleaseLeaseNetNS(context.Background(), lease.ExecLeaseID(id)); err != nil {
			d.log.Error("release the lease's network namespace", "lease", id, "err", err)
		}
	}
}

// dropMember closes lease id's overlay link and namespace, if it is a member: its
// lease stopped.
func (d *Daemon) dropMember(id uint64) {
	d.mu.Lock()
	m := d.members[id]
	delete(d.members, id)
	_, saved := d.st.Members[id]
	delete(d.st.Members, id)
	d.mu.Unlock()
	if saved {
		d.save()
	}
	if m == nil {
		return
	}
	m.link.Close()
	d.releaseNetNS(id)
	d.log.Info("cluster member closed: overlay down", "lease", id, "cluster", m.cluster, "rank", m.rank)
}

// memberKey is lease id's overlay key: an HMAC of the lease under the provider's
// account key, so that a restarted daemon has it again without any overlay key on
// disk, and no one without the account key can compute it.
func (d *Daemon) memberKey(id uint64) overlay.Key {
	mac := hmac.New(sha256.New, d.deps.Key.Seed())
	fmt.Fprintf(mac, "kiln cluster member overlay key %d", id)
	return overlay.KeyFrom([32]byte(mac.Sum(nil)))
}

// reattachMembers, once at start, brings up again the links of the active members
// an earlier run of the daemon held, whose ranks still run (reattachMember); the
// others are reported failed: their ranks cannot reach the others any more (a
// running rank fails by itself; one not started would wait for ever).
func (d *Daemon) reattachMembers(ctx context.Context) {
	d.mu.Lock()
	var ids []uint64
	for id := range d.st.Members {
		if _, active := d.st.Leases[id]; active && d.members[id] == nil {
			ids = append(ids, id)
		} else if !active {
			delete(d.st.Members, id)
		}
	}
	d.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		if err := d.reattachMember(ctx, id); err != nil {
			d.mu.Lock()
			delete(d.st.Members, id)
			d.mu.Unlock()
			d.startFailed(id, fmt.Errorf("the cluster member's overlay link was lost when the provider daemon restarted: %w", err))
		}
	}
	d.save()
}

// reattachMember brings member lease id's link up again, as the chain knows it (its
// key and endpoint), in the lease's namespace, if its rank runs in the cluster's
// epoch.
func (d *Daemon) reattachMember(ctx context.Context, id uint64) error {
	st, err := d.mgr.Status(ctx, id)
	if err != nil {
		return fmt.Errorf("its rank: %w", err)
	}
	if st.State != api.StateRunning {
		return fmt.Errorf("its rank is %s, not running", st.State)
	}
	o, isMember, err := d.clusterOrder(ctx, id)
	if err != nil || !isMember {
		return fmt.Errorf("its order: member %v, %v", isMember, err)
	}
	cl, err := d.deps.Client.Cluster(ctx, o.MemberOf)
	if err != nil {
		return fmt.Errorf("cluster %d: %w", o.MemberOf, err)
	}
	if int(o.Rank) >= len(cl.Members) {
		return fmt.Errorf("cluster %d has no rank %d", cl.ID, o.Rank)
	}
	me := cl.Members[o.Rank]
	key := d.memberKey(id)
	if me.Lease != id || me.Provider != d.self || me.State != market.MemberRunning || me.PublicKey != key.Public().String() {
		return fmt.Errorf("cluster %d's rank %d is lease %d of %s, %s, key %s: not this lease's running rank with this provider's key",
			cl.ID, o.Rank, me.Lease, me.Provider, me.State, me.PublicKey)
	}
	ep, err := netip.ParseAddrPort(me.Endpoint)
	if err != nil {
		return fmt.Errorf("its endpoint on chain %q: %w", me.Endpoint, err)
	}
	ns, err := d.mgr.Executor().(executor.Namespacer).LeaseNetNS(ctx, lease.ExecLeaseID(id))
	if err != nil {
		return err
	}
	link, err := overlay.Up(ctx, overlay.Config{LeaseID: clusterName(o.MemberOf), Rank: int(o.Rank), Key: key, Listen: ep, NetNS: ns, Log: d.log})
	if err != nil {
		return err
	}
	d.mu.Lock()
	h := max(d.height, 1)
	// NB: no info or manifest: the rank is deployed, so a later epoch restarts it
	// (lease.Manager.Restart) and never deploys it afresh.
	m := &member{lease: id, cluster: o.MemberOf, rank: int(o.Rank), policy: cl.Policy, slots: max(1, int(o.Groups[0].GPU.Units)),
		netns: ns, link: link, runEpoch: int64(cl.Epoch), readyEpoch: cl.Epoch, readySent: h, runningSent: h}
	d.members[id] = m
	d.mu.Unlock()
	d.log.Info("cluster member re-attached: overlay up again, its rank runs on", "lease", id, "cluster", m.cluster, "rank", m.rank,
		"addr", link.Addr(), "endpoint", link.Endpoint(), "epoch", cl.Epoch)
	return nil
}

// closeMembers closes every member's link when the daemon stops: the links live in
// this process.
func (d *Daemon) closeMembers() {
	d.mu.Lock()
	ms := make([]*member, 0, len(d.members))
	for _, m := range d.members {
		ms = append(ms, m)
	}
	d.mu.Unlock()
	for _, m := range ms {
		m.link.Close()
	}
}

// memberStep moves every member on for block h: ready reports for the cluster's
// epoch, the link's peers as members report theirs, the rank's start once all are
// ready, running reports, and held ranks restarted or, with no new epoch in time,
// reported failed.
func (d *Daemon) memberStep(ctx context.Context, h int64) error {
	d.mu.Lock()
	ms := make([]*member, 0, len(d.members))
	for _, m := range d.members {
		ms = append(ms, m)
	}
	d.mu.Unlock()
	slices.SortFunc(ms, func(a, b *member) int { return cmp.Compare(a.lease, b.lease) })
	clusters := map[uint64]market.ClusterLease{}
	var errs []error
	for _, m := range ms {
		cl, ok := clusters[m.cluster]
		if !ok {
			var err error
			if cl, err = d.deps.Client.Cluster(ctx, m.cluster); err != nil {
				errs = append(errs, fmt.Errorf("cluster %d: %w", m.cluster, err))
				continue
			}
			clusters[m.cluster] = cl
		}
		d.memberBlock(ctx, h, m, cl)
	}
	return errors.Join(errs...)
}

func (d *Daemon) memberBlock(ctx context.Context, h int64, m *member, cl market.ClusterLease) {
	if m.rank >= len(cl.Members) {
		return
	}
	me := cl.Members[m.rank]
	held := d.mgr.Held(m.lease)
	if cl.State == market.ClusterDone || cl.State == market.ClusterFailed || me.Lease != m.lease || me.Provider != d.self {
		if held {
			d.log.Info("cluster ended; reporting the held rank failed", "lease", m.lease, "cluster", cl.ID, "state", cl.State)
			d.mgr.Finish(m.lease)
		}
		return // NB: the lease closes on chain, and its stop drops the member
	}
	d.setPeers(m, cl)
	d.mu.Lock()
	busy, runEpoch := m.busy, m.runEpoch
	resendReady := me.State == market.MemberPending && (m.readyEpoch != cl.Epoch || h-m.readySent >= 3)
	resendRunning := runEpoch == int64(cl.Epoch) && me.State == market.MemberReady && h-m.runningSent >= 3
	start := !busy && runEpoch < int64(cl.Epoch) && (cl.State == market.ClusterReady || cl.State == market.ClusterRunning) &&
		(m.failEpoch != cl.Epoch || h >= m.startAfter)
	if start {
		m.busy = true
	}
	giveUp := false
	switch {
	case !held || runEpoch < int64(cl.Epoch):
		m.heldAt = 0
	case m.heldAt == 0:
		m.heldAt = h
	case h-m.heldAt > d.holdBlocks:
		giveUp = true
	}
	d.mu.Unlock()
	if giveUp {
		d.log.Warn("held rank: no member was re-placed in time; reporting it failed", "lease", m.lease, "cluster", cl.ID, "rank", m.rank,
			"epoch", cl.Epoch, "held_blocks", d.holdBlocks)
		d.mgr.Finish(m.lease)
		return
	}
	if resendReady && !busy {
		d.sendReady(ctx, m, cl.Epoch, h)
	}
	if resendRunning {
		d.sendRunning(ctx, m, cl.Epoch, h)
	}
	if start {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			err := d.startMember(ctx, m, cl)
			d.mu.Lock()
			m.busy = false
			if err == nil || m.failEpoch != cl.Epoch {
				m.startFails, m.failEpoch = 0, cl.Epoch
			}
			var wait int64
			if err != nil {
				m.startFails++
				wait = startBackoff(m.startFails)
				m.startAfter = d.height + wait
			}
			tries := m.startFails
			d.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				d.log.Warn("start cluster rank; will retry", "lease", m.lease, "cluster", cl.ID, "rank", m.rank, "epoch", cl.Epoch,
					"tries", tries, "retry_in_blocks", wait, "err", err)
			}
		}()
	}
}

// peerKey is what identifies a peer set: rank, key and endpoint of each.
func peerKey(ps []overlay.Peer) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%d %s %s;", p.Rank, p.PublicKey, p.Endpoint)
	}
	return b.String()
}

// peersOf returns the other members of cl that reported ready (or run) this epoch,
// as overlay peers of rank rank; members whose report does not parse are left out
// and named.
func peersOf(cl market.ClusterLease, rank int) ([]overlay.Peer, []string) {
	subnet := ClusterSubnet(cl.ID)
	var ps []overlay.Peer
	var bad []string
	for _, x := range cl.Members {
		if int(x.Rank) == rank || (x.State != market.MemberReady && x.State != market.MemberRunning) {
			continue
		}
		key, err := overlay.ParsePublicKey(x.PublicKey)
		if err != nil {
			bad = append(bad, fmt.Sprintf("rank %d key %q: %v", x.Rank, x.PublicKey, err))
			continue
		}
		ep, err := netip.ParseAddrPort(x.Endpoint)
		if err != nil {
			bad = append(bad, fmt.Sprintf("rank %d endpoint %q: %v", x.Rank, x.Endpoint, err))
			continue
		}
		ps = append(ps, overlay.Peer{Rank: int(x.Rank), PublicKey: key, Endpoint: ep, Addr: overlay.MemberAddr(subnet, int(x.Rank))})
	}
	return ps, bad
}

// setPeers gives m's link the members ready this epoch as peers, as soon as they
// report: handshakes are then done, mostly, before the last member is ready.
func (d *Daemon) setPeers(m *member, cl market.ClusterLease) {
	ps, bad := peersOf(cl, m.rank)
	if len(bad) > 0 {
		d.log.Warn("cluster members with unusable overlay reports", "cluster", cl.ID, "members", strings.Join(bad, "; "))
	}
	k := peerKey(ps)
	d.mu.Lock()
	same := k == m.peers
	d.mu.Unlock()
	if same {
		return
	}
	if err := m.link.SetPeers(ps); err != nil {
		d.log.Warn("set overlay peers", "lease", m.lease, "cluster", cl.ID, "err", err)
		return
	}
	d.mu.Lock()
	m.peers = k
	d.mu.Unlock()
}

// memberHandshakeTimeout bounds the wait for every peer's first handshake before a
// rank starts: milliseconds over loopback, a round trip or two across the world, plus
// the overlay's one-second nudge; a peer that never answers is retried next block.
const memberHandshakeTimeout = 20 * time.Second

// startMember starts (or restarts) m's rank for cl's epoch, every member being ready:
// peers set, handshakes done, then the tasks; then MsgMemberRunning.
func (d *Daemon) startMember(ctx context.Context, m *member, cl market.ClusterLease) error {
	lk := d.leaseLock(m.lease)
	lk.Lock()
	defer lk.Unlock()
	if d.isClosed(m.lease) || d.memberOf(m.lease) != m {
		return nil
	}
	ps, bad := peersOf(cl, m.rank)
	if len(bad) > 0 || len(ps) != countOthers(cl, m.rank) {
		return fmt.Errorf("not every other member reported a usable key and endpoint this epoch: %s", strings.Join(bad, "; "))
	}
	d.setPeers(m, cl)
	hctx, cancel := context.WithTimeout(ctx, memberHandshakeTimeout)
	err := m.link.WaitHandshakes(hctx)
	cancel()
	if err != nil {
		return err
	}
	subnet := ClusterSubnet(cl.ID)
	var rv, hosts []rendezvous.Member
	for _, x := range cl.Members {
		a := overlay.MemberAddr(subnet, int(x.Rank))
		// NB: one process per member (its rank): WORLD_SIZE counts members; the
		// hostfile's slots are its GPUs, for mpirun to start one process per GPU.
		rv = append(rv, rendezvous.Member{Rank: int(x.Rank), Addr: a, Slots: 1})
		hosts = append(hosts, rendezvous.Member{Rank: int(x.Rank), Addr: a, Slots: m.slots})
	}
	env := append(rendezvous.Env(m.rank, 0, rv, masterPort(cl.Epoch), overlay.DefaultIfname),
		"KILN_CLUSTER_ID="+strconv.FormatUint(cl.ID, 10), "KILN_CLUSTER_EPOCH="+strconv.FormatUint(uint64(cl.Epoch), 10))
	net := lease.Net{NetNS: m.netns, Env: env, Files: map[string]string{rendezvous.HostfileName: rendezvous.Hostfile(hosts)}, Epoch: cl.Epoch}
	if _, err := d.mgr.Status(ctx, m.lease); errors.Is(err, api.ErrNotDeployed) {
		if err := d.mgr.DeployIn(ctx, m.info, m.man, net); err != nil {
			if errors.Is(err, api.ErrStartFailed) {
				d.startFailed(m.lease, err)
			}
			return err
		}
	} else {
		// NB: the rank's GPUs pass to its restarted task: Restart stops the old
		// one before it starts the new.
		d.freeGPUs(m.lease)
		if err := d.mgr.Restart(ctx, m.lease, net); err != nil {
			return err
		}
	}
	d.mu.Lock()
	m.runEpoch, m.heldAt = int64(cl.Epoch), 0
	h := d.height
	d.mu.Unlock()
	d.log.Info("cluster rank started", "lease", m.lease, "cluster", cl.ID, "rank", m.rank, "epoch", cl.Epoch, "world", len(cl.Members))
	d.sendRunning(ctx, m, cl.Epoch, h)
	return nil
}

func countOthers(cl market.ClusterLease, rank int) int {
	n := 0
	for _, x := range cl.Members {
		if int(x.Rank) != rank && x.State != market.MemberDone {
			n++
		}
	}
	return n
}

func (d *Daemon) sendRunning(ctx context.Context, m *member, epoch uint32, h int64) {
	d.mu.Lock()
	m.runningSent = max(h, 1)
	d.mu.Unlock()
	msg := &market.MsgMemberRunning{Provider: d.self, Cluster: m.cluster, Rank: uint32(m.rank), Epoch: epoch}
	if err := d.snd.send(ctx, msg); err != nil && ctx.Err() == nil {
		d.log.Warn("report cluster rank running; will retry", "lease", m.lease, "cluster", m.cluster, "rank", m.rank, "epoch", epoch, "err", err)
	}
}

// overlayStatus reports lease id's overlay link, if it is a member here.
func (d *Daemon) overlayStatus(id uint64) *api.OverlayStatus {
	m := d.memberOf(id)
	if m == nil {
		return nil
	}
	d.mu.Lock()
	ep := m.runEpoch
	d.mu.Unlock()
	o := &api.OverlayStatus{Cluster: m.cluster, Rank: m.rank, Addr: m.link.Addr().String(), Endpoint: m.link.Endpoint().String(), Epoch: ep,
		Peers: []api.OverlayPeer{}}
	for _, h := range m.link.Health() {
		o.Peers = append(o.Peers, api.OverlayPeer{Rank: h.Rank, LastHandshake: h.LastHandshake, RxBytes: h.RxBytes, TxBytes: h.TxBytes})
	}
	return o
}
