package lease_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kiln-network/kiln/provider/executor/process"
	"github.com/kiln-network/kiln/provider/lease"
	"github.com/kiln-network/kiln/provider/vault"
)

// sealTo encrypts s to id's recipient, as kiln tee seal does with the chain's key.
func sealTo(t *testing.T, id *age.X25519Identity, s string) string {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// An input named NAME.sealed reaches the workload opened, as NAME, when the manager
// holds the identity it was sealed to. Sealed to another identity, or on a manager
// without one (a provider that does not attest), the deploy fails naming the input,
// and nothing of it reaches the executor.
func TestSealedInputs(t *testing.T) {
	inside, _ := age.GenerateX25519Identity()
	outside, _ := age.GenerateX25519Identity()
	for _, c := range []struct {
		name   string
		unseal *age.X25519Identity
		to     *age.X25519Identity
		want   string // error; "" opens
	}{
		{"sealed to the attestation's key", inside, inside, ""},
		{"sealed to another key", inside, outside, "unseal input secret.txt.sealed"},
		{"provider that does not attest", nil, inside, "does not attest"},
	} {
		t.Run(c.name, func(t *testing.T) {
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
			cfg := lease.DefaultConfig()
			cfg.Dir, cfg.StopGrace = filepath.Join(dir, "state"), time.Second
			if c.unseal != nil {
				cfg.Unseal = c.unseal
			}
			m, err := lease.New(cfg, ex, v)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			vl, _ := v.Lease(7)
			if _, err := vl.PutInput("secret.txt.sealed", strings.NewReader(sealTo(t, c.to, "weights")), 0); err != nil {
				t.Fatal(err)
			}
			err = m.Deploy(context.Background(), info(7), job("true", 1))
			ex.mu.Lock()
			got, sealedGot := ex.inputs["7/secret.txt"], ex.inputs["7/secret.txt.sealed"]
			ex.mu.Unlock()
			if c.want == "" {
				if err != nil || got != "weights" || sealedGot != "" {
					t.Fatalf("Deploy = %v; executor got secret.txt %q, secret.txt.sealed %q; want weights, nothing", err, got, sealedGot)
				}
				waitDone(t, m, 7)
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || got != "" || sealedGot != "" {
				t.Fatalf("Deploy = %v (executor got %q, %q), want an error naming %q and nothing given", err, got, sealedGot, c.want)
			}
		})
	}
}
