package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/ports"
	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	apiserver "github.com/kiln-network/kiln/provider/api/server"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/executortest"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/provider/imageref"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/tenant"
)

// Timeouts of these tests; loose because CI machines are shared and slow.
const (
	// jobTimeout covers a tiny batch job from manifest to sealed outputs.
	jobTimeout = 30 * time.Second
	// serveTimeout covers a service process starting to answer HTTP.
	serveTimeout = 30 * time.Second
)

// fakeChain stands in for the chain's lease and certificate queries.
type fakeChain struct {
	mu     sync.Mutex
	certs  map[string]*x509.Certificate
	leases map[uint64]api.LeaseInfo
	// elsewhere holds leases another provider runs: lease id -> provider.
	elsewhere map[uint64]string
}

func (c *fakeChain) Lease(_ context.Context, id uint64) (api.LeaseInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.elsewhere[id]; ok {
		return api.LeaseInfo{}, &api.LeaseElsewhereError{LeaseID: id, Provider: p}
	}
	l, ok := c.leases[id]
	if !ok {
		return api.LeaseInfo{}, fmt.Errorf("lease %d: %w", id, api.ErrLeaseNotFound)
	}
	return l, nil
}

func (c *fakeChain) ClientCert(_ context.Context, owner string) (*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, ok := c.certs[owner]
	if !ok {
		return nil, fmt.Errorf("cert of %s: %w", owner, api.ErrCertNotPublished)
	}
	return cert, nil
}

func (c *fakeChain) publish(owner string, cert *x509.Certificate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.certs[owner] = cert
}

func (c *fakeChain) addLease(l api.LeaseInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leases[l.ID] = l
}

// countingRunner counts every call that reaches the runner.
type countingRunner struct {
	r     api.Runner
	calls atomic.Int64
	// loadImage, if set, replaces r's LoadImage: a fake executor that loads images.
	loadImage atomic.Pointer[loadImageFunc]
}

type loadImageFunc func(ctx context.Context, id uint64, r io.Reader, max int64, want string) (string, error)

func (c *countingRunner) Deploy(ctx context.Context, l api.LeaseInfo, m api.Manifest) error {
	c.calls.Add(1)
	return c.r.Deploy(ctx, l, m)
}
func (c *countingRunner) Status(ctx context.Context, id uint64) (api.LeaseStatus, error) {
	c.calls.Add(1)
	return c.r.Status(ctx, id)
}
func (c *countingRunner) Logs(ctx context.Context, id uint64, sel api.LogSelector, follow bool) (io.ReadCloser, error) {
	c.calls.Add(1)
	return c.r.Logs(ctx, id, sel, follow)
}
func (c *countingRunner) LoadImage(ctx context.Context, id uint64, r io.Reader, max int64, want string) (string, error) {
	c.calls.Add(1)
	if f := c.loadImage.Load(); f != nil {
		return (*f)(ctx, id, r, max, want)
	}
	return c.r.LoadImage(ctx, id, r, max, want)
}
func (c *countingRunner) ServiceAddr(id uint64) (string, bool) {
	c.calls.Add(1)
	return c.r.ServiceAddr(id)
}

type completion struct {
	root  [32]byte
	codes map[string]int
}

type harness struct {
	chain      *fakeChain
	runner     *countingRunner
	mgr        *lease.Manager
	vault      *vault.Vault
	dir        string
	endpoint   string
	serverPEM  []byte
	clockShift atomic.Int64 // added to time.Now by the server's clock
	completed  chan completion
}

func newHarness(t *testing.T) *harness { t.Helper(); return newHarnessWith(t, nil) }

// newHarnessWith is newHarness whose lease manager runs tasks on wrap(the
// process executor); nil wrap runs them on it as it is.
func newHarnessWith(t *testing.T, wrap func(executor.Executor) executor.Executor) *harness {
	t.Helper()
	h := &harness{dir: t.TempDir(), chain: &fakeChain{certs: map[string]*x509.Certificate{}, leases: map[uint64]api.LeaseInfo{}}, completed: make(chan completion, 4)}
	pcfg := process.DefaultConfig()
	pcfg.AllowUnisolated, pcfg.Dir = true, filepath.Join(h.dir, "exec")
	ex, err := process.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	h.vault, err = vault.Open(vault.Config{Dir: filepath.Join(h.dir, "vault")})
	if err != nil {
		t.Fatal(err)
	}
	lcfg := lease.DefaultConfig()
	lcfg.Dir = filepath.Join(h.dir, "leases")
	lcfg.StopGrace = 2 * time.Second
	if lcfg.Images, err = imageref.NewPolicy([]string{"docker.io"}); err != nil {
		t.Fatal(err)
	}
	lcfg.OnComplete = func(_ uint64, root [32]byte, codes map[string]int) { h.completed <- completion{root, codes} }
	var run executor.Executor = ex
	if wrap != nil {
		run = wrap(ex)
	}
	h.mgr, err = lease.New(lcfg, run, h.vault)
	if err != nil {
		t.Fatal(err)
	}
	h.runner = &countingRunner{r: h.mgr}
	certPEM, keyPEM, err := certpem.Generate("127.0.0.1", []string{"127.0.0.1"}, time.Hour, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	h.serverPEM = certPEM
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiserver.DefaultConfig()
	cfg.Certificate = cert
	cfg.MaxInputBytes = 1 << 20
	cfg.MaxImageBytes = 1 << 20
	cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(h.clockShift.Load())) }
	srv, err := apiserver.NewServer(cfg, apiserver.Deps{Leases: h.chain, Certs: h.chain, Runner: h.runner, Vault: h.vault, Verifiers: h.chain})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	h.endpoint = "https://" + ln.Addr().String()
	t.Cleanup(func() {
		srv.Close()
		for _, id := range h.mgr.Leases() {
			h.mgr.Stop(context.Background(), id)
		}
		h.mgr.Close()
	})
	return h
}

