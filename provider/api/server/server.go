// Package server serves the provider's tenant API over mutual TLS: manifests, inputs, status, logs, outputs and ingress, to the lease owner's certificate only.
//
// It requests client certificates without verifying them in the handshake, so
// that every certificate problem is answered as HTTP 403 with a JSON body
// naming it (api.Error.Code) instead of a TLS alert the client shows as "bad
// certificate". Wire types are in provider/api.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/proof"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/vault"
)

// Config configures the provider's HTTPS API.
type Config struct {
	// Addr is the address ListenAndServe listens on, e.g. ":8443".
	Addr string
	// Certificate is the provider's server certificate and key; tenants pin
	// its certificate as published in the provider's registry record. Required.
	Certificate tls.Certificate
	// MaxInputBytes caps a lease's inputs in total; a lease's own
	// LeaseInfo.MaxInputBytes may only lower it.
	MaxInputBytes int64
	// MaxImageBytes caps one uploaded image archive (`docker save` output).
	MaxImageBytes int64
	// MaxManifestBytes caps a manifest's JSON body.
	MaxManifestBytes int64
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// TransferTimeout bounds one upload or download body, and a followed log.
	TransferTimeout time.Duration
	// ChainTimeout bounds each LeaseSource and CertSource call.
	ChainTimeout time.Duration
	// Clock returns the time certificates are checked at; nil means time.Now.
	Clock func() time.Time
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a config with every field but Certificate set.
func DefaultConfig() Config {
	return Config{
		Addr:             ":8443",
		MaxInputBytes:    1 << 30, // 1 GiB: datasets larger than this belong in object storage
		MaxManifestBytes: 1 << 20, // 1 MiB: a manifest of hundreds of services
		// 2 GiB: a CUDA runtime image with a framework; model weights belong in inputs.
		MaxImageBytes: 2 << 30,
		// 10 s: headers are small; longer only helps slowloris.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// 1 h: 1 GiB at 2.4 Mbit/s, the slowest uplink we promise to serve.
		TransferTimeout: time.Hour,
		// 10 s: a local node answers ABCI queries in milliseconds.
		ChainTimeout: 10 * time.Second,
	}
}

// Validate checks the config.
func (c Config) Validate() error {
	if len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil {
		return errors.New("api: certificate: must be set (cert and key)")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max input bytes", c.MaxInputBytes},
		{"max manifest bytes", c.MaxManifestBytes},
		{"max image bytes", c.MaxImageBytes},
		{"read header timeout", int64(c.ReadHeaderTimeout)},
		{"idle timeout", int64(c.IdleTimeout)},
		{"transfer timeout", int64(c.TransferTimeout)},
		{"chain timeout", int64(c.ChainTimeout)},
	} {
		if f.v <= 0 {
			return fmt.Errorf("api: %s: must be > 0 (got %d)", f.name, f.v)
		}
	}
	return nil
}

// Deps are what the server reads and drives.
type Deps struct {
	// Leases and Certs read the chain.
	Leases api.LeaseSource
	Certs  api.CertSource
	// Runner runs workloads.
	Runner api.Runner
	// Vault stores inputs and outputs.
	Vault *vault.Vault
	// Verifiers, if set, lets the verifiers the chain assigned work on a lease read
	// its units with their Merkle proofs (GET /v1/leases/{id}/units/{unit}) and the
	// assets its job pins (GET /v1/leases/{id}/assets/{name}); nil: tenants only.
	Verifiers api.VerifierSource
}

// Server is the provider's tenant API. Create it with NewServer.
type Server struct {
	cfg    Config
	deps   Deps
	inputs inputQuota
	log    *slog.Logger
	now    func() time.Time
	tls    *tls.Config
	srv    *http.Server
	proxy  *http.Transport
}

// NewServer returns a server; it listens once Serve or ListenAndServe is called.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Leases == nil || deps.Certs == nil || deps.Runner == nil || deps.Vault == nil {
		return nil, errors.New("api: deps: leases, certs, runner and vault must be set")
	}
	s := &Server{cfg: cfg, deps: deps, now: cfg.Clock, log: cfg.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "api")
	s.tls = &tls.Config{
		Certificates: []tls.Certificate{cfg.Certificate},
		// NB: request, do not verify: a certificate that is expired or
		// unknown must reach the handler to be answered with a readable
		// 403, not fail the handshake. The handshake still proves the
		// client holds the certificate's key (CertificateVerify).
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS13,
		// HTTP/1.1 only: bulk transfers are faster without HTTP/2 framing
		// and flow control, and the ingress proxies HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	}
	s.proxy = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
	s.srv = &http.Server{
		Addr:              cfg.Addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// TLSConfig returns the server's TLS config, for serving the handler on a
// listener of one's own.
func (s *Server) TLSConfig() *tls.Config { return s.tls.Clone() }

// Serve serves HTTPS on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(tls.NewListener(ln, s.tls))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on Config.Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.proxy.CloseIdleConnections()
	return s.srv.Shutdown(ctx)
}

// Close closes the listener and every connection.
func (s *Server) Close() error {
	s.proxy.CloseIdleConnections()
	return s.srv.Close()
}

// Handler returns the API's routes. It expects requests over TLS with the
// config from TLSConfig; without TLS every lease route answers 403.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("PUT /v1/leases/{id}/manifest", s.owner(true, s.putManifest))
	mux.Handle("GET /v1/leases/{id}/inputs", s.owner(false, s.listInputs))
	mux.Handle("PUT /v1/leases/{id}/inputs/{name}", s.owner(true, s.putInput))
	mux.Handle("PUT /v1/leases/{id}/images", s.owner(true, s.putImage))
	mux.Handle("GET /v1/leases/{id}/status", s.owner(false, s.status))
	mux.Handle("GET /v1/leases/{id}/logs", s.owner(false, s.logs))
	mux.Handle("GET /v1/leases/{id}/outputs", s.owner(false, s.listOutputs))
	mux.Handle("GET /v1/leases/{id}/outputs/{name}", s.owner(false, s.getOutput))
	mux.Handle("GET /v1/leases/{id}/units/{unit}", s.ownerOrVerifier(s.getUnit))
	mux.Handle("GET /v1/leases/{id}/assets/{name}", s.ownerOrVerifier(s.getAsset))
	mux.Handle("/v1/leases/{id}/ingress", s.owner(true, s.ingress))
	mux.Handle("/v1/leases/{id}/ingress/{path...}", s.owner(true, s.ingress))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// leaseHandler serves a request already authorised for lease.
type leaseHandler func(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo)

// owner authorises a lease route: a client certificate, valid now, the one
// its CommonName's account published on chain, of the lease's owner; with
// active, the lease must also be active. Nothing runs otherwise.
func (s *Server) owner(active bool, h leaseHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lease, err := s.authorize(r, active)
		if err != nil {
			var e *api.Error
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

func (s *Server) authorize(r *http.Request, active bool) (api.LeaseInfo, error) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadLeaseID, Message: fmt.Sprintf("lease id %q: must be a decimal number", r.PathValue("id"))}
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return api.LeaseInfo{}, forbidden(api.CodeClientCertRequired, "no client certificate was presented; connect with the certificate your account published on chain (kiln tx cert publish)")
	}
	cert := r.TLS.PeerCertificates[0]
	now := s.now()
	if now.After(cert.NotAfter) {
		return api.LeaseInfo{}, forbidden(api.CodeCertExpired, fmt.Sprintf("the client certificate of %q expired at %s (now %s); create and publish a new one", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	if now.Before(cert.NotBefore) {
		return api.LeaseInfo{}, forbidden(api.CodeCertNotYetValid, fmt.Sprintf("the client certificate of %q is valid only from %s (now %s); check the clocks", cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	owner := cert.Subject.CommonName
	if owner == "" {
		return api.LeaseInfo{}, forbidden(api.CodeCertNotPublished, "the client certificate's subject common name is empty; it must be your account address")
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ChainTimeout)
	defer cancel()
	published, err := s.deps.Certs.ClientCert(ctx, owner)
	if errors.Is(err, api.ErrCertNotPublished) {
		return api.LeaseInfo{}, forbidden(api.CodeCertNotPublished, fmt.Sprintf("account %s has no client certificate published on chain; publish it with kiln tx cert publish", owner))
	}
	if err != nil {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeChainUnavailable, Message: fmt.Sprintf("read the certificate of %s from the chain: %v", owner, err)}
	}
	if !bytes.Equal(published.Raw, cert.Raw) {
		return api.LeaseInfo{}, forbidden(api.CodeCertMismatch, fmt.Sprintf("the client certificate presented (sha256 %s) is not the one account %s published on chain (sha256 %s); publish this one or connect with that one", api.Short(api.Fingerprint(cert.Raw)), owner, api.Short(api.Fingerprint(published.Raw))))
	}
	lease, err := s.deps.Leases.Lease(ctx, id)
	var elsewhere *api.LeaseElsewhereError
	if errors.As(err, &elsewhere) {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusMisdirectedRequest, Code: api.CodeLeaseElsewhere,
			Message: fmt.Sprintf("lease %d is run by provider %s, not by this one; ask that provider (kiln query registry provider %s gives its endpoint)", id, elsewhere.Provider, elsewhere.Provider)}
	}
	if errors.Is(err, api.ErrLeaseNotFound) {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusNotFound, Code: api.CodeLeaseNotFound, Message: fmt.Sprintf("lease %d does not exist", id)}
	}
	if err != nil {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeChainUnavailable, Message: fmt.Sprintf("read lease %d from the chain: %v", id, err)}
	}
	if lease.Owner != owner {
		return api.LeaseInfo{}, forbidden(api.CodeNotLeaseOwner, fmt.Sprintf("lease %d belongs to %s, not to %s, whose certificate was presented", id, lease.Owner, owner))
	}
	if active && !lease.Active {
		return api.LeaseInfo{}, &api.Error{Status: http.StatusConflict, Code: api.CodeLeaseNotActive, Message: fmt.Sprintf("lease %d is no longer active", id)}
	}
	return lease, nil
}

func forbidden(code, msg string) *api.Error {
	return &api.Error{Status: http.StatusForbidden, Code: code, Message: msg}
}

func (s *Server) internal(w http.ResponseWriter, step string, err error) {
	s.log.Error("request failed", "step", step, "err", err)
	writeError(w, &api.Error{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: step + ": " + err.Error()})
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxManifestBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeError(w, &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeManifestTooLarge, Message: fmt.Sprintf("the manifest is over the limit of %d bytes", s.cfg.MaxManifestBytes)})
		return
	}
	if err != nil {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadManifest, Message: "read manifest: " + err.Error()})
		return
	}
	var m api.Manifest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadManifest, Message: "decode manifest: " + err.Error()})
		return
	}
	if err := api.CheckManifest(m, lease.Resources); err != nil {
		code := api.CodeBadManifest
		var me *api.ManifestError
		if errors.As(err, &me) && me.Exceeds {
			code = api.CodeManifestExceedsOrder
		}
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: code, Message: err.Error()})
		return
	}
	// The workload outlives the request; Deploy only bounds its start by ctx.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Minute)
	defer cancel()
	if err := s.deps.Runner.Deploy(ctx, lease, m); err != nil {
		if errors.Is(err, api.ErrAlreadyDeployed) {
			writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyDeployed, Message: fmt.Sprintf("lease %d already runs a manifest", lease.ID)})
			return
		}
		if errors.Is(err, api.ErrImageNotAllowed) {
			writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeImageNotAllowed, Message: err.Error()})
			return
		}
		if errors.Is(err, api.ErrImagesUnsupported) {
			writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeImagesUnsupported, Message: err.Error()})
			return
		}
		if errors.Is(err, api.ErrStartFailed) {
			// NB: not the tenant's request at fault, and not an internal error of
			// the API: the provider's executor could not run the workload.
			s.log.Warn("workload failed to start", "lease", lease.ID, "err", err)
			writeError(w, &api.Error{Status: http.StatusBadGateway, Code: api.CodeStartFailed, Message: err.Error()})
			return
		}
		s.internal(w, fmt.Sprintf("deploy lease %d", lease.ID), err)
		return
	}
	s.log.Info("manifest deployed", "lease", lease.ID, "services", len(m.Services))
	st, err := s.deps.Runner.Status(r.Context(), lease.ID)
	if err != nil {
		st = api.LeaseStatus{LeaseID: lease.ID, Kind: lease.Kind, State: api.StateRunning}
	}
	writeJSON(w, http.StatusAccepted, st)
}

