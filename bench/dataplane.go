package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kiln-network/kiln/certpem"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/api/apiclient"
	apiserver "github.com/kiln-network/kiln/provider/api/server"
	"github.com/kiln-network/kiln/provider/executor/hostdir"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/tenant"
)

// BenchResult is one run of BenchUploadDownload.
type BenchResult struct {
	// Bytes is the size moved each way.
	Bytes int64
	// Upload and Download are the times through the API: mutual TLS,
	// SHA-256 by the receiver, age encryption at rest.
	Upload, Download time.Duration
	// RawUpload and RawDownload are the times of the same bytes over a plain
	// loopback TCP connection, in the same run.
	RawUpload, RawDownload time.Duration
	// CPU and RawCPU are the process's CPU time (user and system) over the
	// API's and the raw transfers: CPU over wall time is the cores kept busy,
	// which shows whether a run was bound by the machine's core count.
	CPU, RawCPU time.Duration
}

// Cores is the API transfers' average number of busy cores.
func (r BenchResult) Cores() float64 { return r.CPU.Seconds() / (r.Upload + r.Download).Seconds() }

// RawCores is the raw transfers' average number of busy cores.
func (r BenchResult) RawCores() float64 {
	return r.RawCPU.Seconds() / (r.RawUpload + r.RawDownload).Seconds()
}

// Throughput is the API's bytes per second, both ways together.
func (r BenchResult) Throughput() float64 {
	return float64(2*r.Bytes) / (r.Upload + r.Download).Seconds()
}

// RawThroughput is plain TCP's bytes per second, both ways together.
func (r BenchResult) RawThroughput() float64 {
	return float64(2*r.Bytes) / (r.RawUpload + r.RawDownload).Seconds()
}

// Ratio is Throughput over RawThroughput.
func (r BenchResult) Ratio() float64 { return r.Throughput() / r.RawThroughput() }

func (r BenchResult) String() string {
	mb := func(v float64) float64 { return v / (1 << 20) }
	return fmt.Sprintf("%d MiB each way: API upload %s, download %s (%.0f MiB/s, %.1f cores busy); raw TCP %s, %s (%.0f MiB/s, %.1f cores busy); ratio %.2f",
		r.Bytes>>20, r.Upload.Round(time.Millisecond), r.Download.Round(time.Millisecond), mb(r.Throughput()), r.Cores(),
		r.RawUpload.Round(time.Millisecond), r.RawDownload.Round(time.Millisecond), mb(r.RawThroughput()), r.RawCores(), r.Ratio())
}

