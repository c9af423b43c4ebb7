package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/work/units"
)

// VerifierSource tells whether an account is a registered verifier on chain.
type VerifierSource interface {
	IsVerifier(ctx context.Context, account string) (bool, error)
}

// UnitProof is one unit of a lease's committed work as the provider serves it to a
// verifier: the unit's bytes and the Merkle path from (unit id, SHA-256 of the bytes)
// to the root the provider committed (units.Set.Root).
type UnitProof struct {
	Unit  string      `json:"unit"`
	File  string      `json:"file"`
	Data  []byte      `json:"data"`
	Proof proof.Proof `json:"proof"`
	Root  string      `json:"root"`
}

// Error codes of the units route.
const (
	CodeNotVerifier = "not_verifier"
	CodeNoUnits     = "no_units"
)

// ownerOrVerifier serves a lease route to its tenant and to registered verifiers (who
// re-execute sampled units of any lease; the lease's units are theirs to read).
func (s *Server) ownerOrVerifier(h leaseHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lease, err := s.authorize(r, false)
		var e *Error
		if errors.As(err, &e) && e.Code == CodeNotLeaseOwner && s.deps.Verifiers != nil {
			account := r.TLS.PeerCertificates[0].Subject.CommonName
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ChainTimeout)
			ok, verr := s.deps.Verifiers.IsVerifier(ctx, account)
			cancel()
			switch {
			case verr != nil:
				err = &Error{Status: http.StatusServiceUnavailable, Code: CodeChainUnavailable, Message: fmt.Sprintf("read verifier %s from the chain: %v", account, verr)}
			case !ok:
				err = forbidden(CodeNotVerifier, fmt.Sprintf("%s is neither lease %s's tenant nor a registered verifier", account, r.PathValue("id")))
			default:
				lease, err = s.leaseAnyOwner(r)
			}
		}
		if err != nil {
			if !errors.As(err, &e) {
				e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: err.Error()}
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
func (s *Server) leaseAnyOwner(r *http.Request) (LeaseInfo, error) {
	var id uint64
	fmt.Sscan(r.PathValue("id"), &id)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ChainTimeout)
	defer cancel()
	l, err := s.deps.Leases.Lease(ctx, id)
	if err != nil {
		return LeaseInfo{}, &Error{Status: http.StatusServiceUnavailable, Code: CodeChainUnavailable, Message: fmt.Sprintf("read lease %d from the chain: %v", id, err)}
	}
	return l, nil
}

// getUnit serves GET /v1/leases/{id}/units/{unit}: the unit's bytes and its Merkle
// proof under the root of the lease's units.json.
//
// GET /v1/leases/{id}/units/{unit}?index=1 names the unit by its index in the
// committed order (units sorted by id), which is how the chain samples them.
func (s *Server) getUnit(w http.ResponseWriter, r *http.Request, lease LeaseInfo) {
	id := r.PathValue("unit")
	byIndex := r.URL.Query().Get("index") == "1"
	var index int
	if byIndex {
		if _, err := fmt.Sscan(id, &index); err != nil || index < 0 || fmt.Sprint(index) != id {
			writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeBadName, Message: fmt.Sprintf("unit index %q: must be a decimal number >= 0", id)})
			return
		}
	} else if err := units.ValidID(id); err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeBadName, Message: fmt.Sprintf("unit id %q: %v", id, err)})
		return
	}
	noUnits := &Error{Status: http.StatusNotFound, Code: CodeNoUnits, Message: fmt.Sprintf("lease %d has no units.json among its outputs", lease.ID)}
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
			writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("lease %d has %d units, no unit %d", lease.ID, len(ids), index)})
			return
		}
		id = ids[index]
	}
	u, ok := set[id]
	if !ok {
		writeError(w, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: fmt.Sprintf("lease %d has no unit %s", lease.ID, id)})
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
	writeJSON(w, http.StatusOK, UnitProof{Unit: id, File: u.File, Data: data, Proof: p, Root: fmt.Sprintf("%x", root[:])})
}

// Unit fetches one unit of a lease's committed work with its Merkle proof. The caller
// checks the proof against the root committed on chain: the provider is not trusted.
func (c *Client) Unit(ctx context.Context, leaseID uint64, unit string) (UnitProof, error) {
	var u UnitProof
	return u, c.getJSON(ctx, c.leaseURL(leaseID, "units", unit), fmt.Sprintf("unit %s of lease %d", unit, leaseID), &u)
}

// UnitAt fetches the unit at index (in committed order: units sorted by id), as the
// chain samples them, with its Merkle proof.
func (c *Client) UnitAt(ctx context.Context, leaseID uint64, index uint32) (UnitProof, error) {
	var u UnitProof
	return u, c.getJSON(ctx, c.leaseURL(leaseID, "units", fmt.Sprint(index))+"?index=1", fmt.Sprintf("unit %d of lease %d", index, leaseID), &u)
}