func (s *Server) putInput(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadName, Message: fmt.Sprintf("input name %q: must match %s and not be . or ..", name, vault.NamePattern)})
		return
	}
	if _, err := s.deps.Runner.Status(r.Context(), lease.ID); err == nil {
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyDeployed, Message: fmt.Sprintf("lease %d is deployed; upload inputs before sending the manifest", lease.ID)})
		return
	}
	limit := s.cfg.MaxInputBytes
	if lease.MaxInputBytes > 0 && lease.MaxInputBytes < limit {
		limit = lease.MaxInputBytes
	}
	vl, err := s.deps.Vault.Lease(lease.ID)
	if err != nil {
		s.internal(w, "open vault", err)
		return
	}
	tooLarge := func(left int64) *api.Error {
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeInputTooLarge,
			Message: fmt.Sprintf("input %s is over the limit: lease %d may store %d bytes of inputs in all, %d are left", name, lease.ID, limit, max(left, 0))}
	}
	// NB: reserve before writing: uploads to one lease run in parallel, and
	// each must see the room the others hold (see inputQuota).
	up, left, err := s.inputs.begin(lease.ID, name, limit, max(r.ContentLength, 0), vl.Inputs)
	switch {
	case errors.Is(err, errUploadInProgress):
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeUploadInProgress, Message: fmt.Sprintf("input %s of lease %d is being uploaded by another request; retry once it ends", name, lease.ID)})
		return
	case err != nil:
		s.internal(w, "list inputs", err)
		return
	case up == nil:
		w.Header().Set("Connection", "close")
		writeError(w, tooLarge(left))
		return
	}
	var stored *vault.File
	defer func() { up.end(stored) }()
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.TransferTimeout))
	f, err := vl.PutInput(name, quotaReader{r: r.Body, u: up}, limit)
	if errors.Is(err, errOverQuota) || errors.Is(err, vault.ErrTooLarge) {
		w.Header().Set("Connection", "close")
		writeError(w, tooLarge(up.left()))
		return
	}
	if err != nil {
		s.internal(w, "store input "+name, err)
		return
	}
	stored = &f
	s.log.Info("input stored", "lease", lease.ID, "name", name, "size", f.Size)
	writeJSON(w, http.StatusCreated, fileInfo(f))
}