// tenant returns a client for account addr, whose certificate is published
// on chain when publish is set.
func (h *harness) tenant(t *testing.T, addr string, publish bool) *apiclient.Client {
	t.Helper()
	certPEM, keyPEM, err := tenant.GenerateClientCert(addr, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if publish {
		c, err := certpem.Parse(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		h.chain.publish(addr, c)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return h.client(t, pair)
}

func (h *harness) client(t *testing.T, cert tls.Certificate) *apiclient.Client {
	t.Helper()
	c, err := apiclient.NewClient(h.endpoint, cert, h.serverPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

const (
	alice = "kiln1alice0000000000000000000000000000000"
	bob   = "kiln1bob000000000000000000000000000000000"
)

func batchLease(id uint64, owner string) api.LeaseInfo {
	return api.LeaseInfo{ID: id, Owner: owner, Active: true, Kind: api.KindBatch, Resources: []api.ResourceUnit{
		{ID: 1, Count: 1, CPUMilli: 1000, MemoryBytes: 256 << 20, StorageBytes: 1 << 30},
	}}
}

func shManifest(script string) api.Manifest {
	return api.Manifest{Services: []api.Service{{
		Name: "job", Command: []string{"/bin/sh", "-c", script}, Count: 1,
		Resources: api.ServiceResources{CPUMilli: 500, MemoryBytes: 128 << 20},
	}}}
}

// apiError returns err's *api.Error or fails t.
func apiError(t *testing.T, err error) *api.Error {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want an *api.Error", err)
	}
	return e
}

func waitState(t *testing.T, c *apiclient.Client, id uint64, states ...string) api.LeaseStatus {
	t.Helper()
	var st api.LeaseStatus
	poll.WaitFor(t, jobTimeout, func() error {
		var err error
		if st, err = c.Status(context.Background(), id); err != nil {
			t.Fatalf("Status(%d) = %v", id, err)
		}
		if slices.Contains(states, st.State) {
			return nil
		}
		return fmt.Errorf("lease %d: state %q, want %v (%+v)", id, st.State, states, st)
	})
	return st
}

func TestBatchLeaseEndToEnd(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	h.chain.addLease(batchLease(1, alice))
	ctx := context.Background()

	in := []byte("hello kiln\n")
	fi, err := c.UploadInput(ctx, 1, "x", bytes.NewReader(in), int64(len(in)))
	if err != nil {
		t.Fatalf("UploadInput() = %v", err)
	}
	if sum := sha256.Sum256(in); fi.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("UploadInput() sha256 = %s, want %x", fi.SHA256, sum)
	}
	if st, err := c.Status(ctx, 1); err != nil || st.State != api.StatePending || len(st.Inputs) != 1 {
		t.Errorf("Status() before manifest = %+v, %v; want pending with one input", st, err)
	}
	// Besides its output y the job leaves what is not an output: a directory, a link
	// and a named pipe. The provider seals y and tells the tenant what it skipped.
	if _, err := c.SendManifest(ctx, 1, shManifest(`echo working; tr a-z A-Z < "$KILN_IN/x" > "$KILN_OUT/y"; `+
		`mkdir "$KILN_OUT/tree"; ln -s y "$KILN_OUT/link"; mkfifo "$KILN_OUT/pipe"`)); err != nil {
		t.Fatalf("SendManifest() = %v", err)
	}
	st := waitState(t, c, 1, api.StateCompleted, api.StateFailed)
	if st.State != api.StateCompleted {
		t.Fatalf("lease 1 ended %q: %s", st.State, st.Error)
	}
	wantSkipped := []api.SkippedOutput{
		{Name: "link", Reason: "symbolic link: only regular files are outputs"},
		{Name: "pipe", Reason: "named pipe (FIFO): only regular files are outputs"},
		{Name: "tree", Reason: "directory: only regular files are outputs"},
	}
	if !slices.Equal(st.Skipped, wantSkipped) || st.SkippedTotal != 3 {
		t.Errorf("Status().Skipped = %+v (total %d), want %+v", st.Skipped, st.SkippedTotal, wantSkipped)
	}

	want := []byte("HELLO KILN\n")
	wantSum := sha256.Sum256(want)
	outs, err := c.ListOutputs(ctx, 1)
	if err != nil || len(outs) != 1 || outs[0].Name != "y" || outs[0].SHA256 != hex.EncodeToString(wantSum[:]) {
		t.Fatalf("ListOutputs() = %+v, %v; want y with sha256 %x", outs, err, wantSum)
	}
	var buf bytes.Buffer
	if _, err := c.DownloadOutput(ctx, 1, "y", &buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("DownloadOutput() = %q, %v; want %q", buf.Bytes(), err, want)
	}
	select {
	case got := <-h.completed:
		wantRoot := proof.ItemsRoot([]proof.Item{{Name: "y", SHA256: wantSum}})
		if got.root != wantRoot || got.codes["1-job-0"] != 0 || len(got.codes) != 1 {
			t.Errorf("OnComplete(%x, %v), want root %x and {1-job-0: 0}", got.root, got.codes, wantRoot)
		}
		if st.OutputsRoot != hex.EncodeToString(wantRoot[:]) {
			t.Errorf("Status().OutputsRoot = %s, want %x", st.OutputsRoot, wantRoot)
		}
	case <-time.After(jobTimeout):
		t.Fatal("OnComplete was not called")
	}
	rc, err := c.Logs(ctx, 1, api.LogSelector{}, false)
	if err != nil {
		t.Fatalf("Logs() = %v", err)
	}
	logs, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(logs), "working") {
		t.Errorf("Logs() = %q, want the job's output", logs)
	}
	if _, err := c.SendManifest(ctx, 1, shManifest("true")); apiError(t, err).Code != api.CodeAlreadyDeployed {
		t.Errorf("second SendManifest() = %v, want %s", err, api.CodeAlreadyDeployed)
	}

	// Plaintext is gone from the work dir once sealed; nothing in the vault is plaintext.
	assertNoPlaintext(t, h.dir, "hello kiln", "HELLO KILN")

	// The lease ends: everything of it is erased.
	if err := h.mgr.Stop(ctx, 1); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	if _, err := h.vault.Find(1); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("vault.Find(1) after Stop = %v, want ErrNotFound", err)
	}
	if n := countFiles(t, filepath.Join(h.dir, "vault")); n != 0 {
		t.Errorf("vault holds %d files after Stop, want 0", n)
	}
	if outs, err := c.ListOutputs(ctx, 1); err != nil || len(outs) != 0 {
		t.Errorf("ListOutputs() after Stop = %+v, %v; want none", outs, err)
	}
}

func assertNoPlaintext(t *testing.T, dir string, needles ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(p, "/log") {
			return nil // task logs hold what the task printed
		}
		b, _ := os.ReadFile(p)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds plaintext %q", p, n)
			}
		}
		return nil
	})
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

