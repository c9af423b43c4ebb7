// Package rendezvous gives every member of a cluster lease the environment
// and MPI hostfile that torch.distributed, NCCL, gloo and mpirun expect.
package rendezvous

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-network/kiln/provider/executor"
)

// HostfileName is the lease input under which the daemon stores Hostfile(members).
const HostfileName = "hostfile"

// Member is one member of a cluster lease.
type Member struct {
	// Rank is the member's rank (0..n-1); rank 0 hosts the coordinator.
	Rank int
	// Addr is the member's overlay address.
	Addr netip.Addr
	// Slots is how many processes the member runs (one per GPU); at least 1.
	Slots int
}

// Validate checks that members hold ranks 0..n-1 once each, at distinct
// valid addresses, with at least one slot each.
func Validate(members []Member) error {
	if len(members) == 0 {
		return fmt.Errorf("rendezvous: no members")
	}
	seen := map[int]bool{}
	addrs := map[netip.Addr]int{}
	for _, m := range members {
		switch {
		case m.Rank < 0 || m.Rank >= len(members):
			return fmt.Errorf("rendezvous: member rank must be 0..%d (got %d)", len(members)-1, m.Rank)
		case seen[m.Rank]:
			return fmt.Errorf("rendezvous: member rank %d given twice", m.Rank)
		case !m.Addr.IsValid():
			return fmt.Errorf("rendezvous: member %d: address missing", m.Rank)
		case m.Slots < 1:
			return fmt.Errorf("rendezvous: member %d: slots must be >= 1 (got %d)", m.Rank, m.Slots)
		}
		if r, dup := addrs[m.Addr]; dup {
			return fmt.Errorf("rendezvous: member %d: address %s is member %d's", m.Rank, m.Addr, r)
		}
		seen[m.Rank] = true
		addrs[m.Addr] = m.Rank
	}
	return nil
}

// Env returns the environment of the process with global rank rank, which is
// process localRank on its member: MASTER_ADDR (member 0's address),
// MASTER_PORT, WORLD_SIZE (all members' slots), RANK, LOCAL_RANK,
// LOCAL_WORLD_SIZE and NODE_RANK (as torchrun sets them), KILN_PEERS (the
// members' addresses by rank, comma-separated), GLOO_SOCKET_IFNAME and
// NCCL_SOCKET_IFNAME (ifname, so that neither picks another interface), and
// KILN_HOSTFILE (where a container finds the hostfile; executors whose tasks
// see inputs elsewhere rewrite it). members must pass Validate; a member with
// fewer than one slot counts as one.
func Env(rank, localRank int, members []Member, masterPort int, ifname string) []string {
	ms := sorted(members)
	world, nodeRank, localWorld := 0, 0, 1
	peers := make([]string, len(ms))
	for i, m := range ms {
		s := slots(m)
		if rank >= world && rank < world+s {
			nodeRank, localWorld = m.Rank, s
		}
		world += s
		peers[i] = m.Addr.String()
	}
	var master string
	if len(ms) > 0 {
		master = ms[0].Addr.String()
	}
	return []string{
		"MASTER_ADDR=" + master,
		"MASTER_PORT=" + strconv.Itoa(masterPort),
		"WORLD_SIZE=" + strconv.Itoa(world),
		"RANK=" + strconv.Itoa(rank),
		"LOCAL_RANK=" + strconv.Itoa(localRank),
		"LOCAL_WORLD_SIZE=" + strconv.Itoa(localWorld),
		"NODE_RANK=" + strconv.Itoa(nodeRank),
		"KILN_PEERS=" + strings.Join(peers, ","),
		"GLOO_SOCKET_IFNAME=" + ifname,
		"NCCL_SOCKET_IFNAME=" + ifname,
		executor.EnvHostfile + "=" + path.Join(executor.InPath, HostfileName),
	}
}

// Hostfile returns the members as an OpenMPI hostfile, one
// "ADDR slots=N" line per member in rank order.
func Hostfile(members []Member) string {
	var b strings.Builder
	for _, m := range sorted(members) {
		fmt.Fprintf(&b, "%s slots=%d\n", m.Addr, slots(m))
	}
	return b.String()
}

func sorted(members []Member) []Member {
	ms := append([]Member(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Rank < ms[j].Rank })
	return ms
}

func slots(m Member) int { return max(m.Slots, 1) }
