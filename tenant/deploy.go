package tenant

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
)

// Options tune Deploy.
type Options struct {
	// CertDir holds the tenant's client certificate and key.
	CertDir string
	// OutDir receives a batch job's outputs, checked against the root committed on
	// chain (Fetch, which never overwrites a file); empty leaves them on the provider.
	OutDir string
	// LeaseTimeout is how long to wait for a lease before explaining why no provider
	// bid and closing the order (its deposit is refunded).
	LeaseTimeout time.Duration
	// NoWait returns once the workload runs, even for a batch job.
	NoWait bool
	// Progress receives one line per step; nil discards.
	Progress func(string)
	// Waiting, if not nil, is told at each poll what Deploy is waiting for and for how
	// long (bids, the workload): a terminal shows it as one line updated in place.
	Waiting func(string)
	// Poll is how often the chain and the provider are asked for news.
	Poll time.Duration
	// Transfer, if set, shows each upload and download as it goes (a progress bar).
	Transfer Transfer
}

// Result is what a deployment did, with its timings.
type Result struct {
	OrderID          uint64         `json:"order_id,string"`
	Attempt          uint32         `json:"attempt"`
	Provider         types.Address  `json:"provider"`
	Endpoint         string         `json:"endpoint"`
	Price            uint64         `json:"price_per_block,string"`
	GPUs             string         `json:"gpus,omitempty"`
	OrderHeight      int64          `json:"order_height"`
	LeaseHeight      int64          `json:"lease_height"`
	OrderToLeaseBlks int64          `json:"order_to_lease_blocks"`
	OrderToLeaseMS   int64          `json:"order_to_lease_ms"`
	OrderToRunningMS int64          `json:"order_to_running_ms"`
	State            string         `json:"state"`
	Outputs          []api.FileInfo `json:"outputs,omitempty"`
	// OutputsRoot is the Merkle root of Outputs; OutputsVerified says the outputs in
	// OutDir were checked against the root committed on chain.
	OutputsRoot     string `json:"outputs_root,omitempty"`
	OutputsVerified bool   `json:"outputs_verified,omitempty"`
	OutDir          string `json:"out_dir,omitempty"`
	// IngressURL reaches a service lease's first global TCP port through its
	// provider's ingress, over mutual TLS; Curl is a command line that does.
	IngressURL string `json:"ingress_url,omitempty"`
	Curl       string `json:"curl,omitempty"`
	// Skipped are what the job left in its output directory that is not an output.
	Skipped      []api.SkippedOutput `json:"skipped,omitempty"`
	SkippedTotal int                 `json:"skipped_total,omitempty"`
}

// NoBidsError explains why an order got no lease.
type NoBidsError struct {
	OrderID uint64
	Report  market.MatchReport
}

func (e *NoBidsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "order %d got no bid:", e.OrderID)
	if len(e.Report.Providers) == 0 {
		b.WriteString(" no provider is registered on this chain")
		return b.String()
	}
	keys := make([]string, 0, len(e.Report.Summary))
	for k := range e.Report.Summary {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %d of %d providers fail %s;", e.Report.Summary[k], len(e.Report.Providers), k)
	}
	for _, p := range e.Report.Providers {
		for _, f := range p.Failures {
			fmt.Fprintf(&b, "\n  %s: %s %s", p.Provider, f.Constraint, f.Detail)
		}
		if p.Fits && !p.Bid {
			fmt.Fprintf(&b, "\n  %s: fits, but did not bid (its price table may be above the order's max price, or it is offline)", p.Provider)
		}
	}
	return b.String()
}