func TestCertificateRefusals(t *testing.T) {
	h := newHarness(t)
	h.chain.addLease(batchLease(1, alice))
	aliceClient := h.tenant(t, alice, true)
	bobClient := h.tenant(t, bob, true)
	unpublished := h.tenant(t, "kiln1carol00000000000000000000000000000000", false)
	// A second certificate for alice, not the one on chain.
	otherPEM, otherKey, _ := tenant.GenerateClientCert(alice, time.Hour)
	otherPair, _ := tls.X509KeyPair(otherPEM, otherKey)
	mismatch := h.client(t, otherPair)
	noCert := h.client(t, tls.Certificate{})

	for _, tc := range []struct {
		name   string
		client *apiclient.Client
		shift  time.Duration
		code   string
		says   string
	}{
		{"NoCertificate", noCert, 0, api.CodeClientCertRequired, "no client certificate"},
		{"Expired", aliceClient, 2 * time.Hour, api.CodeCertExpired, "expired"},
		{"NotYetValid", aliceClient, -time.Hour, api.CodeCertNotYetValid, "valid only from"},
		{"NotPublished", unpublished, 0, api.CodeCertNotPublished, "no client certificate published"},
		{"Mismatch", mismatch, 0, api.CodeCertMismatch, "not the one account"},
		{"NotLeaseOwner", bobClient, 0, api.CodeNotLeaseOwner, "belongs to " + alice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.clockShift.Store(int64(tc.shift))
			defer h.clockShift.Store(0)
			ctx := context.Background()
			_, err := tc.client.SendManifest(ctx, 1, shManifest("touch /tmp/kiln-must-not-run"))
			e := apiError(t, err)
			if e.Status != http.StatusForbidden || e.Code != tc.code || !strings.Contains(e.Message, tc.says) {
				t.Errorf("SendManifest() = %d %s %q, want 403 %s saying %q", e.Status, e.Code, e.Message, tc.code, tc.says)
			}
			_, err = tc.client.UploadInput(ctx, 1, "x", strings.NewReader("data"), 4)
			if e := apiError(t, err); e.Status != http.StatusForbidden || e.Code != tc.code {
				t.Errorf("UploadInput() = %v, want 403 %s", err, tc.code)
			}
			if _, err := tc.client.Status(ctx, 1); apiError(t, err).Code != tc.code {
				t.Errorf("Status() = %v, want %s", err, tc.code)
			}
			if n := h.runner.calls.Load(); n != 0 {
				t.Errorf("runner called %d times, want never", n)
			}
			if _, err := h.vault.Find(1); !errors.Is(err, vault.ErrNotFound) {
				t.Errorf("vault.Find(1) = %v, want nothing stored", err)
			}
		})
	}
	// The health check needs no certificate.
	if err := noCert.Healthz(context.Background()); err != nil {
		t.Errorf("Healthz() without certificate = %v", err)
	}
	// An unknown lease is 404 for a valid certificate.
	if _, err := aliceClient.Status(context.Background(), 99); apiError(t, err).Code != api.CodeLeaseNotFound {
		t.Errorf("Status(99) = %v, want %s", err, api.CodeLeaseNotFound)
	}
	// A lease another provider runs is not "does not exist": the answer names it.
	const other = "kiln1otherprovider"
	h.chain.mu.Lock()
	h.chain.elsewhere = map[uint64]string{98: other}
	h.chain.mu.Unlock()
	_, err := aliceClient.Status(context.Background(), 98)
	if e := apiError(t, err); e.Code != api.CodeLeaseElsewhere || e.Status != http.StatusMisdirectedRequest ||
		!strings.Contains(e.Message, "lease 98 is run by provider "+other) || strings.Contains(e.Message, "does not exist") {
		t.Errorf("Status(98) of another provider's lease = %v, want %s (HTTP 421) naming %s", err, api.CodeLeaseElsewhere, other)
	}
}

