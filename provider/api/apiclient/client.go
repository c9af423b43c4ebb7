// Package apiclient is a tenant's client of a provider's API (provider/api/server): mutual TLS pinned to the certificate the provider published on chain.
package apiclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/vault"
)

// Client is a tenant's client of one provider's API. It is safe for
// concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client of the provider at endpoint (https://host:port)
// that presents clientCert and trusts exactly the provider certificate
// providerCertPEM, as published in the provider's registry record: any other
// server certificate fails the handshake, whatever CA signed it and whatever
// host name it names.
func NewClient(endpoint string, clientCert tls.Certificate, providerCertPEM []byte) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("new provider client: endpoint %q: must be https://host:port", endpoint)
	}
	pinned, err := certpem.Parse(providerCertPEM)
	if err != nil {
		return nil, fmt.Errorf("new provider client: provider certificate: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{clientCert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"http/1.1"},
		// NB: the chain, not a CA, vouches for the provider's certificate,
		// so the usual chain and host name checks are replaced by an exact
		// match against the published certificate in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("provider presented no certificate")
			}
			got := cs.PeerCertificates[0]
			if !bytes.Equal(got.Raw, pinned.Raw) {
				return fmt.Errorf("provider certificate (sha256 %s) is not the one published on chain (sha256 %s)", api.Short(api.Fingerprint(got.Raw)), api.Short(api.Fingerprint(pinned.Raw)))
			}
			if now := time.Now(); now.After(got.NotAfter) || now.Before(got.NotBefore) {
				return fmt.Errorf("provider certificate is valid only from %s to %s", got.NotBefore.UTC().Format(time.RFC3339), got.NotAfter.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}
	return &Client{base: strings.TrimRight(endpoint, "/"), hc: &http.Client{Transport: tr}}, nil
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) leaseURL(id uint64, parts ...string) string {
	var b strings.Builder
	b.WriteString(c.base + "/v1/leases/" + strconv.FormatUint(id, 10))
	for _, p := range parts {
		b.WriteString("/" + url.PathEscape(p))
	}
	return b.String()
}

// do sends req and returns the response if its status is 2xx; otherwise the
// body is decoded into an *Error.
func (c *Client) do(req *http.Request, step string) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &api.Error{Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, e) != nil || e.Code == "" {
		e.Code, e.Message = "http_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(body))
	}
	return nil, fmt.Errorf("%s: %w", step, e)
}

func (c *Client) getJSON(ctx context.Context, u, step string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	resp, err := c.do(req, step)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: decode answer: %w", step, err)
	}
	return nil
}

// Healthz checks that the provider answers; it needs no lease.
func (c *Client) Healthz(ctx context.Context) error {
	var v map[string]string
	return c.getJSON(ctx, c.base+"/v1/healthz", "provider health", &v)
}

// SendManifest sends the lease's manifest, which deploys it, and returns the
// lease's status right after.
func (c *Client) SendManifest(ctx context.Context, leaseID uint64, m api.Manifest) (api.LeaseStatus, error) {
	step := fmt.Sprintf("send manifest of lease %d", leaseID)
	b, err := json.Marshal(m)
	if err != nil {
		return api.LeaseStatus{}, fmt.Errorf("%s: %w", step, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.leaseURL(leaseID, "manifest"), bytes.NewReader(b))
	if err != nil {
		return api.LeaseStatus{}, fmt.Errorf("%s: %w", step, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req, step)
	if err != nil {
		return api.LeaseStatus{}, err
	}
	defer resp.Body.Close()
	var st api.LeaseStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return api.LeaseStatus{}, fmt.Errorf("%s: decode answer: %w", step, err)
	}
	return st, nil
}

// UploadInput streams r to the provider as input name and returns what the
// provider stored: the size and SHA-256 it computed while storing. The
// client checks the size against the bytes sent; it does not hash them again,
// since TLS already guarantees they arrived unaltered and a provider that
// stored something else would lie about the hash as easily (outputs, which
// the tenant cannot otherwise check, are verified on download). size, when
// >= 0, is sent as Content-Length so that an input over the limit is refused
// before it is sent.
func (c *Client) UploadInput(ctx context.Context, leaseID uint64, name string, r io.Reader, size int64) (api.FileInfo, error) {
	step := fmt.Sprintf("upload input %s of lease %d", name, leaseID)
	var n api.CountingWriter
	body := io.TeeReader(r, &n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.leaseURL(leaseID, "inputs", name), io.NopCloser(body))
	if err != nil {
		return api.FileInfo{}, fmt.Errorf("%s: %w", step, err)
	}
	req.ContentLength = -1
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.do(req, step)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer resp.Body.Close()
	var fi api.FileInfo
	if err := json.NewDecoder(resp.Body).Decode(&fi); err != nil {
		return api.FileInfo{}, fmt.Errorf("%s: decode answer: %w", step, err)
	}
	if fi.Size != int64(n) || len(fi.SHA256) != 64 {
		return fi, fmt.Errorf("%s: %w", step, &api.Error{Code: api.CodeHashMismatch, Message: fmt.Sprintf("provider stored %d bytes with sha256 %q, sent %d bytes", fi.Size, fi.SHA256, n)})
	}
	return fi, nil
}

// UploadImage streams a `docker save` archive of one image to the provider
// for the lease, before its manifest, and returns the loaded image, whose ID
// the manifest's services then set as their image. wantID, if set
// ("sha256:<hex>", as `docker image inspect` prints it), is the image the
// archive must hold; the provider refuses another (image_digest_mismatch).
// size, when >= 0, is sent as Content-Length so that an archive over the
// provider's limit is refused before it is sent.
func (c *Client) UploadImage(ctx context.Context, leaseID uint64, r io.Reader, size int64, wantID string) (api.ImageInfo, error) {
	step := fmt.Sprintf("upload image to lease %d", leaseID)
	var n api.CountingWriter
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.leaseURL(leaseID, "images"), io.NopCloser(io.TeeReader(r, &n)))
	if err != nil {
		return api.ImageInfo{}, fmt.Errorf("%s: %w", step, err)
	}
	req.ContentLength = -1
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/x-tar")
	if wantID != "" {
		req.Header.Set(api.HeaderImageID, wantID)
	}
	resp, err := c.do(req, step)
	if err != nil {
		return api.ImageInfo{}, err
	}
	defer resp.Body.Close()
	var ii api.ImageInfo
	if err := json.NewDecoder(resp.Body).Decode(&ii); err != nil {
		return api.ImageInfo{}, fmt.Errorf("%s: decode answer: %w", step, err)
	}
	if ii.Size != int64(n) || (wantID != "" && ii.ID != wantID) || !strings.HasPrefix(ii.ID, "sha256:") {
		return ii, fmt.Errorf("%s: %w", step, &api.Error{Code: api.CodeImageDigestMismatch, Message: fmt.Sprintf("provider loaded image %q from %d bytes; sent %d bytes of image %q", ii.ID, ii.Size, n, wantID)})
	}
	return ii, nil
}

