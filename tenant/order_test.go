package tenant

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// The same order written in YAML and JSON builds the same valid MsgCreateOrder.
func TestParseOrderSpec(t *testing.T) {
	yamlSpec := `
kind: service
max_price: 1000ukiln
deposit: 100000ukiln
auto_redeploy: true
groups:
  - name: infer
    count: 2
    cpu: 500m
    memory: 8Gi
    storage: 20Gi
    region: eu-west
    attributes: {tier: community, net: "10g"}
    gpu:
      units: 1
      models: [{model: a100, memory: 80Gi, interface: sxm}, {model: h100}]
`
	jsonSpec := `{"kind":"service","max_price":"1000","deposit":"100000ukiln","auto_redeploy":true,"groups":[{"name":"infer","count":2,
"cpu":"0.5","memory":"8Gi","storage":"20Gi","region":"eu-west","attributes":{"net":"10g","tier":"community"},
"gpu":{"units":1,"models":[{"model":"a100","memory":"80Gi","interface":"sxm"},{"model":"h100"}]}}]}`
	owner := types.Address{1}
	var msgs []*market.MsgCreateOrder
	for _, src := range []string{yamlSpec, jsonSpec} {
		s, err := ParseOrderSpec([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Msg(owner, "ukiln")
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	g := msgs[0].Groups[0]
	if g.CPUMilli != 500 || g.MemoryBytes != 8*registry.Gi || g.Count != 2 || g.GPU.Models[0].MemoryBytes != 80*registry.Gi ||
		g.Attributes[0].Key != "net" || msgs[0].MaxPrice != 1000 || msgs[0].Deposit.Amount != 100000 || !msgs[0].AutoRedeploy {
		t.Fatalf("YAML spec built %+v", msgs[0])
	}
	if a, b := encodeJSON(t, msgs[0]), encodeJSON(t, msgs[1]); a != b {
		t.Fatalf("YAML and JSON differ:\n%s\n%s", a, b)
	}
	for _, bad := range []string{"groups: [{name: x, cpu: lots, memory: 1Gi}]\nmax_price: 1", "max_price: 1\nbogus: 1", "max_price: 1\ngroups: []"} {
		s, err := ParseOrderSpec([]byte(bad))
		if err == nil {
			_, err = s.Msg(owner, "ukiln")
		}
		if err == nil {
			t.Errorf("spec %q accepted", bad)
		}
	}
}

func encodeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A Kiln order spec asks for a TEE, the measurements it accepts and a reclaim window;
// they reach the order and the plan, and bad values are refused naming the field.
func TestOrderSpecTEE(t *testing.T) {
	m := strings.Repeat("AB", 48)
	s, err := ParseOrderSpec([]byte("max_price: 100\ntee: cpu\nallowed_measurements: [" + m + "]\nreclamation: {min_window: 2h}\ngroups: [{name: a, cpu: '1', memory: 1Gi}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.Msg(types.Address{1}, types.NativeDenom)
	if err != nil {
		t.Fatal(err)
	}
	if msg.TEE != "cpu" || len(msg.AllowedMeasurements) != 1 || msg.AllowedMeasurements[0] != strings.ToLower(m) {
		t.Fatalf("msg tee %q measurements %v", msg.TEE, msg.AllowedMeasurements)
	}
	if w, err := s.ReclaimSeconds(); err != nil || w != 7200 {
		t.Fatalf("ReclaimSeconds = %d, %v", w, err)
	}
	for spec, want := range map[string]string{
		"tee: sgx\n":                          "tee: must be empty, cpu or cpu-gpu",
		"tee: cpu-gpu\n":                      "cpu-gpu needs GPUs",
		"allowed_measurements: [" + m + "]\n": "need tee cpu or cpu-gpu",
	} {
		s, err := ParseOrderSpec([]byte("max_price: 100\n" + spec + "groups: [{name: a, cpu: '1', memory: 1Gi}]\n"))
		if err == nil {
			_, err = s.Msg(types.Address{1}, types.NativeDenom)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("spec %q: %v, want %q", spec, err, want)
		}
	}
	s.Reclamation = &struct {
		MinWindow string `yaml:"min_window"`
	}{"10m"}
	if _, err := s.ReclaimSeconds(); err == nil {
		t.Error("reclamation 10m accepted")
	}
}
