package tenant

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/proof"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/work/units"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/verify"
)

// Errors Fetch wraps, for callers that branch on why nothing was fetched.
var (
	// ErrOutputsExpired: the chain committed outputs, but the provider no longer
	// holds them (its output retention is over).
	ErrOutputsExpired = errors.New("outputs expired")
	// ErrOutputsUnverified: the lease has not completed on chain, so there is no
	// committed root to check its outputs against.
	ErrOutputsUnverified = errors.New("outputs not verifiable")
	// ErrOutputsMismatch: what the provider lists or sends is not what the chain
	// committed.
	ErrOutputsMismatch = errors.New("outputs do not match the root committed on chain")
)

// sealedWait is how long Fetch waits for the chain to record a completion the
// provider has already sealed: its MsgCompleteLease lands in the next block or two;
// one minute covers a slow chain and the provider's retries.
const sealedWait = time.Minute

// FetchOptions tune Fetch.
type FetchOptions struct {
	// Dir receives the outputs; empty means DefaultFetchDir(lease).
	Dir string
	// Force replaces files of the same names already in Dir; without it Fetch
	// refuses before downloading anything.
	Force bool
	// Unverified fetches the outputs of a lease not completed on chain, checked
	// only against the SHA-256 the provider announces (there is no root yet).
	Unverified bool
	// Wait is how long to wait for the lease to complete on chain. Fetch always
	// waits up to a minute when the provider has already sealed the outputs.
	Wait time.Duration
	// Poll is how often the chain is asked while waiting; 0 means 100 ms.
	Poll time.Duration
	// Progress receives one line per step; nil discards.
	Progress func(string)
	// Transfer, if set, shows each file's download as it goes (a progress bar).
	Transfer Transfer
}

// Transfer returns a writer that is told the bytes of one transfer (what, of size
// bytes) as they move, and closed when it ends: a progress bar. The bytes are a
// copy; what the writer does with them never changes the transfer.
type Transfer func(what string, size int64) io.WriteCloser