// Inputs lists the lease's stored inputs.
func (c *Client) Inputs(ctx context.Context, leaseID uint64) ([]api.FileInfo, error) {
	var out []api.FileInfo
	return out, c.getJSON(ctx, c.leaseURL(leaseID, "inputs"), fmt.Sprintf("list inputs of lease %d", leaseID), &out)
}

// Status returns the lease's workload status.
func (c *Client) Status(ctx context.Context, leaseID uint64) (api.LeaseStatus, error) {
	var st api.LeaseStatus
	return st, c.getJSON(ctx, c.leaseURL(leaseID, "status"), fmt.Sprintf("status of lease %d", leaseID), &st)
}

// Logs streams a task's log; with follow, until the task exits or ctx ends.
// The caller closes the reader.
func (c *Client) Logs(ctx context.Context, leaseID uint64, sel api.LogSelector, follow bool) (io.ReadCloser, error) {
	step := fmt.Sprintf("logs of lease %d", leaseID)
	q := url.Values{}
	if sel.Service != "" {
		q.Set("service", sel.Service)
	}
	if sel.Replica != 0 {
		q.Set("replica", strconv.Itoa(sel.Replica))
	}
	if follow {
		q.Set("follow", "1")
	}
	u := c.leaseURL(leaseID, "logs")
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	resp, err := c.do(req, step)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ListOutputs lists the lease's sealed outputs.
func (c *Client) ListOutputs(ctx context.Context, leaseID uint64) ([]api.FileInfo, error) {
	var out []api.FileInfo
	return out, c.getJSON(ctx, c.leaseURL(leaseID, "outputs"), fmt.Sprintf("list outputs of lease %d", leaseID), &out)
}

// DownloadOutput streams output name into w, hashing it on the way, and
// fails with an *Error of code hash_mismatch if the bytes do not match the
// hash the provider announced (w has then received them: write to a
// temporary file and rename on success).
func (c *Client) DownloadOutput(ctx context.Context, leaseID uint64, name string, w io.Writer) (api.FileInfo, error) {
	return c.download(ctx, c.leaseURL(leaseID, "outputs", name), name, fmt.Sprintf("download output %s of lease %d", name, leaseID), w)
}

// DownloadAsset streams the asset name that lease leaseID's job pins (a scene, a
// dataset, a script) into w, as DownloadOutput does. Only the tenant and the verifiers
// the chain assigned work on the lease may; the caller checks the hash against the
// job committed on chain: the provider is not trusted.
func (c *Client) DownloadAsset(ctx context.Context, leaseID uint64, name string, w io.Writer) (api.FileInfo, error) {
	return c.download(ctx, c.leaseURL(leaseID, "assets", name), name, fmt.Sprintf("download asset %s of lease %d", name, leaseID), w)
}

func (c *Client) download(ctx context.Context, u, name, step string, w io.Writer) (api.FileInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return api.FileInfo{}, fmt.Errorf("%s: %w", step, err)
	}
	resp, err := c.do(req, step)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer resp.Body.Close()
	want := resp.Header.Get(api.HeaderSHA256)
	if len(want) != 64 {
		return api.FileInfo{}, fmt.Errorf("%s: the provider sent no %s header", step, api.HeaderSHA256)
	}
	h := sha256.New()
	n, err := vault.CopyHashed(w, h, resp.Body)
	if err != nil {
		return api.FileInfo{}, fmt.Errorf("%s: %w", step, err)
	}
	fi := api.FileInfo{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	if fi.SHA256 != strings.ToLower(want) {
		return fi, fmt.Errorf("%s: %w", step, &api.Error{Code: api.CodeHashMismatch, Message: fmt.Sprintf("received %d bytes with sha256 %s, the provider announced %s", n, fi.SHA256, want)})
	}
	return fi, nil
}

// IngressURL returns the URL that reaches path on the lease's service
// through the provider's ingress; send requests to it with HTTPClient.
func (c *Client) IngressURL(leaseID uint64, path string) string {
	return c.leaseURL(leaseID, "ingress") + "/" + strings.TrimPrefix(path, "/")
}

// HTTPClient returns the client's HTTP client, which presents the tenant's
// certificate and pins the provider's; use it for IngressURL.
func (c *Client) HTTPClient() *http.Client { return c.hc }