func TestManifestRefusals(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	h.chain.addLease(batchLease(1, alice))
	closed := batchLease(2, alice)
	closed.Active = false
	h.chain.addLease(closed)
	ctx := context.Background()

	big := shManifest("true")
	big.Services[0].Resources.MemoryBytes = 512 << 20
	_, err := c.SendManifest(ctx, 1, big)
	e := apiError(t, err)
	if e.Status != http.StatusBadRequest || e.Code != api.CodeManifestExceedsOrder ||
		!strings.Contains(e.Message, `"job"`) || !strings.Contains(e.Message, "resources.memory_bytes") || !strings.Contains(e.Message, strconv.Itoa(512<<20)) {
		t.Errorf("SendManifest(512 MiB > 256 MiB) = %v, want 400 %s naming job, memory_bytes and the amount", err, api.CodeManifestExceedsOrder)
	}
	two := shManifest("true")
	two.Services[0].Count = 2
	if _, err := c.SendManifest(ctx, 1, two); apiError(t, err).Code != api.CodeManifestExceedsOrder {
		t.Errorf("SendManifest(count 2 > 1) = %v, want %s", err, api.CodeManifestExceedsOrder)
	}
	bad := shManifest("true")
	bad.Services[0].Name = "Bad_Name"
	if _, err := c.SendManifest(ctx, 1, bad); apiError(t, err).Code != api.CodeBadManifest {
		t.Errorf("SendManifest(bad name) = %v, want %s", err, api.CodeBadManifest)
	}
	if _, err := c.SendManifest(ctx, 2, shManifest("true")); apiError(t, err).Status != http.StatusConflict {
		t.Errorf("SendManifest(closed lease) = %v, want 409", err)
	}
	if n := h.runner.calls.Load(); n != 0 {
		t.Errorf("runner called %d times, want never", n)
	}
}

func TestUploadRefusals(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	h.chain.addLease(batchLease(1, alice))
	ctx := context.Background()
	over := bytes.Repeat([]byte{'a'}, 1<<20+1)

	// Announced size over the limit: refused before the body is read.
	_, err := c.UploadInput(ctx, 1, "big", bytes.NewReader(over), int64(len(over)))
	if e := apiError(t, err); e.Status != http.StatusRequestEntityTooLarge || e.Code != api.CodeInputTooLarge {
		t.Errorf("UploadInput(1 MiB + 1, sized) = %v, want 413 %s", err, api.CodeInputTooLarge)
	}
	// Streamed without a size: cut off at the limit.
	_, err = c.UploadInput(ctx, 1, "big", bytes.NewReader(over), -1)
	if e := apiError(t, err); e.Status != http.StatusRequestEntityTooLarge || e.Code != api.CodeInputTooLarge {
		t.Errorf("UploadInput(1 MiB + 1, streamed) = %v, want 413 %s", err, api.CodeInputTooLarge)
	}
	if ins, err := c.Inputs(ctx, 1); err != nil || len(ins) != 0 {
		t.Errorf("Inputs() after refused uploads = %+v, %v; want none", ins, err)
	}
	// The limit is per lease: 1 MiB in two parts fits, a third byte does not.
	half := bytes.Repeat([]byte{'b'}, 1<<19)
	for _, name := range []string{"p1", "p2"} {
		if _, err := c.UploadInput(ctx, 1, name, bytes.NewReader(half), int64(len(half))); err != nil {
			t.Fatalf("UploadInput(%s, 512 KiB) = %v", name, err)
		}
	}
	if _, err := c.UploadInput(ctx, 1, "p3", strings.NewReader("x"), 1); apiError(t, err).Code != api.CodeInputTooLarge {
		t.Errorf("UploadInput(p3) past the lease total = %v, want %s", err, api.CodeInputTooLarge)
	}
	for _, name := range []string{"../x", "../../vault/keys/1.key", "a/b", "x\x00y", strings.Repeat("n", 129)} {
		_, err := c.UploadInput(ctx, 1, name, strings.NewReader("x"), 1)
		if e := apiError(t, err); e.Status != http.StatusBadRequest || e.Code != api.CodeBadName {
			t.Errorf("UploadInput(%q) = %v, want 400 %s", name, err, api.CodeBadName)
		}
		if _, err := c.DownloadOutput(ctx, 1, name, io.Discard); apiError(t, err).Code != api.CodeBadName {
			t.Errorf("DownloadOutput(%q) = %v, want %s", name, err, api.CodeBadName)
		}
	}
	if ins, _ := c.Inputs(ctx, 1); len(ins) != 2 {
		t.Errorf("Inputs() = %+v, want p1 and p2", ins)
	}
}

