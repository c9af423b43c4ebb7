package lease_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/executor"
	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/provider/vault"
)

// remoteData runs tasks on this host but keeps a lease's data elsewhere (in
// memory here), as a remote-host or Kubernetes executor would: the manager
// must move data only through executor.Data.
type remoteData struct {
	executor.Executor

	mu      sync.Mutex
	inputs  map[string]string // lease/name -> content
	cleared []string          // leases
}

func (r *remoteData) PutInput(_ context.Context, leaseID, name string, rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inputs[leaseID+"/"+name] = string(b)
	return nil
}

func (r *remoteData) Outputs(context.Context, string) (fs.ReadDirFS, error) {
	return fstest.MapFS{
		"result.txt": {Data: []byte("computed elsewhere")},
		"link":       {Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink},
	}, nil
}

func (r *remoteData) ClearData(_ context.Context, leaseID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleared = append(r.cleared, leaseID)
	return nil
}

func TestDataOnlyThroughExecutor(t *testing.T) {
	dir := t.TempDir()
	pcfg := process.DefaultConfig()
	pcfg.AllowUnisolated, pcfg.Dir = true, filepath.Join(dir, "exec")
	pex, err := process.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	ex := &remoteData{Executor: pex, inputs: map[string]string{}}
	v, err := vault.Open(vault.Config{Dir: filepath.Join(dir, "vault")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan [32]byte, 1)
	cfg := lease.DefaultConfig()
	cfg.Dir, cfg.StopGrace = filepath.Join(dir, "state"), time.Second
	cfg.OnComplete = func(_ uint64, root [32]byte, _ map[string]int) { done <- root }
	m, err := lease.New(cfg, ex, v)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	vl, _ := v.Lease(7)
	if _, err := vl.PutInput("a.txt", strings.NewReader("tenant input"), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Deploy(context.Background(), info(7), job("true", 1)); err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	st := waitDone(t, m, 7)
	<-done

	ex.mu.Lock()
	got, cleared := ex.inputs["7/a.txt"], slices.Clone(ex.cleared)
	ex.mu.Unlock()
	if got != "tenant input" {
		t.Errorf("input the executor got = %q, want %q", got, "tenant input")
	}
	if _, err := os.Stat(filepath.Join(pcfg.Dir, "leases", "7", "in", "a.txt")); err == nil {
		t.Errorf("the input was written to the process executor's host dir, not through PutInput")
	}
	if st.State != api.StateCompleted || len(st.Outputs) != 1 || st.Outputs[0].Name != "result.txt" ||
		st.SkippedTotal != 1 || st.Skipped[0].Name != "link" {
		t.Fatalf("status = %+v, want result.txt sealed from the executor's outputs and the link skipped", st)
	}
	rc, _, err := vl.OutputReader("result.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "computed elsewhere" {
		t.Errorf("sealed result.txt = %q, want the executor's", b)
	}
	if !slices.Contains(cleared, "7") {
		t.Errorf("ClearData calls = %v after sealing, want lease 7's plaintext cleared", cleared)
	}
	if err := m.Stop(context.Background(), 7); err != nil {
		t.Fatalf("Stop() = %v", err)
	}
	ex.mu.Lock()
	n := len(ex.cleared)
	ex.mu.Unlock()
	if n < 2 {
		t.Errorf("ClearData calls = %d after Stop, want one more", n)
	}
}
