package train

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"time"
)

// Data-parallel training.
//
// A run of WORLD_SIZE ranks splits each step's minibatch (drawn from (seed, step) alone,
// the same on every rank) into Params.Shards = WORLD_SIZE contiguous parts; rank r
// computes the gradient of its part's summed loss divided by the batch size; the parts'
// gradients are summed IN RANK ORDER (PyTorch: all_gather then a left-to-right sum;
// Go: every rank sends its part to rank 0, which sums and sends the total back) and every
// rank applies the same total, so all ranks hold bit-identical weights. Every rank writes
// the checkpoints (the same bytes: the chain outlives any one rank) and DIR/rank-N.json
// (RankReport); rank 0 alone writes units.json, job.json and metrics.json. A resumed run
// starts from the longest chain among the ranks' DIRs, which the ranks with a shorter one
// adopt.
//
// Verification: a verifier replays a segment in ONE process with the job's Shards, looping
// over the parts and summing them in the same order, so the replay is the same arithmetic
// as the distributed run: bit-exact for the Go engine, and for PyTorch bit-exact on the
// same build (measured: max difference 0), within PyTorchTolerance across builds. The
// tolerance policy of Compare is therefore unchanged by distribution.
//
// Against a single-process run of the same seed WITHOUT shards, a distributed run does the
// same mathematics with sums in another order, so it differs by float32 rounding only:
// DistLossTolerance bounds the final loss difference (measured in the tests).

// DistLossTolerance is the largest relative difference between the final loss of a
// data-parallel run and a single-process run (no shards) of the same job: rounding of
// float32 sums in another order, compounded over the run. Measured on the digits set:
// 3 ranks, 200 steps (the tests): 9e-8 (Go), 0 (PyTorch); the reference 2,000 steps, 3
// shards: 5e-7 (Go), 4e-7 (PyTorch). The bound leaves 200 times that.
const DistLossTolerance = 1e-4

// DefaultDistTimeout is how long a rank waits for the others (joining, and each exchange)
// before it gives up: long enough for torch's import and a slow peer's step, short enough
// that a crashed rank fails the run in a minute, not never.
const DefaultDistTimeout = 60 * time.Second

// maxWorld bounds WORLD_SIZE: far above the clusters Kiln places, low enough that a typo
// does not make rank 0 wait for a million peers.
const maxWorld = 1024

// Dist is a rank's place in a data-parallel run: torch.distributed's environment. The
// zero Dist (or WorldSize 1) is a single process.
type Dist struct {
	WorldSize  int           // WORLD_SIZE: ranks in the run
	Rank       int           // RANK: this rank, 0 to WorldSize-1
	LocalRank  int           // LOCAL_RANK: this rank's index on its machine (its GPU)
	MasterAddr string        // MASTER_ADDR: rank 0's address
	MasterPort int           // MASTER_PORT: rank 0's rendezvous port
	Ifname     string        // GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME ("" = the library's choice)
	Timeout    time.Duration // how long to wait for the other ranks (0 = DefaultDistTimeout)
	// Epoch is KILN_CLUSTER_EPOCH: the cluster's restart count. Ranks join only a rank 0
	// of their own epoch, so a rank restarted for a new epoch never joins a rank 0 of the
	// old one that its provider has not stopped yet.
	Epoch uint32
}

// Distributed reports whether d is a run of more than one rank.
func (d Dist) Distributed() bool { return d.WorldSize > 1 }

// timeout is d's Timeout or the default.
func (d Dist) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return DefaultDistTimeout
}

