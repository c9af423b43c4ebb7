package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/work/units"
)

// ownerOrVerifier serves a lease route to its tenant and to registered verifiers (who
// re-execute sampled units of any lease; the lease's units are theirs to read).
func (s *Server) ownerOrVerifier(h leaseHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lease, err := s.authorize(r, false)
		var e *api.Error
		if errors.As(err, &e) && e.Code == api.CodeNotLeaseOwner && s.deps.Verifiers != nil {
			account := r.TLS.PeerCertificates[0].Subject.CommonName
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ChainTimeout)
			ok, verr := s.deps.Verifiers.IsVerifier(ctx, account)
			cancel()
			switch {
			case verr != nil:
				err = &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeChainUnavailable, Message: fmt.Sprintf("read verifier %s from the chain: %v", account, verr)}
			case !ok:
				err = forbidden(api.CodeNotVerifier, fmt.Sprintf("%s is neither lease %s's tenant nor a registered verifier", account, r.PathValue("id")))
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
	read := func(name string, limit int64) ([]byte, error) {
		rc, _, err := vl.OutputReader(name)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, limit))
	}
	idx, err := read(units.FileName, units.MaxIndexSize)
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
	data, err := read(u.File, 1<<30)
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
