package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/work/units"
)

// ownerOrVerifier serves a lease route to its tenant and to the verifiers the chain
// has assigned work on the lease now (a check of one of its commitments, or a committee
// vote on a challenge of one): a lease's units and inputs are the tenant's, shown only
// to those who must re-execute them, and only while they must.
func (s *Server) ownerOrVerifier(h leaseHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lease, err := s.authorize(r, false)
		var e *api.Error
		if errors.As(err, &e) && e.Code == api.CodeNotLeaseOwner && s.deps.Verifiers != nil {
			account := r.TLS.PeerCertificates[0].Subject.CommonName
			var id uint64
			fmt.Sscan(r.PathValue("id"), &id)
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ChainTimeout)
			ok, verr := s.deps.Verifiers.HasDuty(ctx, id, account)
			cancel()
			switch {
			case verr != nil:
				err = &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeChainUnavailable, Message: fmt.Sprintf("read the verification duties of %s from the chain: %v", account, verr)}
			case !ok:
				err = forbidden(api.CodeNotAssigned, fmt.Sprintf("%s is neither lease %d's tenant nor a verifier the chain assigned to check it now", account, id))
			default:
				lease, err = s.leaseAnyOwner(r)
			}
		}
		if err != nil {
			if !errors.As(err, &e) {
				e = &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: err.Error()}
			}
			s.log.Info("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", e.Status, "code", e.Code, "reason", e.Message)
			writeError(w, e)
			return
		}
		h(w, r, lease)
	})
}

// leaseAnyOwner reads the lease a request names, whoever holds it (authorize has
// checked the client's certificate).
func (s *Server) leaseAnyOwner(r *http.Request) (api.LeaseInfo, error) {
	var id uint64
	fmt.Sscan(r.PathValue("id"), &id)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ChainTimeout)
	defer cancel()
	l, err := s.deps.Leases.Lease(ctx, id)
	if err != nil {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeChainUnavailable, Message: fmt.Sprintf("read lease %d from the chain: %v", id, err)}
	}
	return l, nil
}

// getUnit serves GET /v1/leases/{id}/units/{unit}: the unit's bytes and its Merkle
// proof under the root of the lease's units.json.
//
// GET /v1/leases/{id}/units/{unit}?index=1 names the unit by its index in the
// committed order (units sorted by id), which is how the chain samples them.
func (s *Server) getUnit(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	id := r.PathValue("unit")
	byIndex := r.URL.Query().Get("index") == "1"
	var index int
	if byIndex {
		if _, err := fmt.Sscan(id, &index); err != nil || index < 0 || fmt.Sprint(index) != id {
			writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadName, Message: fmt.Sprintf("unit index %q: must be a decimal number >= 0", id)})
			return
		}
	} else if err := units.ValidID(id); err != nil {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadName, Message: fmt.Sprintf("unit id %q: %v", id, err)})
		return
	}
	noUnits := &api.Error{Status: http.StatusNotFound, Code: api.CodeNoUnits, Message: fmt.Sprintf("lease %d has no units.json among its outputs", lease.ID)}
	vl, err := s.deps.Vault.Find(lease.ID)
	if errors.Is(err, vault.ErrNotFound) {
		writeError(w, noUnits)
		return
	}
	if err != nil {
		s.internal(w, "open vault", err)
		return
	}
	idx, err := vl.ReadOutput(units.FileName, units.MaxIndexSize)
	if errors.Is(err, vault.ErrNotFound) {
		writeError(w, noUnits)
		return
	}
	if err != nil {
		s.internal(w, "read units.json", err)
		return
	}
	set, err := units.Parse(idx)
	if err != nil {
		s.internal(w, "parse units.json", err)
		return
	}
	if byIndex {
		ids := set.IDs()
		if index >= len(ids) {
			writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("lease %d has %d units, no unit %d", lease.ID, len(ids), index)})
			return
		}
		id = ids[index]
	}
	u, ok := set[id]
	if !ok {
		writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("lease %d has no unit %s", lease.ID, id)})
		return
	}
	data, err := vl.ReadOutput(u.File, 1<<30)
	if err != nil {
		s.internal(w, "read unit "+id, err)
		return
	}
	_, p, err := set.Prove(id)
	if err != nil {
		s.internal(w, "prove unit "+id, err)
		return
	}
	root := set.Root()
	writeJSON(w, http.StatusOK, api.UnitProof{Unit: id, File: u.File, Data: data, Proof: p, Root: fmt.Sprintf("%x", root[:])})
}

// getAsset serves GET /v1/leases/{id}/assets/{name}: an input file the lease's job.json
// pins by SHA-256 (a Blender scene, a dataset, a training script), which a verifier
// needs to re-execute units. Only pinned names are served, and only with the pinned
// hash: the client checks the bytes against the job committed on chain.
func (s *Server) getAsset(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadName, Message: fmt.Sprintf("asset name %q: must match %s and not be . or ..", name, vault.NamePattern)})
		return
	}
	noJob := &api.Error{Status: http.StatusNotFound, Code: api.CodeNoUnits, Message: fmt.Sprintf("lease %d has no job.json among its outputs", lease.ID)}
	vl, err := s.deps.Vault.Find(lease.ID)
	if errors.Is(err, vault.ErrNotFound) {
		writeError(w, noJob)
		return
	}
	if err != nil {
		s.internal(w, "open vault", err)
		return
	}
	jb, err := vl.ReadOutput(units.JobFile, 1<<20)
	if errors.Is(err, vault.ErrNotFound) {
		writeError(w, noJob)
		return
	}
	if err != nil {
		s.internal(w, "read job.json", err)
		return
	}
	job, err := units.ParseJob(jb)
	if err != nil {
		s.internal(w, "parse job.json", err)
		return
	}
	want, ok := job.Assets[name]
	if !ok {
		writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotPinned, Message: fmt.Sprintf("lease %d's job pins no asset %s (it pins %d)", lease.ID, name, len(job.Assets))})
		return
	}
	s.serveOutput(w, lease.ID, vl, name, want)
}
