package rendezvous

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// three members given out of rank order, member 1 with two GPUs.
var three = []Member{
	{Rank: 2, Addr: addr("10.130.4.3"), Slots: 1},
	{Rank: 0, Addr: addr("10.130.4.1"), Slots: 1},
	{Rank: 1, Addr: addr("10.130.4.2"), Slots: 2},
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name            string
		rank, localRank int
		members         []Member
		want            []string
	}{
		{"rank 0", 0, 0, three, []string{
			"MASTER_ADDR=10.130.4.1", "MASTER_PORT=29500", "WORLD_SIZE=4", "RANK=0", "LOCAL_RANK=0",
			"LOCAL_WORLD_SIZE=1", "NODE_RANK=0", "KILN_PEERS=10.130.4.1,10.130.4.2,10.130.4.3",
			"GLOO_SOCKET_IFNAME=kiln0", "NCCL_SOCKET_IFNAME=kiln0", "KILN_HOSTFILE=/in/hostfile"}},
		{"second process of member 1", 2, 1, three, []string{
			"MASTER_ADDR=10.130.4.1", "MASTER_PORT=29500", "WORLD_SIZE=4", "RANK=2", "LOCAL_RANK=1",
			"LOCAL_WORLD_SIZE=2", "NODE_RANK=1", "KILN_PEERS=10.130.4.1,10.130.4.2,10.130.4.3",
			"GLOO_SOCKET_IFNAME=kiln0", "NCCL_SOCKET_IFNAME=kiln0", "KILN_HOSTFILE=/in/hostfile"}},
		{"member 2", 3, 0, three, []string{
			"MASTER_ADDR=10.130.4.1", "MASTER_PORT=29500", "WORLD_SIZE=4", "RANK=3", "LOCAL_RANK=0",
			"LOCAL_WORLD_SIZE=1", "NODE_RANK=2", "KILN_PEERS=10.130.4.1,10.130.4.2,10.130.4.3",
			"GLOO_SOCKET_IFNAME=kiln0", "NCCL_SOCKET_IFNAME=kiln0", "KILN_HOSTFILE=/in/hostfile"}},
		{"single member", 0, 0, []Member{{Rank: 0, Addr: addr("10.130.9.1"), Slots: 1}}, []string{
			"MASTER_ADDR=10.130.9.1", "MASTER_PORT=29500", "WORLD_SIZE=1", "RANK=0", "LOCAL_RANK=0",
			"LOCAL_WORLD_SIZE=1", "NODE_RANK=0", "KILN_PEERS=10.130.9.1",
			"GLOO_SOCKET_IFNAME=kiln0", "NCCL_SOCKET_IFNAME=kiln0", "KILN_HOSTFILE=/in/hostfile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Env(tc.rank, tc.localRank, tc.members, 29500, "kiln0")
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Env(%d, %d) =\n%s\nwant\n%s", tc.rank, tc.localRank, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestHostfile(t *testing.T) {
	want := "10.130.4.1 slots=1\n10.130.4.2 slots=2\n10.130.4.3 slots=1\n"
	if got := Hostfile(three); got != want {
		t.Fatalf("Hostfile = %q, want %q", got, want)
	}
	if got := Hostfile(nil); got != "" {
		t.Fatalf("Hostfile(nil) = %q, want empty", got)
	}
}

func TestValidate(t *testing.T) {
	if err := Validate(three); err != nil {
		t.Fatalf("Validate(three) = %v", err)
	}
	for _, tc := range []struct {
		name    string
		members []Member
		want    string
	}{
		{"none", nil, "no members"},
		{"gap", []Member{{Rank: 0, Addr: addr("10.0.0.1"), Slots: 1}, {Rank: 2, Addr: addr("10.0.0.3"), Slots: 1}}, "rank must be 0..1 (got 2)"},
		{"twice", []Member{{Rank: 0, Addr: addr("10.0.0.1"), Slots: 1}, {Rank: 0, Addr: addr("10.0.0.2"), Slots: 1}}, "given twice"},
		{"no addr", []Member{{Rank: 0, Slots: 1}}, "address missing"},
		{"no slots", []Member{{Rank: 0, Addr: addr("10.0.0.1")}}, "slots must be >= 1"},
		{"same addr", []Member{{Rank: 0, Addr: addr("10.0.0.1"), Slots: 1}, {Rank: 1, Addr: addr("10.0.0.1"), Slots: 1}}, "is member 0's"},
	} {
		if err := Validate(tc.members); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%s) = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}