func (o *Options) defaults() {
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	if o.Waiting == nil {
		o.Waiting = func(string) {}
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = 60 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
}

// Deploy places plan's order, waits for its lease, sends inputs and manifest to the
// provider over mTLS, and for a batch job waits for it and downloads the outputs.
//
// A deploy that ends before the provider accepted the manifest (interrupted with
// ctx, or failed) closes its order, so that nothing is left to be leased and the
// deposit comes back; one that ends after says how to follow and close the lease.
func Deploy(ctx context.Context, c *client.Client, key ed25519.PrivateKey, plan Plan, o Options) (r Result, err error) {
	o.defaults()
	owner := types.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	tlsCert, err := EnsureCert(ctx, c, key, o.CertDir, o.Progress)
	if err != nil {
		return r, err
	}
	if plan.Cluster != nil {
		return r, fmt.Errorf("order %s is a cluster of %d members: deploy it with DeployCluster", plan.Name, plan.Cluster.Members)
	}
	msg := plan.Msg(owner)
	if err := msg.ValidateBasic(); err != nil {
		return r, err
	}
	t0 := time.Now()
	txr, err := c.Send(ctx, key, client.SignOptions{}, msg)
	if err != nil {
		return r, fmt.Errorf("create order: %w", err)
	}
	r.OrderID, err = strconv.ParseUint(txr.EventAttr("order_created", "order"), 10, 64)
	if err != nil {
		return r, fmt.Errorf("create order: no order id in the tx events")
	}
	r.OrderHeight = txr.Height
	o.Progress(fmt.Sprintf("order %d placed at height %d (max %d ukiln/block, deposit %s)", r.OrderID, txr.Height, plan.MaxPrice, plan.Deposit))
	running := false // the provider accepted the manifest: a workload runs
	defer func() {
		switch {
		case err == nil:
		case !running:
			abandon(c, key, owner, r.OrderID, o.Progress)
		case ctx.Err() != nil:
			hint := fmt.Sprintf("interrupted: lease %d runs on. Follow it with `kiln lease status %d`, close it with `kiln lease close %d --from KEY`", r.OrderID, r.OrderID, r.OrderID)
			if plan.Kind == market.KindBatch {
				hint += fmt.Sprintf(", fetch its outputs with `kiln fetch %d --from KEY`", r.OrderID)
			}
			o.Progress(hint)
		}
	}()

	lease, err := waitLease(ctx, c, key, owner, r.OrderID, o)
	if err != nil {
		return r, err
	}
	r.LeaseHeight = lease.CreatedHeight
	r.OrderToLeaseBlks = lease.CreatedHeight - r.OrderHeight
	r.OrderToLeaseMS = time.Since(t0).Milliseconds()
	r.Provider, r.Price, r.Attempt = lease.Provider, lease.Price, lease.Attempt
	r.GPUs = gpuModels(lease.GPUs)
	o.Progress(fmt.Sprintf("lease %d with %s at %d ukiln/block%s, height %d (%d blocks after the order)",
		lease.ID, lease.Provider, lease.Price, describeGPUs(lease.GPUs), lease.CreatedHeight, r.OrderToLeaseBlks))

	pc, endpoint, err := sendWorkload(ctx, c, lease, plan, tlsCert, o)
	if err != nil {
		return r, err
	}
	running = true
	defer pc.Close()
	r.Endpoint = endpoint
	for {
		st, err := pc.Status(ctx, lease.ID)
		if err != nil {
			return r, fmt.Errorf("lease %d status: %w", lease.ID, err)
		}
		if r.OrderToRunningMS == 0 && st.State != api.StatePending {
			r.OrderToRunningMS = time.Since(t0).Milliseconds()
			o.Progress(fmt.Sprintf("running %d ms after the order", r.OrderToRunningMS))
		}
		r.State = st.State
		switch {
		case st.State == api.StateFailed:
			return r, fmt.Errorf("lease %d failed on the provider: %s", lease.ID, st.Error)
		case st.State == api.StateStopped:
			return r, fmt.Errorf("lease %d was stopped by the provider", lease.ID)
		case st.State == api.StateClosed:
			why := st.Error
			if l, err := c.Lease(ctx, lease.ID); err == nil && l.CloseReason != "" {
				why = "closed on chain at height " + strconv.FormatInt(l.ClosedHeight, 10) + ": " + l.CloseReason
			}
			return r, fmt.Errorf("lease %d ended before its workload ran: %s", lease.ID, why)
		case st.State == api.StateRunning && (plan.Kind == market.KindService || o.NoWait):
			if plan.Kind == market.KindService {
				r.IngressURL, r.Curl = serviceAccess(ctx, c, o.CertDir, owner, lease.Provider, pc, lease.ID, plan.Manifest, o.Progress)
			}
			return r, nil
		case st.State == api.StateCompleted:
			r.Outputs, r.OutputsRoot, r.Skipped, r.SkippedTotal = st.Outputs, st.OutputsRoot, st.Skipped, st.SkippedTotal
			o.Progress(fmt.Sprintf("completed with %d outputs (root %s)", len(st.Outputs), short(st.OutputsRoot)))
			if o.OutDir == "" {
				tellSkipped(o.Progress, lease.ID, st.Skipped, st.SkippedTotal)
				return r, nil
			}
			fr, err := Fetch(ctx, c, pc, lease.ID, FetchOptions{Dir: o.OutDir, Poll: o.Poll, Progress: o.Progress, Transfer: o.Transfer})
			if err != nil {
				return r, fmt.Errorf("%w (the outputs stay on the provider for its output retention: kiln fetch %d)", err, lease.ID)
			}
			r.Outputs, r.OutputsRoot, r.OutputsVerified, r.OutDir = fr.Files, fr.Root, fr.Verified, fr.Dir
			r.Skipped, r.SkippedTotal = fr.Skipped, fr.SkippedTotal
			return r, nil
		}
		o.Waiting(fmt.Sprintf("lease %d: %s on %s, %s since the order", lease.ID, st.State, lease.Provider, time.Since(t0).Round(100*time.Millisecond)))
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// abandon closes order id, unless it is closed already, after a deploy ended before
// its workload ran: whatever ended it (an interrupt, a refused upload, a provider
// that could not start it), the order must not stay open to be leased, and its
// deposit comes back. A lease that never started has cost nothing.
func abandon(c *client.Client, key ed25519.PrivateKey, owner types.Address, id uint64, progress func(string)) {
	// NB: not the deploy's context, which an interrupt cancelled: the close must go
	// out anyway. 30 s covers a commit at 1 s blocks on a loaded node.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ord, err := c.Order(ctx, id); err == nil && ord.State == market.OrderClosed {
		return
	}
	_, err := c.Send(ctx, key, client.SignOptions{}, &market.MsgCloseOrder{Owner: owner, OrderID: id})
	if err == nil {
		progress(fmt.Sprintf("closed order %d: nothing ran, its deposit is refunded", id))
		return
	}
	// NB: a close refused because the order is closing anyway (a provider that
	// could not start the workload reported it; the mempool already holds that)
	// is no failure: wait for the block that closes it.
	h, _ := c.AppHeight(ctx)
	for ctx.Err() == nil {
		if ord, qerr := c.Order(ctx, id); qerr == nil && ord.State == market.OrderClosed {
			progress(fmt.Sprintf("order %d closed (%s): nothing ran, its deposit is refunded", id, ord.CloseReason))
			return
		}
		if now, _ := c.AppHeight(ctx); now > h+2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	progress(fmt.Sprintf("could not close order %d: %v; close it with `kiln tx market close-order KEY %d`", id, err, id))
}

// sendWorkload connects to the lease's provider over mTLS and sends it the plan's
// inputs, images and manifest, which starts the workload.
func sendWorkload(ctx context.Context, c *client.Client, lease market.Lease, plan Plan, tlsCert tls.Certificate, o Options) (*apiclient.Client, string, error) {
	pc, endpoint, err := Connect(ctx, c, lease.Provider, tlsCert)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*apiclient.Client, string, error) {
		pc.Close()
		return nil, "", err
	}
	for _, in := range plan.Inputs {
		f, err := os.Open(in)
		if err != nil {
			return fail(err)
		}
		st, _ := f.Stat()
		bar := o.Transfer.meter("upload "+filepath.Base(in), st.Size())
		fi, err := pc.UploadInput(ctx, lease.ID, filepath.Base(in), io.TeeReader(f, bar), st.Size())
		bar.Close()
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("upload %s: %w", in, err))
		}
		o.Progress(fmt.Sprintf("uploaded %s (%d bytes, sha256 %s…)", fi.Name, fi.Size, fi.SHA256[:12]))
	}
	man := plan.Manifest
	man.Services = append([]api.Service(nil), plan.Manifest.Services...)
	for i, svc := range man.Services {
		path, ok := plan.Images[svc.Name]
		if !ok {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fail(err)
		}
		st, _ := f.Stat()
		bar := o.Transfer.meter("upload image "+filepath.Base(path), st.Size())
		ii, err := pc.UploadImage(ctx, lease.ID, io.TeeReader(f, bar), st.Size(), "")
		bar.Close()
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("upload image %s of service %s: %w", path, svc.Name, err))
		}
		man.Services[i].Image = ii.ID
		o.Progress(fmt.Sprintf("uploaded image %s for service %s (%d bytes, %s)", filepath.Base(path), svc.Name, ii.Size, short(ii.ID)))
	}
	if _, err := pc.SendManifest(ctx, lease.ID, man); err != nil {
		return fail(fmt.Errorf("send manifest: %w", err))
	}
	o.Progress(fmt.Sprintf("manifest sent to %s", lease.Provider))
	return pc, endpoint, nil
}