// BenchUploadDownload uploads size bytes to a provider API on loopback and
// downloads them back as an output, then moves the same bytes over plain
// loopback TCP, and reports both. It uses a temporary directory for the
// vault and removes it; the CLI's bench command calls it.
func BenchUploadDownload(ctx context.Context, size int64) (BenchResult, error) {
	res := BenchResult{Bytes: size}
	dir, err := os.MkdirTemp("", "kiln-api-bench-")
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	block := make([]byte, 1<<20)
	rand.Read(block)

	const owner = "kiln1bench"
	srvCert, srvKey, err := certpem.Generate("127.0.0.1", []string{"127.0.0.1"}, time.Hour, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return res, err
	}
	cliCert, cliKey, err := tenant.GenerateClientCert(owner, time.Hour)
	if err != nil {
		return res, err
	}
	srvPair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		return res, err
	}
	cliPair, err := tls.X509KeyPair(cliCert, cliKey)
	if err != nil {
		return res, err
	}
	published, err := certpem.Parse(cliCert)
	if err != nil {
		return res, err
	}
	v, err := vault.Open(vault.Config{Dir: filepath.Join(dir, "vault")})
	if err != nil {
		return res, err
	}
	cfg := apiserver.DefaultConfig()
	cfg.Certificate, cfg.MaxInputBytes = srvPair, size
	chain := benchChain{lease: api.LeaseInfo{ID: 1, Owner: owner, Active: true, Kind: api.KindBatch}, cert: published}
	srv, err := apiserver.NewServer(cfg, apiserver.Deps{Leases: chain, Certs: chain, Runner: benchRunner{}, Vault: v})
	if err != nil {
		return res, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := apiclient.NewClient("https://"+ln.Addr().String(), cliPair, srvCert)
	if err != nil {
		return res, err
	}
	defer c.Close()
	if err := c.Healthz(ctx); err != nil { // handshake and warm-up outside the timing
		return res, err
	}

	cpu0 := processCPU()
	start := time.Now()
	if _, err := c.UploadInput(ctx, 1, "data", &repeatReader{block: block, left: size}, size); err != nil {
		return res, err
	}
	res.Upload = time.Since(start)
	res.CPU = processCPU() - cpu0

	// Turn the bytes into an output, outside the timing.
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return res, err
	}
	f, err := os.Create(filepath.Join(out, "data"))
	if err != nil {
		return res, err
	}
	_, err = io.Copy(f, &repeatReader{block: block, left: size})
	f.Close()
	if err != nil {
		return res, err
	}
	vl, err := v.Lease(1)
	if err != nil {
		return res, err
	}
	if _, err := vl.Seal(hostdir.FS(out), 0); err != nil {
		return res, err
	}

	cpu0 = processCPU()
	start = time.Now()
	if _, err := c.DownloadOutput(ctx, 1, "data", io.Discard); err != nil {
		return res, err
	}
	res.Download = time.Since(start)
	res.CPU += processCPU() - cpu0

	cpu0 = processCPU()
	res.RawUpload, res.RawDownload, err = rawLoopback(block, size)
	res.RawCPU = processCPU() - cpu0
	return res, err
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawLoopback times size bytes sent one way, then the other, over loopback TCP.
func rawLoopback(block []byte, size int64) (up, down time.Duration, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, fmt.Errorf("bench raw: %w", err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, 256<<10)
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, size), buf); err != nil {
			errc <- err
			return
		}
		conn.Write([]byte{1}) // upload received
		_, err = io.CopyBuffer(conn, &repeatReader{block: block, left: size}, buf)
		errc <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, 0, fmt.Errorf("bench raw: %w", err)
	}
	defer conn.Close()
	start := time.Now()
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(conn, &repeatReader{block: block, left: size}, buf); err != nil {
		return 0, 0, fmt.Errorf("bench raw upload: %w", err)
	}
	if _, err := io.ReadFull(conn, buf[:1]); err != nil {
		return 0, 0, fmt.Errorf("bench raw upload: %w", err)
	}
	up = time.Since(start)
	start = time.Now()
	if _, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, size), buf); err != nil {
		return 0, 0, fmt.Errorf("bench raw download: %w", err)
	}
	down = time.Since(start)
	return up, down, <-errc
}

// repeatReader yields left bytes cycling through block.
type repeatReader struct {
	block []byte
	off   int
	left  int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	r.left -= int64(n)
	return n, nil
}

type benchChain struct {
	lease api.LeaseInfo
	cert  *x509.Certificate
}

func (b benchChain) Lease(_ context.Context, id uint64) (api.LeaseInfo, error) {
	if id != b.lease.ID {
		return api.LeaseInfo{}, api.ErrLeaseNotFound
	}
	return b.lease, nil
}

func (b benchChain) ClientCert(_ context.Context, owner string) (*x509.Certificate, error) {
	if owner != b.lease.Owner {
		return nil, api.ErrCertNotPublished
	}
	return b.cert, nil
}

type benchRunner struct{}

func (benchRunner) Deploy(context.Context, api.LeaseInfo, api.Manifest) error {
	return errors.New("bench runner runs nothing")
}
func (benchRunner) Status(context.Context, uint64) (api.LeaseStatus, error) {
	return api.LeaseStatus{}, api.ErrNotDeployed
}
func (benchRunner) Logs(context.Context, uint64, api.LogSelector, bool) (io.ReadCloser, error) {
	return nil, api.ErrNotDeployed
}
func (benchRunner) LoadImage(context.Context, uint64, io.Reader, int64, string) (string, error) {
	return "", api.ErrImagesUnsupported
}
func (benchRunner) ServiceAddr(uint64) (string, bool) { return "", false }