// phasedReader yields first bytes, then waits at barrier until every upload
// of its round has sent its first part (or done ends), then yields rest: all
// uploads are in flight, past the server's first look at them, before any
// can finish.
type phasedReader struct {
	first, rest int
	arrive      func() // once: at the barrier, or refused before it
	released    <-chan struct{}
	sent        int
}

func (r *phasedReader) Read(p []byte) (int, error) {
	if r.sent == r.first {
		r.arrive()
		<-r.released
	}
	if r.sent == r.first+r.rest {
		return 0, io.EOF
	}
	end := r.first
	if r.sent >= r.first {
		end = r.first + r.rest
	}
	// 16 KiB pieces: many reads, as a chunked body arrives.
	n := min(len(p), end-r.sent, 16<<10)
	for i := range n {
		p[i] = 'c'
	}
	r.sent += n
	return n, nil
}

// concurrentUploads streams n chunked uploads of size bytes each (names
// prefix0...) to lease id at once and returns each one's error.
func concurrentUploads(t *testing.T, c *apiclient.Client, id uint64, names []string, first, rest int) []error {
	t.Helper()
	var barrier, done sync.WaitGroup
	barrier.Add(len(names))
	released := make(chan struct{})
	go func() {
		barrier.Wait()
		close(released)
	}()
	// 30 s: a few MiB over loopback; it covers a server that never answers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, len(names))
	for i, name := range names {
		done.Add(1)
		go func() {
			defer done.Done()
			arrive := sync.OnceFunc(barrier.Done)
			r := &phasedReader{first: first, rest: rest, arrive: arrive, released: released}
			_, errs[i] = c.UploadInput(ctx, id, name, r, -1)
			arrive() // refused before its first part was read
		}()
	}
	done.Wait()
	return errs
}

// Uploads in parallel never store more than the lease's input limit, however
// their reads interleave: each reserves its bytes before they are written.
func TestConcurrentUploadsStayUnderLimit(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	const limit = 1 << 20 // the harness's MaxInputBytes
	ctx := context.Background()
	sum := func(id uint64) (total int64, names map[string]int64) {
		ins, err := c.Inputs(ctx, id)
		if err != nil {
			t.Fatalf("Inputs(%d) = %v", id, err)
		}
		names = map[string]int64{}
		for _, f := range ins {
			total += f.Size
			names[f.Name] = f.Size
		}
		return total, names
	}

	t.Run("over the limit together", func(t *testing.T) {
		h.chain.addLease(batchLease(1, alice))
		// 8 × 300,000 bytes: each fits alone, all 8 are 2.3 times the limit.
		names := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
		errs := concurrentUploads(t, c, 1, names, 100_000, 200_000)
		ok := 0
		for i, err := range errs {
			if err == nil {
				ok++
				continue
			}
			if e := apiError(t, err); e.Status != http.StatusRequestEntityTooLarge || e.Code != api.CodeInputTooLarge {
				t.Errorf("UploadInput(%s) = %v, want success or 413 %s", names[i], err, api.CodeInputTooLarge)
			}
		}
		total, stored := sum(1)
		if total > limit || total != int64(ok)*300_000 || len(stored) != ok {
			t.Errorf("stored %d bytes in %d inputs after %d of 8 uploads succeeded: want at most %d, 300,000 per success (%v)", total, len(stored), ok, limit, stored)
		}
		t.Logf("%d of 8 concurrent 300,000-byte uploads stored, %d bytes in all; limit %d", ok, total, limit)
	})

	t.Run("under the limit together", func(t *testing.T) {
		h.chain.addLease(batchLease(2, alice))
		names := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
		for i, err := range concurrentUploads(t, c, 2, names, 60_000, 60_000) {
			if err != nil {
				t.Errorf("UploadInput(%s) = %v, want stored: 8 × 120,000 bytes fit", names[i], err)
			}
		}
		if total, _ := sum(2); total != 8*120_000 {
			t.Errorf("stored %d bytes, want %d", total, 8*120_000)
		}
	})

	t.Run("replacing a name", func(t *testing.T) {
		h.chain.addLease(batchLease(3, alice))
		put := func(name string, n int, sized bool) error {
			size := int64(-1)
			if sized {
				size = int64(n)
			}
			_, err := c.UploadInput(ctx, 3, name, bytes.NewReader(bytes.Repeat([]byte{'r'}, n)), size)
			return err
		}
		if err := put("x", 600_000, true); err != nil {
			t.Fatal(err)
		}
		// The same name four times at once: one replaces x (600,000 more
		// beside x's own would not fit), the others wait their turn.
		ok := 0
		for i, err := range concurrentUploads(t, c, 3, []string{"x", "x", "x", "x"}, 300_000, 300_000) {
			if err == nil {
				ok++
			} else if e := apiError(t, err); e.Status != http.StatusConflict || e.Code != api.CodeUploadInProgress {
				t.Errorf("re-upload %d of x = %v, want stored or 409 %s", i, err, api.CodeUploadInProgress)
			}
		}
		if _, stored := sum(3); ok != 1 || stored["x"] != 600_000 {
			t.Errorf("%d of 4 concurrent re-uploads of x stored, x is %d bytes; want 1 and 600,000", ok, stored["x"])
		}
		for _, step := range []struct {
			name  string
			n     int
			sized bool
			fits  bool
		}{
			{"y", 500_000, true, false}, // beside x's 600,000
			{"y", 500_000, false, false},
			{"x", 1_000_000, false, true}, // replaces x's 600,000
			{"y", limit - 1_000_000, true, true},
			{"z", 1, false, false},
			{"x", 1_000_000, true, true},
		} {
			err := put(step.name, step.n, step.sized)
			if step.fits && err != nil {
				t.Errorf("UploadInput(%s, %d bytes, sized %t) = %v, want stored", step.name, step.n, step.sized, err)
			}
			if !step.fits && (err == nil || apiError(t, err).Code != api.CodeInputTooLarge) {
				t.Errorf("UploadInput(%s, %d bytes, sized %t) = %v, want %s", step.name, step.n, step.sized, err, api.CodeInputTooLarge)
			}
		}
		if total, stored := sum(3); total != limit || stored["x"] != 1_000_000 {
			t.Errorf("stored %v (%d bytes), want x of 1,000,000 and y, %d in all", stored, total, limit)
		}
	})
}