// Watch follows a service deployment until its order closes or ctx ends: when the
// chain re-makes the lease with another provider (an auto_redeploy order whose
// provider stopped answering), it sends that provider the inputs and manifest again.
func Watch(ctx context.Context, c *client.Client, key ed25519.PrivateKey, plan Plan, r Result, o Options) error {
	o.defaults()
	tlsCert, err := EnsureCert(ctx, c, key, o.CertDir, o.Progress)
	if err != nil {
		return err
	}
	orderID, attempt := r.OrderID, r.Attempt
	for {
		ord, err := c.Order(ctx, orderID)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		switch ord.State {
		case market.OrderClosed:
			o.Progress(fmt.Sprintf("order %d closed (%s)", orderID, ord.CloseReason))
			return nil
		case market.OrderActive:
			l, err := c.Lease(ctx, orderID)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			if l.Attempt != attempt && l.State == market.LeaseActive {
				o.Progress(fmt.Sprintf("lease %d re-made with %s (attempt %d): sending the workload again", orderID, l.Provider, l.Attempt))
				pc, _, err := sendWorkload(ctx, c, l, plan, tlsCert, o)
				if ctx.Err() != nil {
					return nil // stopped watching (Ctrl-C) while sending
				}
				if err != nil {
					return err
				}
				pc.Close()
				attempt = l.Attempt
			}
		case market.OrderOpen:
			if attempt > 0 {
				o.Progress(fmt.Sprintf("order %d re-opened for bids after its lease closed", orderID))
				attempt = 0 // NB: any new lease now is a new attempt
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Poll * 4):
		}
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// gpuModels names the GPU model of each group that has one, joined with "+".
func gpuModels(gs []market.GPUSpec) string {
	var parts []string
	for _, g := range gs {
		if g.Model != "" {
			parts = append(parts, g.Model)
		}
	}
	return strings.Join(parts, "+")
}

func describeGPUs(gs []market.GPUSpec) string {
	if m := gpuModels(gs); m != "" {
		return ", GPU " + m
	}
	return ""
}

// waitLease follows the order until it has a lease, printing each bid as it is
// placed and, through o.Waiting, how long it has waited. If none comes in time it
// explains why and closes the order, refunding the deposit.
func waitLease(ctx context.Context, c *client.Client, key ed25519.PrivateKey, owner types.Address, id uint64, o Options) (market.Lease, error) {
	deadline := time.Now().Add(o.LeaseTimeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	t0 := time.Now()
	bw := bidWatch{c: c, id: id, progress: o.Progress, seen: map[string]bool{}}
	told := false
	out, err := c.WaitLease(wctx, id, o.Poll, func(ord market.Order) {
		bw.poll(wctx, ord.CreatedHeight)
		if ord.Manual && bw.count > 0 && !told {
			told = true
			o.Progress(fmt.Sprintf("manual order: pick a bid with `kiln tx market create-lease KEY %d PROVIDER` (waiting until %s)", id, deadline.Format(time.TimeOnly)))
		}
		if ord.State == market.OrderOpen {
			o.Waiting(fmt.Sprintf("order %d: waiting for bids, %s at height %d, %d so far (bid window closes at height %d; giving up in %s)",
				id, time.Since(t0).Round(100*time.Millisecond), bw.height, bw.count, ord.BidCloseHeight, time.Until(deadline).Round(time.Second)))
		}
	})
	switch {
	case err == nil && out.Lease != nil:
		return *out.Lease, nil
	case err == nil: // the order closed
		rep, _ := c.WhyNoBids(ctx, id)
		return market.Lease{}, fmt.Errorf("order %d closed (%s): %w", id, out.Order.CloseReason, &NoBidsError{OrderID: id, Report: rep})
	case ctx.Err() != nil:
		return market.Lease{}, ctx.Err()
	case wctx.Err() != nil: // --lease-timeout passed: give up and take the deposit back
		rep, _ := c.WhyNoBids(ctx, id)
		if _, err := c.Send(ctx, key, client.SignOptions{}, &market.MsgCloseOrder{Owner: owner, OrderID: id}); err != nil {
			o.Progress(fmt.Sprintf("closing order %d failed: %v", id, err))
		} else {
			o.Progress(fmt.Sprintf("closed order %d; its deposit is refunded", id))
		}
		return market.Lease{}, &NoBidsError{OrderID: id, Report: rep}
	default:
		return market.Lease{}, err
	}
}

// bidWatch shows the bids on an order as they are placed. It reads them from the
// blocks' transaction events, not from the chain's state: with a one-block bid
// window the auction closes in the block the bids land in, and they are gone from
// state before any query sees them.
type bidWatch struct {
	c        *client.Client
	id       uint64
	progress func(string)
	seen     map[string]bool // provider/price already shown
	// height is the last block read; count the bids shown.
	height int64
	count  int
}

// poll reads the blocks committed since the last poll (from the order's height on
// the first) and shows each new bid. Errors are left for the next poll.
func (bw *bidWatch) poll(ctx context.Context, orderHeight int64) {
	top, err := bw.c.AppHeight(ctx)
	if err != nil {
		return
	}
	from := max(bw.height+1, orderHeight)
	bids, err := bw.c.BidEvents(ctx, bw.id, from, top)
	for _, b := range bids {
		k := b.Provider.String() + "/" + strconv.FormatUint(b.Price, 10)
		if bw.seen[k] {
			continue
		}
		bw.seen[k] = true
		bw.count++
		gpus := ""
		if b.GPUs != "" && b.GPUs != "none" {
			gpus = ", GPUs " + b.GPUs
		}
		bw.progress(fmt.Sprintf("bid from %s: %d ukiln/block%s (height %d)", b.Provider, b.Price, gpus, b.Height))
	}
	if err == nil { // NB: else the blocks are read again; bids already shown are skipped
		bw.height = top
	}
}

// Connect returns an mTLS client for provider, trusting only the certificate it
// published on chain.
func Connect(ctx context.Context, c *client.Client, provider types.Address, tlsCert tls.Certificate) (*apiclient.Client, string, error) {
	prov, err := providerRecord(ctx, c, provider)
	if err != nil {
		return nil, "", err
	}
	pc, err := apiclient.NewClient(prov.Endpoint, tlsCert, []byte(prov.CertPEM))
	if err != nil {
		return nil, "", err
	}
	return pc, prov.Endpoint, nil
}

// ConnectAs connects to provider as the tenant key: it makes sure the tenant's client
// certificate (kept in certDir) is published, then opens the mTLS client.
func ConnectAs(ctx context.Context, c *client.Client, key ed25519.PrivateKey, certDir string, provider types.Address) (*apiclient.Client, error) {
	cert, err := EnsureCert(ctx, c, key, certDir, nil)
	if err != nil {
		return nil, err
	}
	pc, _, err := Connect(ctx, c, provider, cert)
	return pc, err
}