// meter returns t's writer for a transfer, or one that discards when t is nil.
func (t Transfer) meter(what string, size int64) io.WriteCloser {
	if t == nil {
		return nopCloser{io.Discard}
	}
	return t(what, size)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// FetchResult is what Fetch stored.
type FetchResult struct {
	LeaseID uint64 `json:"lease_id,string"`
	// Dir holds the outputs.
	Dir string `json:"dir"`
	// Files are the outputs stored in Dir, with the SHA-256 of the bytes received.
	Files []api.FileInfo `json:"files"`
	// Root is the hex Merkle root of Files (proof.ItemsRoot).
	Root string `json:"outputs_root"`
	// Verified is true when Root is the root committed on chain for the lease,
	// at CommittedHeight.
	Verified        bool  `json:"verified"`
	CommittedHeight int64 `json:"committed_height,omitempty"`
	// Skipped are the entries the job left that the provider did not seal.
	Skipped      []api.SkippedOutput `json:"skipped,omitempty"`
	SkippedTotal int                 `json:"skipped_total,omitempty"`
	// Units is set when the outputs hold a units.json (a verifiable workload).
	Units *UnitsCheck `json:"units,omitempty"`
}

// UnitsCheck is how a job's units.json compares with the work commitment its provider
// made on chain for verifiers (x/verify).
type UnitsCheck struct {
	Count int    `json:"count"`
	Root  string `json:"root"` // hex Merkle root of units.json (units.Set.Root)
	// Commitment is the work commitment whose root Root is (0: none on chain yet),
	// and State how its verification stands (pending, assigned, verified, unchecked,
	// disputed, fraud).
	Commitment uint64 `json:"commitment,string,omitempty"`
	State      string `json:"state,omitempty"`
}

// DefaultFetchDir is where outputs go when no directory is named: a new directory
// named for the lease, in the current directory.
func DefaultFetchDir(leaseID uint64) string { return "lease-" + strconv.FormatUint(leaseID, 10) }

// Fetch downloads a batch lease's outputs into o.Dir and checks them against the
// Merkle root the provider committed on chain when the lease completed (proof.ItemsRoot
// over each output's name and SHA-256): the provider's listing must have that root
// before anything is downloaded, and each file received must hash to its entry.
// Files are downloaded into a hidden staging directory beside o.Dir and moved into
// place only once all of them are verified, so a failed fetch leaves nothing that
// looks like an output. Fetch never replaces an existing file unless o.Force is set.
//
// It fails with ErrOutputsUnverified for a lease not completed on chain (unless
// o.Unverified), ErrOutputsExpired when the provider no longer holds outputs the
// chain committed, and ErrOutputsMismatch when what the provider lists or sends is
// not what it committed.
func Fetch(ctx context.Context, c *client.Client, pc *apiclient.Client, leaseID uint64, o FetchOptions) (FetchResult, error) {
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	r := FetchResult{LeaseID: leaseID, Dir: o.Dir}
	if r.Dir == "" {
		r.Dir = DefaultFetchDir(leaseID)
	}
	l, st, err := completedLease(ctx, c, pc, leaseID, o, progress)
	if err != nil {
		return r, err
	}
	r.Skipped, r.SkippedTotal = st.Skipped, st.SkippedTotal
	var want string // the root committed on chain; "" when unverified
	switch {
	case l.State == market.LeaseActive:
		if !o.Unverified {
			return r, fmt.Errorf("lease %d: %w: it has not completed on chain (provider: %s), so there is no committed Merkle root to check its outputs against; wait for it (--wait 10m) or fetch them checked only against the provider's own hashes (--unverified)",
				leaseID, ErrOutputsUnverified, st.State)
		}
		progress(fmt.Sprintf("lease %d has not completed on chain: its outputs are UNVERIFIED, checked only against the provider's own SHA-256", leaseID))
	case l.OutputHash == "":
		return r, fmt.Errorf("lease %d closed at height %d (%s) without committing any outputs: there is nothing to fetch", leaseID, l.ClosedHeight, l.CloseReason)
	default:
		want = strings.ToLower(l.OutputHash)
		r.CommittedHeight = l.ClosedHeight
		if b, err := hex.DecodeString(want); err != nil || len(b) != 32 {
			return r, fmt.Errorf("lease %d: the output hash on chain %q is not a Merkle root of outputs (32 bytes of hex): it cannot be checked", leaseID, l.OutputHash)
		}
	}
	listed := st.Outputs
	for _, f := range listed {
		if err := vault.ValidateName(f.Name); err != nil {
			return r, fmt.Errorf("lease %d: %w: the provider lists an unsafe output name %q", leaseID, ErrOutputsMismatch, f.Name)
		}
	}
	if want != "" {
		if got := filesRoot(listed); got != want {
			if len(listed) == 0 {
				return r, fmt.Errorf("lease %d: %w: the chain committed outputs (root %s…) at height %d, but provider %s no longer holds them (providers erase outputs once their output retention after completion is over; state %s)",
					leaseID, ErrOutputsExpired, want[:12], l.ClosedHeight, l.Provider, st.State)
			}
			return r, fmt.Errorf("lease %d: %w: provider %s lists %d outputs whose Merkle root is %s…, but it committed %s… at height %d; refusing them",
				leaseID, ErrOutputsMismatch, l.Provider, len(listed), got[:12], want[:12], l.ClosedHeight)
		}
	}
	if want != "" {
		if r.Units, err = checkUnits(ctx, c, pc, l, listed, progress); err != nil {
			return r, err
		}
	}
	tellSkipped(progress, leaseID, st.Skipped, st.SkippedTotal)
	if len(listed) == 0 {
		r.Root = hex.EncodeToString(rootOf(nil))
		r.Verified = want != ""
		if want == "" {
			return r, fmt.Errorf("lease %d has no outputs yet (provider: %s)", leaseID, st.State)
		}
		progress(fmt.Sprintf("lease %d completed with no outputs (the chain's root is that of no files): nothing written", leaseID))
		return r, nil
	}
	files, err := download(ctx, pc, leaseID, listed, r.Dir, o.Force, progress, o.Transfer)
	if err != nil {
		return r, err
	}
	r.Files = files
	r.Root = filesRoot(files)
	r.Verified = want != ""
	if r.Verified {
		progress(fmt.Sprintf("%d outputs of lease %d in %s, Merkle root %s… as committed on chain at height %d", len(files), leaseID, r.Dir, r.Root[:12], l.ClosedHeight))
	} else {
		progress(fmt.Sprintf("%d outputs of lease %d in %s, UNVERIFIED: the lease has not committed a root on chain", len(files), leaseID, r.Dir))
	}
	return r, nil
}

// checkUnits checks, before anything is downloaded, the units.json among the listed
// outputs (whose hashes the chain's outputs root has vouched for) against the work
// commitment the provider made for verifiers: the same Merkle root and count, and
// every unit's file among the outputs with the hash units.json gives it. It returns
// nil when the outputs hold no units.json, and a check without a commitment when the
// provider committed none.
func checkUnits(ctx context.Context, c *client.Client, pc *apiclient.Client, l market.Lease, listed []api.FileInfo, progress func(string)) (*UnitsCheck, error) {
	byName := map[string]api.FileInfo{}
	for _, f := range listed {
		byName[f.Name] = f
	}
	idx, ok := byName[units.FileName]
	if !ok {
		return nil, nil
	}
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("lease %d: %w: %s", l.ID, ErrOutputsMismatch, fmt.Sprintf(format, args...))
	}
	if idx.Size > units.MaxIndexSize {
		return nil, mismatch("units.json is %d bytes, over the %d a unit index may have", idx.Size, units.MaxIndexSize)
	}
	var b bytes.Buffer
	if _, err := pc.DownloadOutput(ctx, l.ID, units.FileName, &b); err != nil {
		return nil, err
	}
	if got := hex.EncodeToString(sha256Of(b.Bytes())); got != idx.SHA256 {
		return nil, mismatch("units.json has sha256 %s, the committed outputs list %s", got, idx.SHA256)
	}
	set, err := units.Parse(b.Bytes())
	if err != nil {
		return nil, mismatch("%v", err)
	}
	for _, id := range set.IDs() {
		u := set[id]
		if f, ok := byName[u.File]; !ok || f.SHA256 != u.SHA256 {
			return nil, mismatch("units.json names unit %s as %s with sha256 %s, which is not among the outputs", id, u.File, u.SHA256)
		}
	}
	root := set.Root()
	uc := &UnitsCheck{Count: len(set), Root: hex.EncodeToString(root[:])}
	cs, err := c.Commitments(ctx, client.CommitmentFilter{Lease: l.ID})
	if err != nil {
		return nil, fmt.Errorf("lease %d: work commitments: %w", l.ID, err)
	}
	var cm *verify.Commitment
	for i := range cs {
		if cs[i].Attempt == l.Attempt && cs[i].Checkpoint == 0 {
			cm = &cs[i]
		}
	}
	if cm == nil {
		progress(fmt.Sprintf("units.json: %d units, Merkle root %s…; the provider committed none for verification, so no verifier checks them (dispute the lease to have them checked)", uc.Count, uc.Root[:12]))
		return uc, nil
	}
	if cm.Root != uc.Root || int(cm.Units) != uc.Count {
		return nil, mismatch("units.json has %d units with Merkle root %s…, but the provider committed %d units with root %s… for verification (commitment %d)",
			uc.Count, uc.Root[:12], cm.Units, cm.Root[:min(12, len(cm.Root))], cm.ID)
	}
	uc.Commitment, uc.State = cm.ID, cm.State
	msg := fmt.Sprintf("units.json: %d units, Merkle root %s… as committed for verification (commitment %d, %s)", uc.Count, uc.Root[:12], cm.ID, cm.State)
	if cm.State == verify.CommitFraud {
		msg += ": the provider was PROVEN to have faked units of this job; the lease's payments were refunded"
	}
	progress(msg)
	return uc, nil
}