// Validate says what is wrong with d, naming the environment variable.
func (d Dist) Validate() error {
	if !d.Distributed() {
		if d.WorldSize < 0 || d.Rank != 0 {
			return fmt.Errorf("WORLD_SIZE %d, RANK %d: a single process is rank 0 of 1", d.WorldSize, d.Rank)
		}
		return nil
	}
	switch {
	case d.WorldSize > maxWorld:
		return fmt.Errorf("WORLD_SIZE %d: at most %d", d.WorldSize, maxWorld)
	case d.Rank < 0 || d.Rank >= d.WorldSize:
		return fmt.Errorf("RANK %d: must be 0 to WORLD_SIZE-1 (%d)", d.Rank, d.WorldSize-1)
	case d.LocalRank < 0 || d.LocalRank >= d.WorldSize:
		return fmt.Errorf("LOCAL_RANK %d: must be 0 to WORLD_SIZE-1 (%d)", d.LocalRank, d.WorldSize-1)
	case d.MasterAddr == "":
		return fmt.Errorf("MASTER_ADDR: required when WORLD_SIZE is %d", d.WorldSize)
	case d.MasterPort < 1 || d.MasterPort > 65535:
		return fmt.Errorf("MASTER_PORT %d: must be 1 to 65535", d.MasterPort)
	case d.Timeout < 0:
		return fmt.Errorf("KILN_DIST_TIMEOUT %v: must be positive", d.Timeout)
	}
	return nil
}

// DistFromEnv reads torch.distributed's environment (WORLD_SIZE, RANK, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT, GLOO_SOCKET_IFNAME, KILN_DIST_TIMEOUT in seconds, and
// KILN_CLUSTER_EPOCH) through getenv. No WORLD_SIZE, or WORLD_SIZE=1, is a single process.
func DistFromEnv(getenv func(string) string) (Dist, error) {
	num := func(name string, def int) (int, error) {
		v := getenv(name)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s %q: not an integer", name, v)
		}
		return n, nil
	}
	var d Dist
	var err error
	if d.WorldSize, err = num("WORLD_SIZE", 1); err != nil {
		return Dist{}, err
	}
	if d.WorldSize < 1 {
		return Dist{}, fmt.Errorf("WORLD_SIZE %d: must be at least 1", d.WorldSize)
	}
	if d.Rank, err = num("RANK", 0); err != nil {
		return Dist{}, err
	}
	if d.LocalRank, err = num("LOCAL_RANK", d.Rank); err != nil {
		return Dist{}, err
	}
	if d.MasterPort, err = num("MASTER_PORT", 0); err != nil {
		return Dist{}, err
	}
	d.MasterAddr = getenv("MASTER_ADDR")
	d.Ifname = getenv("GLOO_SOCKET_IFNAME")
	if v := getenv("KILN_DIST_TIMEOUT"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || !(s > 0 && s <= 86400) {
			return Dist{}, fmt.Errorf("KILN_DIST_TIMEOUT %q: must be seconds, more than 0 and at most 86400", v)
		}
		d.Timeout = time.Duration(s * float64(time.Second))
	}
	if v := getenv("KILN_CLUSTER_EPOCH"); v != "" {
		e, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Dist{}, fmt.Errorf("KILN_CLUSTER_EPOCH %q: must be an integer, 0 to %d", v, uint32(math.MaxUint32))
		}
		d.Epoch = uint32(e)
	}
	if !d.Distributed() {
		d.LocalRank = 0
	}
	return d, d.Validate()
}

// env is d as the environment of a training process. A single process gets WORLD_SIZE=1
// explicitly, so a verifier's replay never joins a run whose environment it inherited.
func (d Dist) env() []string {
	if !d.Distributed() {
		return []string{"WORLD_SIZE=1", "RANK=0", "LOCAL_RANK=0"}
	}
	e := []string{
		"WORLD_SIZE=" + strconv.Itoa(d.WorldSize),
		"RANK=" + strconv.Itoa(d.Rank),
		"LOCAL_RANK=" + strconv.Itoa(d.LocalRank),
		"MASTER_ADDR=" + d.MasterAddr,
		"MASTER_PORT=" + strconv.Itoa(d.MasterPort),
		"KILN_DIST_TIMEOUT=" + strconv.FormatFloat(d.timeout().Seconds(), 'f', -1, 64),
		"KILN_CLUSTER_EPOCH=" + strconv.FormatUint(uint64(d.Epoch), 10),
	}
	if d.Ifname != "" {
		e = append(e, "GLOO_SOCKET_IFNAME="+d.Ifname, "NCCL_SOCKET_IFNAME="+d.Ifname)
	}
	return e
}

// master is rank 0's rendezvous address.
func (d Dist) master() string {
	return net.JoinHostPort(d.MasterAddr, strconv.Itoa(d.MasterPort))
}
