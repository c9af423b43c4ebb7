package tenant

import (
	"strings"
	"testing"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/daemon"
	"github.com/kiln-network/kiln/x/market"
)

// A Kiln spec's cluster: block makes one cluster order; gpus_per_member and the
// group's gpu.units fill each other in, on_member_failure defaults to refund.
func TestLoadClusterSpec(t *testing.T) {
	p := write(t, "train.yaml", `kind: batch
max_price: 3000ukiln
cluster: {members: 3, gpus_per_member: 1}
groups:
  - name: worker
    cpu: "1"
    memory: 1Gi
services:
  - name: train
    command: [kiln, work, train]
`)
	plans, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	pl := plans[0]
	want := market.Cluster{Members: 3, GPUsPerMember: 1, OnMemberFailure: market.FailRefund}
	if pl.Cluster == nil || *pl.Cluster != want || pl.Groups[0].GPU.Units != 1 || pl.Groups[0].Count != 1 || pl.Manifest.Services[0].Count != 1 {
		t.Fatalf("plan = %+v, cluster %+v", pl, pl.Cluster)
	}
	if err := pl.Msg(pl.Msg(market.Account).Owner).ValidateBasic(); err != nil {
		t.Fatalf("order: %v", err)
	}
	if err := api.CheckManifest(pl.Manifest, daemon.Resources(pl.Groups)); err != nil {
		t.Fatalf("the provider refuses the manifest: %v", err)
	}
}

// A bad cluster spec is refused before anything is sent, naming the field.
func TestLoadClusterSpecRefused(t *testing.T) {
	for _, tc := range []struct{ cluster, group, want string }{
		{"{members: 1}", "", "cluster.members"},
		{"{members: 3, on_member_failure: retry}", "", "cluster.on_member_failure"},
		{"{members: 3, gpus_per_member: 2}", "gpu: {units: 1}", "cluster.gpus_per_member"},
		{"{members: 3}", "count: 2", "groups[0].count"},
		{"{members: 3, max_rtt_ms: 20000}", "", "cluster.max_rtt_ms"},
	} {
		p := write(t, "c.yaml", "max_price: 3000ukiln\ncluster: "+tc.cluster+"\ngroups:\n  - name: w\n    cpu: \"1\"\n    memory: 1Gi\n    "+tc.group+"\nservices:\n  - command: [true]\n")
		_, _, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("cluster %s, group %q: Load = %v, want an error on %s", tc.cluster, tc.group, err, tc.want)
		}
	}
}

const clusterSDL = `version: "2.0"
services:
  ray:
    image: rayproject/ray@sha256:0000000000000000000000000000000000000000000000000000000000000000
    expose:
      - port: 6379
        to: [{service: ray}]
      - port: 8265
        as: 80
        to: [{global: true}]
profiles:
  compute:
    ray:
      resources:
        cpu: {units: 2}
        memory: {size: 4Gi}
        storage: {size: 10Gi}
        gpu:
          units: 1
          attributes:
            vendor:
              nvidia:
                - model: h100
  placement:
    dc:
      attributes:
        %s
      pricing:
        ray: {denom: ukiln, amount: 1000}
deployment:
  ray:
    dc:
      profile: ray
      count: %s
`

// An SDL placement with the kiln-cluster attribute makes its service's count the
// cluster's members; without it count keeps its Akash meaning (instances on one
// provider).
func TestSDLCluster(t *testing.T) {
	p := write(t, "deploy.yaml", strings.Replace(strings.Replace(clusterSDL, "%s", "kiln-cluster: replace", 1), "%s", "4", 1))
	plans, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	pl := plans[0]
	if pl.Cluster == nil || pl.Cluster.Members != 4 || pl.Cluster.OnMemberFailure != market.FailReplace || pl.Groups[0].Count != 1 ||
		pl.MaxPrice != 4000 || len(pl.Groups[0].Attributes) != 0 || pl.Manifest.Services[0].Count != 1 {
		t.Fatalf("plan = %+v, cluster %+v", pl, pl.Cluster)
	}
	if err := api.CheckManifest(pl.Manifest, daemon.Resources(pl.Groups)); err != nil {
		t.Fatalf("the provider refuses the manifest: %v", err)
	}
	plain := write(t, "plain.yaml", strings.Replace(strings.Replace(clusterSDL, "%s", "tier: one", 1), "%s", "4", 1))
	if plans, _, err = Load(plain); err != nil || plans[0].Cluster != nil || plans[0].Groups[0].Count != 4 {
		t.Fatalf("without kiln-cluster: %+v, %v", plans, err)
	}
	for _, tc := range []struct{ attr, count, want string }{
		{"kiln-cluster: sometimes", "4", "must be refund or replace"},
		{"kiln-cluster: refund", "1", "must be at least 2"},
	} {
		bad := write(t, "bad.yaml", strings.Replace(strings.Replace(clusterSDL, "%s", tc.attr, 1), "%s", tc.count, 1))
		if _, _, err := Load(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s, count %s: Load = %v, want %q", tc.attr, tc.count, err, tc.want)
		}
	}
}
