package server

import (
	"errors"
	"io"
	"sync"

	"github.com/kiln-network/kiln/provider/vault"
)

// errOverQuota ends an upload whose next bytes would take its lease's inputs
// over the limit.
var errOverQuota = errors.New("inputs over the lease's limit")

// errUploadInProgress refuses a second upload of a name while one runs.
var errUploadInProgress = errors.New("an upload of this input is in progress")

// inputQuota keeps each lease's stored inputs within its limit while uploads
// run concurrently. Every upload reserves room before its bytes reach the
// vault: all of an announced Content-Length at once, a chunked body as it
// arrives. A name counts once, at the most that its stored file or the upload
// replacing it may take, since a vault name holds one file at a time: the
// stored inputs never exceed the limit, whatever the interleaving. One upload
// per name runs at a time, so that what a name holds once it ends is known
// (and the vault never sees two writers of one name).
type inputQuota struct {
	mu     sync.Mutex
	leases map[uint64]*leaseQuota
}

// leaseQuota is one lease's account, kept while uploads to it run.
type leaseQuota struct {
	refs int // uploads holding it; guarded by inputQuota.mu

	mu      sync.Mutex
	loaded  bool
	stored  map[string]int64 // the vault's inputs, as of the last upload's end
	uploads map[*upload]struct{}
}

// upload is one input upload's reservation.
type upload struct {
	q        *inputQuota
	id       uint64
	lq       *leaseQuota
	name     string
	limit    int64
	reserved int64 // bytes the upload may store
	used     int64 // bytes read so far
}

// begin opens an upload of input name to lease id under limit, reserving
// want bytes (0 for a body of unknown size); list reads the lease's stored
// inputs when no other upload to it runs. It returns the upload, or nil and
// the bytes left when want does not fit, or errUploadInProgress. The caller
// must call end on the upload it got.
func (q *inputQuota) begin(id uint64, name string, limit, want int64, list func() ([]vault.File, error)) (*upload, int64, error) {
	q.mu.Lock()
	if q.leases == nil {
		q.leases = map[uint64]*leaseQuota{}
	}
	lq := q.leases[id]
	if lq == nil {
		lq = &leaseQuota{uploads: map[*upload]struct{}{}}
		q.leases[id] = lq
	}
	lq.refs++
	q.mu.Unlock()

	u := &upload{q: q, id: id, lq: lq, name: name, limit: limit}
	lq.mu.Lock()
	defer lq.mu.Unlock()
	if !lq.loaded {
		files, err := list()
		if err != nil {
			q.release(id, lq)
			return nil, 0, err
		}
		lq.stored = map[string]int64{}
		for _, f := range files {
			lq.stored[f.Name] = f.Size
		}
		lq.loaded = true
	}
	for o := range lq.uploads {
		if o.name == name {
			q.release(id, lq)
			return nil, 0, errUploadInProgress
		}
	}
	lq.uploads[u] = struct{}{}
	if left := u.leftLocked(); want > left || left <= 0 {
		delete(lq.uploads, u)
		q.release(id, lq)
		return nil, max(left, 0), nil
	}
	u.reserved = want
	return u, 0, nil
}

// leftLocked returns how many more bytes u may reserve. Each other name
// takes the most of its stored file and its upload's reservation; u's name
// takes the most of its stored file and u's reservation, so u may grow until
// its reservation alone fills what the other names leave.
func (u *upload) leftLocked() int64 {
	take := map[string]int64{}
	for name, size := range u.lq.stored {
		take[name] = size
	}
	for o := range u.lq.uploads {
		if o != u {
			take[o.name] = max(take[o.name], o.reserved)
		}
	}
	var others int64
	for name, n := range take {
		if name != u.name {
			others += n
		}
	}
	return u.limit - others - u.reserved
}

// grow reserves room for n more bytes read; false when they do not fit.
func (u *upload) grow(n int64) bool {
	u.used += n
	if u.used <= u.reserved {
		return true
	}
	u.lq.mu.Lock()
	defer u.lq.mu.Unlock()
	if u.used-u.reserved > u.leftLocked() {
		return false
	}
	u.reserved = u.used
	return true
}

// left returns how many bytes the lease may still take beside u's.
func (u *upload) left() int64 {
	u.lq.mu.Lock()
	defer u.lq.mu.Unlock()
	return max(u.leftLocked()+u.reserved, 0)
}

// end drops u's reservation; stored is what the vault stored under u's name,
// nil when the upload failed and the name keeps what it had. Since u was the
// name's only writer, that is what the name now holds.
func (u *upload) end(stored *vault.File) {
	u.lq.mu.Lock()
	delete(u.lq.uploads, u)
	if stored != nil {
		u.lq.stored[u.name] = stored.Size
	}
	u.lq.mu.Unlock()
	u.q.release(u.id, u.lq)
}

// release forgets lq once no upload holds it: the next upload reads the
// vault again, so that nothing stale (an erased lease) outlives its uploads.
func (q *inputQuota) release(id uint64, lq *leaseQuota) {
	q.mu.Lock()
	defer q.mu.Unlock()
	lq.refs--
	if lq.refs == 0 && q.leases[id] == lq {
		delete(q.leases, id)
	}
}

// quotaReader reads an upload's body, reserving each piece before passing it on.
type quotaReader struct {
	r io.Reader
	u *upload
}

func (r quotaReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 && !r.u.grow(int64(n)) {
		return 0, errOverQuota
	}
	return n, err
}