// imageIDPattern is an image ID as the Docker Engine writes it.
var imageIDPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// putImage streams a `docker save` archive to the runner, which loads it for
// the lease's manifest to name by ID. Like inputs, images come before the
// manifest.
func (s *Server) putImage(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	want := r.Header.Get(api.HeaderImageID)
	if want != "" && !imageIDPattern.MatchString(want) {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: fmt.Sprintf("%s %q: must be sha256:<64 lower-case hex>, as docker image inspect prints it", api.HeaderImageID, want)})
		return
	}
	limit := s.cfg.MaxImageBytes
	tooLarge := &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeImageTooLarge,
		Message: fmt.Sprintf("the image archive is over this provider's limit of %d bytes", limit)}
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		writeError(w, tooLarge)
		return
	}
	if _, err := s.deps.Runner.Status(r.Context(), lease.ID); err == nil {
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyDeployed, Message: fmt.Sprintf("lease %d is deployed; upload images before sending the manifest", lease.ID)})
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.TransferTimeout))
	var n api.CountingWriter
	id, err := s.deps.Runner.LoadImage(r.Context(), lease.ID, io.TeeReader(r.Body, &n), limit, want)
	switch {
	case err == nil:
	case errors.Is(err, api.ErrImagesUnsupported):
		w.Header().Set("Connection", "close")
		writeError(w, &api.Error{Status: http.StatusNotImplemented, Code: api.CodeImagesUnsupported,
			Message: fmt.Sprintf("%v; send a manifest with commands only, or lease from a provider with the docker executor", err)})
		return
	case errors.Is(err, api.ErrImageTooLarge):
		w.Header().Set("Connection", "close")
		writeError(w, tooLarge)
		return
	case errors.Is(err, api.ErrImageDigest):
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeImageDigestMismatch, Message: err.Error()})
		return
	case errors.Is(err, api.ErrBadImage):
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadImage, Message: err.Error()})
		return
	case errors.Is(err, api.ErrAlreadyDeployed):
		writeError(w, &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyDeployed, Message: fmt.Sprintf("lease %d is deployed; upload images before sending the manifest", lease.ID)})
		return
	default:
		s.internal(w, fmt.Sprintf("load image for lease %d", lease.ID), err)
		return
	}
	s.log.Info("image loaded", "lease", lease.ID, "id", id, "size", int64(n))
	writeJSON(w, http.StatusCreated, api.ImageInfo{ID: id, Size: int64(n)})
}

