package tenant

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// ClusterResult is what a cluster deployment did.
type ClusterResult struct {
	OrderID uint64 `json:"order_id,string"`
	// State is the cluster's last state (done, failed, running, ...).
	State       string `json:"state"`
	CloseReason string `json:"close_reason,omitempty"`
	Epoch       uint32 `json:"epoch"`
	OrderHeight int64  `json:"order_height"`
	PlaceHeight int64  `json:"placed_height"`
	// OrderToPlacedMS is the order's placement (every member leased); and
	// OrderToAllRunningMS the time until every member's rank ran, as the chain saw
	// it (the cluster's running state).
	OrderToPlacedMS     int64          `json:"order_to_placed_ms"`
	OrderToAllRunningMS int64          `json:"order_to_all_running_ms"`
	Providers           int            `json:"providers"`
	Members             []MemberResult `json:"members"`
	Unplaced            string         `json:"unplaced,omitempty"`
}

// MemberResult is one rank of a ClusterResult.
type MemberResult struct {
	Rank     uint32        `json:"rank"`
	Lease    uint64        `json:"lease,string"`
	Provider types.Address `json:"provider"`
	State    string        `json:"state"`
	// Outputs and OutDir: what was fetched of this rank's outputs (rank 0 holds
	// the job's results: model, checkpoints, units.json).
	Outputs         int    `json:"outputs,omitempty"`
	OutputsVerified bool   `json:"outputs_verified,omitempty"`
	OutDir          string `json:"out_dir,omitempty"`
}

// UnplacedError says why a cluster order got no members.
type UnplacedError struct {
	OrderID uint64
	Why     string
}

func (e *UnplacedError) Error() string {
	return fmt.Sprintf("cluster order %d was not placed: %s", e.OrderID, e.Why)
}