// serveOnFreePort deploys prog's HTTP server as a service lease of alice and waits
// until the ingress answers through it; it returns the lease and the ingress URL.
//
// NB: the process executor's program binds its port itself, so the port is picked
// ahead and written into the manifest, and another program may take it before the
// service binds it; the service then fails with "address already in use" and is
// deployed again, as another lease, on a fresh port.
func serveOnFreePort(t *testing.T, h *harness, c *apiclient.Client, prog string) (uint64, string) {
	t.Helper()
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		id := uint64(100 + attempt)
		l := batchLease(id, alice)
		l.Kind = api.KindService
		h.chain.addLease(l)
		picked, err := ports.Pick("127.0.0.1", 1)
		if err != nil {
			t.Fatal(err)
		}
		port := picked[0]
		m := api.Manifest{Services: []api.Service{{
			Name: "web", Command: []string{prog}, Args: []string{"serve-http", strconv.Itoa(port)}, Count: 1,
			Resources: api.ServiceResources{CPUMilli: 500, MemoryBytes: 128 << 20},
			Expose:    []api.Expose{{Port: uint32(port), As: 80, Global: true}},
		}}}
		if _, err := c.SendManifest(ctx, id, m); err != nil {
			t.Fatalf("SendManifest() = %v", err)
		}
		url := c.IngressURL(id, "/hello?q=1")
		deadline := time.Now().Add(serveTimeout)
		for {
			resp, err := c.HTTPClient().Get(url)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && string(body) == "ok" {
					return id, url
				}
				err = fmt.Errorf("%s: %s", resp.Status, body)
			}
			if st, _ := c.Status(ctx, id); st.State == api.StateFailed && attempt < ports.Attempts && serviceLog(t, c, id, ports.InUseText) {
				t.Logf("port %d was taken before the service bound it; deploying again on a fresh port", port)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %v after %s", url, err, serveTimeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// serviceLog reports whether the log of lease id's service satisfies ok.
func serviceLog(t *testing.T, c *apiclient.Client, id uint64, ok func(string) bool) bool {
	t.Helper()
	rc, err := c.Logs(context.Background(), id, api.LogSelector{}, false)
	if err != nil {
		return false
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	return ok(string(b))
}

func TestServiceIngress(t *testing.T) {
	h := newHarness(t)
	prog := executortest.BuildTestProg(t)
	c := h.tenant(t, alice, true)
	other := h.tenant(t, bob, true)
	ctx := context.Background()
	id, url := serveOnFreePort(t, h, c, prog)
	resp, err := other.HTTPClient().Get(other.IngressURL(id, "/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), api.CodeNotLeaseOwner) {
		t.Errorf("ingress as bob = %s %s, want 403 %s", resp.Status, body, api.CodeNotLeaseOwner)
	}
	if err := h.mgr.Stop(ctx, id); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	resp, err = c.HTTPClient().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("ingress after Stop = %s, want 404", resp.Status)
	}
}

// The image route: owner only, active and undeployed leases only, under the
// size limit, with the digest the tenant named; a runner whose executor runs
// no images says so.
func TestImageUpload(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	mallory := h.tenant(t, bob, true)
	h.chain.addLease(batchLease(1, alice))
	closedLease := batchLease(2, alice)
	closedLease.Active = false
	h.chain.addLease(closedLease)
	ctx := context.Background()
	archive := []byte("a docker save archive")
	id := "sha256:" + strings.Repeat("ab", 32)

	// The process executor behind the harness runs no images.
	_, err := c.UploadImage(ctx, 1, bytes.NewReader(archive), int64(len(archive)), "")
	if e := apiError(t, err); e.Status != http.StatusNotImplemented || e.Code != api.CodeImagesUnsupported || !strings.Contains(e.Message, "process") {
		t.Errorf("UploadImage(process executor) = %v, want 501 %s naming the executor", err, api.CodeImagesUnsupported)
	}

	// A fake loader: reads up to max, and holds the image id.
	var loaded atomic.Int64
	fake := loadImageFunc(func(_ context.Context, _ uint64, r io.Reader, max int64, want string) (string, error) {
		b, err := io.ReadAll(io.LimitReader(r, max+1))
		if err != nil {
			return "", err
		}
		if int64(len(b)) > max {
			return "", fmt.Errorf("fake: %w", api.ErrImageTooLarge)
		}
		if want != "" && want != id {
			return "", fmt.Errorf("fake: %w: archive holds %s", api.ErrImageDigest, id)
		}
		loaded.Add(1)
		return id, nil
	})
	h.runner.loadImage.Store(&fake)

	over := bytes.Repeat([]byte{'a'}, 1<<20+1)
	before := h.runner.calls.Load()
	tests := []struct {
		name   string
		c      *apiclient.Client
		lease  uint64
		body   []byte
		size   int64
		want   string
		status int
		code   string
	}{
		{"not the owner", mallory, 1, archive, int64(len(archive)), "", http.StatusForbidden, api.CodeNotLeaseOwner},
		{"closed lease", c, 2, archive, int64(len(archive)), "", http.StatusConflict, api.CodeLeaseNotActive},
		{"sized over the limit", c, 1, over, int64(len(over)), "", http.StatusRequestEntityTooLarge, api.CodeImageTooLarge},
		{"bad image id header", c, 1, archive, int64(len(archive)), "sha256:ABC", http.StatusBadRequest, api.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.UploadImage(ctx, tt.lease, bytes.NewReader(tt.body), tt.size, tt.want)
			if e := apiError(t, err); e.Status != tt.status || e.Code != tt.code {
				t.Errorf("UploadImage() = %v, want %d %s", err, tt.status, tt.code)
			}
		})
	}
	if n := h.runner.calls.Load() - before; n != 0 {
		t.Errorf("runner called %d times for refused uploads, want never", n)
	}

	// Refused by the runner: streamed past the limit, another image than named.
	_, err = c.UploadImage(ctx, 1, bytes.NewReader(over), -1, "")
	if e := apiError(t, err); e.Status != http.StatusRequestEntityTooLarge || e.Code != api.CodeImageTooLarge {
		t.Errorf("UploadImage(streamed over the limit) = %v, want 413 %s", err, api.CodeImageTooLarge)
	}
	wrong := "sha256:" + strings.Repeat("cd", 32)
	_, err = c.UploadImage(ctx, 1, bytes.NewReader(archive), int64(len(archive)), wrong)
	if e := apiError(t, err); e.Status != http.StatusBadRequest || e.Code != api.CodeImageDigestMismatch {
		t.Errorf("UploadImage(wrong id) = %v, want 400 %s", err, api.CodeImageDigestMismatch)
	}
	if n := loaded.Load(); n != 0 {
		t.Fatalf("%d images loaded by refused uploads", n)
	}

	ii, err := c.UploadImage(ctx, 1, bytes.NewReader(archive), int64(len(archive)), id)
	if err != nil || ii.ID != id || ii.Size != int64(len(archive)) || len(ii.Tags) != 0 {
		t.Fatalf("UploadImage() = %+v, %v; want %s of %d bytes, untagged", ii, err, id, len(archive))
	}

	// Once the manifest is sent, images come too late.
	if _, err := c.SendManifest(ctx, 1, shManifest("true")); err != nil {
		t.Fatal(err)
	}
	_, err = c.UploadImage(ctx, 1, bytes.NewReader(archive), int64(len(archive)), id)
	if e := apiError(t, err); e.Status != http.StatusConflict || e.Code != api.CodeAlreadyDeployed {
		t.Errorf("UploadImage(deployed lease) = %v, want 409 %s", err, api.CodeAlreadyDeployed)
	}
}

// A manifest naming a container image on a provider whose executor runs host
// commands is refused with a named 400 (not a 500 from the executor), and the lease
// stays deployable. (Images named by ID on a container executor: lease.TestLeaseImages.)
func TestManifestImageOnProcessExecutor(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	h.chain.addLease(batchLease(1, alice))
	for _, img := range []string{"sha256:" + strings.Repeat("ab", 32), "busybox", "registry.example/app@sha256:" + strings.Repeat("ab", 32)} {
		m := shManifest("true")
		m.Services[0].Image = img
		_, err := c.SendManifest(context.Background(), 1, m)
		if e := apiError(t, err); e.Status != http.StatusBadRequest || e.Code != api.CodeImagesUnsupported || !strings.Contains(e.Message, "host commands") {
			t.Errorf("SendManifest(image %s) = %v, want 400 %s", img, err, api.CodeImagesUnsupported)
		}
	}
	if _, err := c.SendManifest(context.Background(), 1, shManifest("true")); err != nil {
		t.Fatalf("SendManifest(commands only) after the refusals = %v", err)
	}
}

// A workload the executor cannot start is answered 502 start_failed naming the
// executor's error: the manifest was fine, the provider could not run it.
func TestManifestStartFailed(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	h.chain.addLease(batchLease(1, alice))
	m := shManifest("true")
	m.Services[0].Command = []string{"/nonexistent/kiln-no-such-program"}
	_, err := c.SendManifest(context.Background(), 1, m)
	if e := apiError(t, err); e.Status != http.StatusBadGateway || e.Code != api.CodeStartFailed || !strings.Contains(e.Message, "kiln-no-such-program") {
		t.Fatalf("SendManifest(command that cannot start) = %v, want 502 %s naming the program", err, api.CodeStartFailed)
	}
}

// A manifest naming an image by tag, or by digest from a registry the provider
// does not allow, is refused with 400 image_not_allowed before any of its
// services starts.
func TestManifestImagePolicy(t *testing.T) {
	// An executor that runs images (as docker does); the process executor
	// beneath runs each service's command and ignores the image.
	h := newHarnessWith(t, func(ex executor.Executor) executor.Executor { return imageRunner{ex} })
	c := h.tenant(t, alice, true)
	h.chain.addLease(api.LeaseInfo{ID: 1, Owner: alice, Active: true, Kind: api.KindBatch, Resources: []api.ResourceUnit{
		{ID: 1, Count: 2, CPUMilli: 1000, MemoryBytes: 256 << 20, StorageBytes: 1 << 30},
	}})
	ctx := context.Background()
	const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		image, says string
	}{
		{"ubuntu:22.04", "name the image by digest (ubuntu@sha256:<64 hex>) from a registry this provider allows (docker.io)"},
		{"ubuntu", "a tag can be re-pointed"},
		{"ghcr.io/acme/app:1", "a tag can be re-pointed"},
		{"ghcr.io/acme/app" + digest, "ghcr.io/acme/app is not in a registry this provider allows (docker.io)"},
		{"sha256:" + strings.Repeat("ab", 32), "must have been uploaded to this lease"},
		{"abcdef", "must have been uploaded to this lease"},
	} {
		t.Run(tt.image, func(t *testing.T) {
			m := shManifest("echo started > $KILN_OUT/first")
			second := m.Services[0]
			second.Name, second.Image = "second", tt.image
			m.Services = append(m.Services, second)
			_, err := c.SendManifest(ctx, 1, m)
			e := apiError(t, err)
			if e.Status != http.StatusBadRequest || e.Code != api.CodeImageNotAllowed || !strings.Contains(e.Message, tt.says) ||
				!strings.Contains(e.Message, `service "second"`) || strings.Count(e.Message, "not allowed") != 1 {
				t.Errorf("SendManifest(image %q) = %v, want 400 %s naming the service once and saying %q", tt.image, err, api.CodeImageNotAllowed, tt.says)
			}
			if st, err := c.Status(ctx, 1); err != nil || st.State != api.StatePending || len(st.Tasks) != 0 {
				t.Errorf("Status() after the refusal = %+v, %v; want pending, nothing started", st, err)
			}
		})
	}
	// Pinned by digest from an allowed registry: deployed (the process
	// executor behind the harness runs the command; a docker one would pull).
	m := shManifest("true")
	m.Services[0].Image = "ubuntu" + digest
	if _, err := c.SendManifest(ctx, 1, m); err != nil {
		t.Fatalf("SendManifest(ubuntu pinned by digest) = %v", err)
	}
	if st := waitState(t, c, 1, api.StateCompleted, api.StateFailed); st.State != api.StateCompleted {
		t.Errorf("lease ended %q: %s", st.State, st.Error)
	}
}

// imageRunner is an executor that runs images; it loads no archive.
type imageRunner struct{ executor.Executor }

func (imageRunner) LoadImage(context.Context, io.Reader, int64, string) (string, error) {
	return "", fmt.Errorf("%w: this test executor loads no archive", executor.ErrImageArchive)
}

// TestStatusOfClosedLease: a lease closed on chain before its workload ran
// reports "closed" with a reason, never "pending", and keeps its inputs to
// itself.
func TestStatusOfClosedLease(t *testing.T) {
	h := newHarness(t)
	c := h.tenant(t, alice, true)
	h.chain.addLease(batchLease(7, alice))
	ctx := context.Background()
	if _, err := c.UploadInput(ctx, 7, "x", strings.NewReader("data"), 4); err != nil {
		t.Fatalf("UploadInput() = %v", err)
	}
	if st, err := c.Status(ctx, 7); err != nil || st.State != api.StatePending {
		t.Fatalf("Status() of the open lease = %+v, %v; want pending", st, err)
	}
	closed := batchLease(7, alice)
	closed.Active = false
	h.chain.addLease(closed)
	st, err := c.Status(ctx, 7)
	if err != nil || st.State != api.StateClosed || !strings.Contains(st.Error, "closed on chain") || len(st.Inputs) != 0 {
		t.Errorf("Status() of the closed lease = %+v, %v; want closed with a reason and no inputs", st, err)
	}
}