func fileInfo(f vault.File) api.FileInfo {
	return api.FileInfo{Name: f.Name, Size: f.Size, SHA256: f.SHA256Hex()}
}

func (s *Server) listInputs(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	s.list(w, lease.ID, (*vault.Lease).Inputs)
}

func (s *Server) listOutputs(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	s.list(w, lease.ID, (*vault.Lease).Outputs)
}

func (s *Server) list(w http.ResponseWriter, id uint64, get func(*vault.Lease) ([]vault.File, error)) {
	out := []api.FileInfo{}
	vl, err := s.deps.Vault.Find(id)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		s.internal(w, "open vault", err)
		return
	}
	if err == nil {
		files, err := get(vl)
		if err != nil {
			s.internal(w, "list files", err)
			return
		}
		for _, f := range files {
			out = append(out, fileInfo(f))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getOutput(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	name := r.PathValue("name")
	if err := vault.ValidateName(name); err != nil {
		writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadName, Message: fmt.Sprintf("output name %q: must match %s and not be . or ..", name, vault.NamePattern)})
		return
	}
	notFound := &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("lease %d has no output %s", lease.ID, name)}
	vl, err := s.deps.Vault.Find(lease.ID)
	if errors.Is(err, vault.ErrNotFound) {
		writeError(w, notFound)
		return
	}
	if err != nil {
		s.internal(w, "open vault", err)
		return
	}
	s.serveOutput(w, lease.ID, vl, name, "")
}