func sha256Of(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// completedLease returns the lease from the chain, waiting for it to close if it is
// active: up to o.Wait, or sealedWait when the provider has sealed the outputs
// already; and the provider's status of the lease.
func completedLease(ctx context.Context, c *client.Client, pc *apiclient.Client, id uint64, o FetchOptions, progress func(string)) (market.Lease, api.LeaseStatus, error) {
	l, err := c.Lease(ctx, id)
	if err != nil {
		return l, api.LeaseStatus{}, fmt.Errorf("lease %d: %w", id, err)
	}
	if l.Kind != market.KindBatch {
		return l, api.LeaseStatus{}, fmt.Errorf("lease %d is a %s lease: only batch leases have outputs to fetch", id, l.Kind)
	}
	st, err := pc.Status(ctx, id)
	if err != nil {
		return l, st, err
	}
	if l.State != market.LeaseActive {
		return l, st, nil
	}
	wait := o.Wait
	if sealed := st.State == api.StateCompleted || st.State == api.StateFailed; sealed && wait < sealedWait {
		wait = sealedWait
	}
	if wait <= 0 {
		return l, st, nil
	}
	progress(fmt.Sprintf("waiting up to %s for lease %d to complete on chain (provider: %s)", wait.Round(time.Second), id, st.State))
	deadline := time.Now().Add(wait)
	for l.State == market.LeaseActive && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return l, st, ctx.Err()
		case <-time.After(o.Poll):
		}
		if l, err = c.Lease(ctx, id); err != nil {
			return l, st, fmt.Errorf("lease %d: %w", id, err)
		}
	}
	if l.State != market.LeaseActive {
		// NB: the status read before the completion may predate the sealing.
		st, err = pc.Status(ctx, id)
	}
	return l, st, err
}