// DeployCluster places plan's cluster order, waits until every member is leased,
// sends each member's provider the inputs and manifest (each member runs it, with
// the rendezvous its provider adds), follows the cluster until it runs (o.NoWait) or
// ends, sends a replacement member's provider the workload when the chain re-places
// a member, and for a batch job fetches every rank's outputs into OutDir/rank-N.
//
// A cluster that finds too few members by o.LeaseTimeout is closed (its deposit
// refunded) with an *UnplacedError saying why; one interrupted before any member
// ran is closed as well.
func DeployCluster(ctx context.Context, c *client.Client, key ed25519.PrivateKey, plan Plan, o Options) (r ClusterResult, err error) {
	o.defaults()
	if plan.Cluster == nil {
		return r, fmt.Errorf("plan %s is not a cluster", plan.Name)
	}
	owner := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	tlsCert, err := EnsureCert(ctx, c, key, o.CertDir, o.Progress)
	if err != nil {
		return r, err
	}
	msg := plan.Msg(owner)
	if err := msg.ValidateBasic(); err != nil {
		return r, err
	}
	t0 := time.Now()
	txr, err := c.Send(ctx, key, client.SignOptions{}, msg)
	if err != nil {
		return r, fmt.Errorf("create cluster order: %w", err)
	}
	if r.OrderID, err = strconv.ParseUint(txr.EventAttr("order_created", "order"), 10, 64); err != nil {
		return r, fmt.Errorf("create cluster order: no order id in the tx events")
	}
	r.OrderHeight = txr.Height
	o.Progress(fmt.Sprintf("cluster order %d placed at height %d: %d members x %d GPUs (max %d ukiln/block in all, deposit %s)",
		r.OrderID, txr.Height, plan.Cluster.Members, plan.Cluster.GPUsPerMember, plan.MaxPrice, plan.Deposit))
	started := false
	defer func() {
		if err != nil && !started {
			abandon(c, key, owner, r.OrderID, o.Progress)
		}
	}()

	cl, err := waitPlaced(ctx, c, r.OrderID, t0, o)
	if err != nil {
		var ue *UnplacedError
		if errors.As(err, &ue) {
			r.Unplaced = ue.Why
		}
		return r, err
	}
	r.OrderToPlacedMS = time.Since(t0).Milliseconds()
	r.PlaceHeight = cl.CreatedHeight
	provs := map[types.Address]bool{}
	for _, m := range cl.Members {
		provs[m.Provider] = true
	}
	o.Progress(fmt.Sprintf("cluster %d placed at height %d: %d members on %d providers", r.OrderID, cl.CreatedHeight, len(cl.Members), len(provs)))

	sent := map[uint32]types.Address{}
	if err := sendMembers(ctx, c, cl, plan, tlsCert, sent, o); err != nil {
		return r, err
	}
	started = true
	for {
		cl, err = c.Cluster(ctx, r.OrderID)
		if err != nil {
			return r, fmt.Errorf("cluster %d: %w", r.OrderID, err)
		}
		if r.OrderToAllRunningMS == 0 && cl.RunningHeight != 0 {
			r.OrderToAllRunningMS = time.Since(t0).Milliseconds()
			o.Progress(fmt.Sprintf("every rank runs (height %d), %d ms after the order", cl.RunningHeight, r.OrderToAllRunningMS))
		}
		// NB: a member re-placed on another provider gets the workload again.
		if err := sendMembers(ctx, c, cl, plan, tlsCert, sent, o); err != nil {
			o.Progress(fmt.Sprintf("send the workload to a replacement member: %v (retrying)", err))
		}
		fill(&r, cl)
		switch {
		case cl.State == market.ClusterDone:
			o.Progress(fmt.Sprintf("cluster %d done: every rank completed", r.OrderID))
			return r, fetchRanks(ctx, c, key, o, &r)
		case cl.State == market.ClusterFailed:
			return r, fmt.Errorf("cluster %d failed at height %d: %s", r.OrderID, cl.ClosedHeight, cl.CloseReason)
		case cl.State == market.ClusterRunning && (plan.Kind == market.KindService || o.NoWait):
			return r, nil
		}
		o.Waiting(fmt.Sprintf("cluster %d: %s, epoch %d, %s since the order", r.OrderID, describeMembers(cl), cl.Epoch, time.Since(t0).Round(100*time.Millisecond)))
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// fill copies the cluster's members into r.
func fill(r *ClusterResult, cl market.ClusterLease) {
	r.State, r.CloseReason, r.Epoch = cl.State, cl.CloseReason, cl.Epoch
	provs := map[types.Address]bool{}
	r.Members = r.Members[:0]
	for _, m := range cl.Members {
		r.Members = append(r.Members, MemberResult{Rank: m.Rank, Lease: m.Lease, Provider: m.Provider, State: m.State})
		if !m.Provider.IsZero() {
			provs[m.Provider] = true
		}
	}
	r.Providers = len(provs)
}

func describeMembers(cl market.ClusterLease) string {
	n := map[string]int{}
	var order []string
	for _, m := range cl.Members {
		if n[m.State] == 0 {
			order = append(order, m.State)
		}
		n[m.State]++
	}
	var parts []string
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
	}
	return strings.Join(parts, ", ")
}

// waitPlaced follows cluster order id until it is placed (its cluster returned),
// closes, or o.LeaseTimeout passes (the order is then closed by the caller).
func waitPlaced(ctx context.Context, c *client.Client, id uint64, t0 time.Time, o Options) (market.ClusterLease, error) {
	deadline := time.Now().Add(o.LeaseTimeout)
	told := ""
	for {
		ord, err := c.Order(ctx, id)
		if err != nil {
			return market.ClusterLease{}, err
		}
		if ord.Unplaced != "" && ord.Unplaced != told {
			told = ord.Unplaced
			o.Progress(fmt.Sprintf("cluster order %d not placed yet: %s", id, told))
		}
		switch ord.State {
		case market.OrderActive:
			return c.Cluster(ctx, id)
		case market.OrderClosed:
			why := ord.Unplaced
			if why == "" {
				why = ord.CloseReason
			}
			return market.ClusterLease{}, &UnplacedError{OrderID: id, Why: fmt.Sprintf("closed at height %d (%s): %s", ord.ClosedHeight, ord.CloseReason, why)}
		}
		if time.Now().After(deadline) {
			why := ord.Unplaced
			if why == "" {
				why = "no bid in time"
			}
			return market.ClusterLease{}, &UnplacedError{OrderID: id, Why: why}
		}
		o.Waiting(fmt.Sprintf("cluster order %d: waiting for members, %s", id, time.Since(t0).Round(100*time.Millisecond)))
		select {
		case <-ctx.Done():
			return market.ClusterLease{}, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// sendMembers sends the workload, all at once, to every member whose provider has
// not had it yet (sent, by rank): the members start together once all are ready.
func sendMembers(ctx context.Context, c *client.Client, cl market.ClusterLease, plan Plan, tlsCert tls.Certificate, sent map[uint32]types.Address, o Options) error {
	var todo []market.Member
	for _, m := range cl.Members {
		if m.State == market.MemberPending && !m.Provider.IsZero() && sent[m.Rank] != m.Provider {
			todo = append(todo, m)
		}
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, m := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := c.Lease(ctx, m.Lease)
			if err != nil {
				errs[i] = fmt.Errorf("rank %d: lease %d: %w", m.Rank, m.Lease, err)
				return
			}
			if l.Provider != m.Provider || l.State != market.LeaseActive {
				errs[i] = fmt.Errorf("rank %d: lease %d moved on (%s, %s)", m.Rank, m.Lease, l.Provider, l.State)
				return
			}
			quiet := o
			quiet.Progress = func(s string) { o.Progress(fmt.Sprintf("rank %d: %s", m.Rank, s)) }
			pc, _, err := sendWorkload(ctx, c, l, plan, tlsCert, quiet)
			if err != nil {
				errs[i] = fmt.Errorf("rank %d on %s: %w", m.Rank, m.Provider, err)
				return
			}
			pc.Close()
		}()
	}
	wg.Wait()
	for i, m := range todo {
		if errs[i] == nil {
			sent[m.Rank] = m.Provider
		}
	}
	return errors.Join(errs...)
}

// fetchRanks downloads every rank's outputs, checked against the root its provider
// committed on chain, into o.OutDir/rank-N (nothing without OutDir).
func fetchRanks(ctx context.Context, c *client.Client, key ed25519.PrivateKey, o Options, r *ClusterResult) error {
	if o.OutDir == "" {
		return nil
	}
	for i, m := range r.Members {
		pc, err := ConnectAs(ctx, c, key, o.CertDir, m.Provider)
		if err != nil {
			return fmt.Errorf("rank %d: %w", m.Rank, err)
		}
		dir := filepath.Join(o.OutDir, fmt.Sprintf("rank-%d", m.Rank))
		fr, err := Fetch(ctx, c, pc, m.Lease, FetchOptions{Dir: dir, Poll: o.Poll, Transfer: o.Transfer,
			Progress: func(s string) { o.Progress(fmt.Sprintf("rank %d: %s", m.Rank, s)) }})
		pc.Close()
		if err != nil {
			return fmt.Errorf("rank %d: %w (the outputs stay on its provider for its output retention: kiln fetch %d)", m.Rank, err, m.Lease)
		}
		r.Members[i].Outputs, r.Members[i].OutputsVerified, r.Members[i].OutDir = len(fr.Files), fr.Verified, fr.Dir
	}
	return nil
}