// serveOutput streams output name of lease id with its SHA-256 in HeaderSHA256. With
// want set, the stored file must have that hash (an asset pinned in job.json); a file
// that does not is an internal error, never served.
func (s *Server) serveOutput(w http.ResponseWriter, id uint64, vl *vault.Lease, name, want string) {
	rc, f, err := vl.OutputReader(name)
	if errors.Is(err, vault.ErrNotFound) {
		writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: fmt.Sprintf("lease %d has no output %s", id, name)})
		return
	}
	if err != nil {
		s.internal(w, "open output "+name, err)
		return
	}
	defer rc.Close()
	if want != "" && f.SHA256Hex() != want {
		s.internal(w, "serve "+name, fmt.Errorf("stored with sha256 %s, job.json pins %s", f.SHA256Hex(), want))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set(api.HeaderSHA256, f.SHA256Hex())
	w.WriteHeader(http.StatusOK)
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.TransferTimeout))
	if _, err := vault.CopyHashed(w, nil, rc); err != nil {
		s.log.Warn("output download aborted", "lease", id, "name", name, "err", err)
		// NB: abort the connection so the client sees a truncated body, never
		// a short one that looks complete.
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	st, err := s.deps.Runner.Status(r.Context(), lease.ID)
	if errors.Is(err, api.ErrNotDeployed) {
		st = api.LeaseStatus{LeaseID: lease.ID, Kind: lease.Kind, State: api.StatePending}
		if !lease.Active {
			// NB: not "pending": nothing will ever run for a closed lease.
			st.State = api.StateClosed
			st.Error = fmt.Sprintf("lease %d is closed on chain and runs nothing on this provider (kiln lease status %d shows why it closed)", lease.ID, lease.ID)
		}
		if vl, err := s.deps.Vault.Find(lease.ID); err == nil {
			if files, err := vl.Inputs(); err == nil && lease.Active {
				for _, f := range files {
					st.Inputs = append(st.Inputs, fileInfo(f))
				}
			}
			if files, err := vl.Outputs(); err == nil && len(files) > 0 {
				for _, f := range files {
					st.Outputs = append(st.Outputs, fileInfo(f))
				}
				root := proof.ItemsRoot(vault.Items(files))
				st.OutputsRoot = hex.EncodeToString(root[:])
			}
		}
	} else if err != nil {
		s.internal(w, "read status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	q := r.URL.Query()
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	sel := api.LogSelector{Service: q.Get("service")}
	if v := q.Get("replica"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, &api.Error{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: fmt.Sprintf("replica %q: must be a number >= 0", v)})
			return
		}
		sel.Replica = n
	}
	ctx := r.Context()
	if follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.TransferTimeout)
		defer cancel()
	}
	rc, err := s.deps.Runner.Logs(ctx, lease.ID, sel, follow)
	if errors.Is(err, api.ErrNotDeployed) {
		writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotDeployed, Message: fmt.Sprintf("lease %d has no such task deployed (service %q, replica %d)", lease.ID, sel.Service, sel.Replica)})
		return
	}
	if err != nil {
		s.internal(w, "read logs", err)
		return
	}
	defer rc.Close()
	go func() { <-ctx.Done(); rc.Close() }()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rcw := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if follow {
				rcw.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) ingress(w http.ResponseWriter, r *http.Request, lease api.LeaseInfo) {
	target, ok := s.deps.Runner.ServiceAddr(lease.ID)
	if !ok {
		writeError(w, &api.Error{Status: http.StatusNotFound, Code: api.CodeNoServicePort, Message: fmt.Sprintf("lease %d exposes no running global TCP port", lease.ID)})
		return
	}
	prefix := "/v1/leases/" + r.PathValue("id") + "/ingress"
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			pr.Out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(pr.In.URL.Path, prefix), "/")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = target
			pr.SetXForwarded()
		},
		Transport:     s.proxy,
		FlushInterval: -1, // stream: server-sent events, chunked responses
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.log.Warn("ingress failed", "lease", lease.ID, "target", target, "err", err)
			writeError(w, &api.Error{Status: http.StatusBadGateway, Code: api.CodeServiceUnavailable, Message: fmt.Sprintf("lease %d's service did not answer on its port", lease.ID)})
		},
	}
	rp.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *api.Error) {
	writeJSON(w, e.Status, e)
}