// tellSkipped says which entries of the job's output directory the provider did not
// seal as outputs.
func tellSkipped(progress func(string), id uint64, skipped []api.SkippedOutput, total int) {
	if total == 0 && len(skipped) == 0 {
		return
	}
	total = max(total, len(skipped))
	var b strings.Builder
	fmt.Fprintf(&b, "the provider skipped %d entries the job left in its output directory (only regular files at its top, named [A-Za-z0-9._-], are outputs; return a tree as an archive):", total)
	for _, s := range skipped {
		fmt.Fprintf(&b, " %q (%s);", s.Name, s.Reason)
	}
	if n := total - len(skipped); n > 0 {
		fmt.Fprintf(&b, " and %d more", n)
	}
	progress(strings.TrimSuffix(b.String(), ";"))
}

// rootOf returns proof.ItemsRoot of files given by name and hex SHA-256; a hash that
// is not 32 bytes of hex makes a root no honest listing has.
func rootOf(files []api.FileInfo) []byte {
	items := make([]proof.Item, len(files))
	for i, f := range files {
		b, err := hex.DecodeString(f.SHA256)
		if err != nil || len(b) != 32 {
			return nil
		}
		items[i] = proof.Item{Name: f.Name, SHA256: [32]byte(b)}
	}
	root := proof.ItemsRoot(items)
	return root[:]
}

// filesRoot is rootOf in hex ("" for a listing with a malformed hash).
func filesRoot(files []api.FileInfo) string { return hex.EncodeToString(rootOf(files)) }

// download fetches the listed outputs into a staging directory beside dir, checks
// each against its entry, and moves them into dir (created if needed) once all are
// verified. Without force, a file of the same name already in dir is refused before
// anything is downloaded, and never replaced.
func download(ctx context.Context, pc *apiclient.Client, id uint64, listed []api.FileInfo, dir string, force bool, progress func(string), transfer Transfer) ([]api.FileInfo, error) {
	fi, err := os.Stat(dir)
	exists := err == nil
	switch {
	case exists && !fi.IsDir():
		return nil, fmt.Errorf("fetch outputs of lease %d: %s exists and is not a directory", id, dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("fetch outputs of lease %d: %w", id, err)
	}
	if exists && !force {
		var clash []string
		for _, f := range listed {
			if _, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil {
				clash = append(clash, f.Name)
			}
		}
		if len(clash) > 0 {
			return nil, fmt.Errorf("fetch outputs of lease %d: %w: %s already holds %s; fetch into another directory (--out) or replace them (--force)",
				id, fs.ErrExist, dir, strings.Join(clash, ", "))
		}
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("fetch outputs of lease %d: %w", id, err)
	}
	// NB: beside dir, so that moving a file into place is a rename on one file system;
	// hidden and named for what it is, should a killed fetch leave it behind.
	staging, err := os.MkdirTemp(parent, ".kiln-fetch-"+strconv.FormatUint(id, 10)+"-partial-")
	if err != nil {
		return nil, fmt.Errorf("fetch outputs of lease %d: %w", id, err)
	}
	defer os.RemoveAll(staging)
	var got []api.FileInfo
	for _, want := range listed {
		g, err := downloadOne(ctx, pc, id, want, staging, transfer)
		if err != nil {
			return nil, err
		}
		got = append(got, g)
		progress(fmt.Sprintf("downloaded %s (%d bytes, sha256 %s…)", want.Name, g.Size, g.SHA256[:12]))
	}
	if !exists {
		if err := os.Chmod(staging, 0o755); err != nil {
			return nil, fmt.Errorf("fetch outputs of lease %d: %w", id, err)
		}
		// NB: one rename puts every file in place at once; it fails if dir was created
		// meanwhile with something in it, and then nothing is moved.
		if err := os.Rename(staging, dir); err == nil {
			return got, nil
		} else if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("fetch outputs of lease %d: %w", id, err)
		}
	}
	var placed []string
	for _, f := range got {
		if err := place(filepath.Join(staging, f.Name), filepath.Join(dir, f.Name), force); err != nil {
			msg := "nothing was written"
			if len(placed) > 0 {
				msg = "verified outputs written: " + strings.Join(placed, ", ")
			}
			return nil, fmt.Errorf("fetch outputs of lease %d: %w (%s)", id, err, msg)
		}
		placed = append(placed, f.Name)
	}
	return got, nil
}

// downloadOne downloads one output into dir and checks it against its listed size
// and SHA-256 (the listing is bound to the chain's root).
func downloadOne(ctx context.Context, pc *apiclient.Client, id uint64, want api.FileInfo, dir string, transfer Transfer) (api.FileInfo, error) {
	path := filepath.Join(dir, want.Name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return api.FileInfo{}, fmt.Errorf("fetch outputs of lease %d: %w", id, err)
	}
	bar := transfer.meter("download "+want.Name, want.Size)
	got, err := pc.DownloadOutput(ctx, id, want.Name, io.MultiWriter(f, bar))
	bar.Close()
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fetch outputs of lease %d: write %s: %w", id, want.Name, cerr)
	}
	if err != nil {
		return got, err
	}
	if got.Size != want.Size || got.SHA256 != strings.ToLower(want.SHA256) {
		return got, fmt.Errorf("fetch outputs of lease %d: %w: received %s as %d bytes with sha256 %s, the listing bound to the root says %d bytes with sha256 %s",
			id, ErrOutputsMismatch, want.Name, got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return got, nil
}

// place moves a verified file from the staging directory to dst: with force it
// replaces what is there; without, it fails if dst exists (a hard link, which never
// replaces, then the staged name removed).
func place(src, dst string, force bool) error {
	if force {
		return os.Rename(src, dst)
	}
	err := os.Link(src, dst)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s was created meanwhile; not replaced (--force replaces it)", dst)
	}
	if err != nil {
		// NB: a file system without hard links: check, then rename; a file created
		// between the two would be replaced, which only a racing writer can cause.
		if _, lerr := os.Lstat(dst); lerr == nil {
			return fmt.Errorf("%s was created meanwhile; not replaced (--force replaces it)", dst)
		}
		return os.Rename(src, dst)
	}
	return os.Remove(src)
}
