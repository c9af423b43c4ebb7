package liveness

import (
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/kiln-network/kiln/gpu"
	"github.com/kiln-network/kiln/work/matmul"
)

// Params are the liveness module's on-chain parameters. Periods are in blocks.
type Params struct {
	// LeaseChallengeBlocks is the mean gap between two liveness challenges of a running
	// lease: the next one is drawn uniformly from 1..2×this blocks after the previous
	// one passed (or the lease started), from block randomness. 0 turns lease
	// challenges off.
	LeaseChallengeBlocks int64 `json:"lease_challenge_blocks,string"`
	// HardwareAtRegistration: a provider gets a hardware challenge per claimed model
	// when it registers or changes its inventory.
	HardwareAtRegistration bool `json:"hardware_at_registration"`
	// HardwareRecheckBlocks is the mean gap between a provider's later, random hardware
	// challenges (uniform in 1..2×this after the previous one closed); 0: none.
	HardwareRecheckBlocks int64 `json:"hardware_recheck_blocks,string"`
	// DeadlineBlocks: a challenge issued in block H must be answered (its root
	// committed) in a block up to H+this.
	DeadlineBlocks int64 `json:"deadline_blocks,string"`
	// RevealBlocks: an answer in block A must have its sampled chunks revealed in a
	// block up to A+this. The chunks are drawn in block A, so this needs no compute.
	RevealBlocks int64 `json:"reveal_blocks,string"`
	// TargetMillis is how long a challenge should take on one unit of the claimed
	// model at its expected throughput: it sizes the matrix (n), within MinN..MaxN.
	TargetMillis uint64 `json:"target_millis,string"`
	// MinN and MaxN bound the matrix size; both multiples of 64.
	MinN uint32 `json:"min_n"`
	MaxN uint32 `json:"max_n"`
	// SampleChunks is how many 64-entry chunks of the product the provider must reveal
	// (drawn in the answer's block); EntriesPerChunk how many entries of each the chain
	// recomputes (drawn in the reveal's block), in O(n) each.
	SampleChunks    uint32 `json:"sample_chunks"`
	EntriesPerChunk uint32 `json:"entries_per_chunk"`
	// SlashBps is the share of the provider bond a failed liveness challenge takes
	// (missed, unrevealed or wrong), in basis points.
	SlashBps uint32 `json:"slash_bps"`
	// SlowRatioBps: a hardware challenge whose reported throughput is below this share
	// of the model's expected figure flags the model as slow; 0: no speed check.
	SlowRatioBps uint32 `json:"slow_ratio_bps"`
	// MinTimedMillis: the speed check applies only when the challenge should take at
	// least this long on the claimed model; below it, start-up and transfer costs
	// dominate and a fast part would look slow.
	MinTimedMillis uint64 `json:"min_timed_millis,string"`
	// ExpectedMFLOPS is the expected challenge throughput per unit of each model key
	// (GPU model keys; "cpu" per core), from the gpu catalogue. A model not listed is
	// challenged at MinN and never speed-checked.
	ExpectedMFLOPS map[string]uint64 `json:"expected_mflops"`
}

// DefaultParams: a running lease is challenged every 100 blocks on average (about
// twice in 3 minutes at 1 s blocks), with 10 blocks to answer and 10 more to reveal;
// providers are hardware-challenged at registration and every 1000 blocks on average.
// A challenge targets 500 ms on one unit of the claimed model, n in 64..2048 (the
// chain's check costs O(samples·n), not n²); 16 chunks × 4 entries are checked, so a
// provider that computed a fraction f of the product passes with probability f^64 at
// most (0.1% at f = 0.9). A failed liveness challenge slashes 1% of the provider bond
// (Aethir slashes a third for downtime, but Kiln also closes the lease and the
// provider loses the order). Speed: flagged below 10% of the expected figure, when the
// challenge should take 50 ms or more.
func DefaultParams() Params {
	exp := map[string]uint64{}
	for k, g := range gpu.ExpectedMatmulFigures() {
		exp[k] = uint64(math.Round(g * 1000))
	}
	return Params{LeaseChallengeBlocks: 100, HardwareAtRegistration: true, HardwareRecheckBlocks: 1000,
		DeadlineBlocks: 10, RevealBlocks: 10, TargetMillis: 500, MinN: 64, MaxN: 2048,
		SampleChunks: 16, EntriesPerChunk: 4, SlashBps: 100, SlowRatioBps: 1000, MinTimedMillis: 50, ExpectedMFLOPS: exp}
}

// Off returns p with every challenge turned off (tests and chains that do not want
// them); the other settings stay valid.
func (p Params) Off() Params {
	p.LeaseChallengeBlocks, p.HardwareAtRegistration, p.HardwareRecheckBlocks = 0, false, 0
	return p
}

// Validate checks the parameters.
func (p Params) Validate() error {
	nOK := func(n uint32) bool { return matmul.ValidChallengeN(int(n)) == nil }
	switch {
	case p.LeaseChallengeBlocks < 0 || p.LeaseChallengeBlocks > 1_000_000:
		return fmt.Errorf("lease_challenge_blocks: must be 0 to 1000000 (got %d)", p.LeaseChallengeBlocks)
	case p.HardwareRecheckBlocks < 0 || p.HardwareRecheckBlocks > 10_000_000:
		return fmt.Errorf("hardware_recheck_blocks: must be 0 to 10000000 (got %d)", p.HardwareRecheckBlocks)
	case p.DeadlineBlocks < 1 || p.DeadlineBlocks > 10_000:
		return fmt.Errorf("deadline_blocks: must be 1 to 10000 (got %d)", p.DeadlineBlocks)
	case p.RevealBlocks < 1 || p.RevealBlocks > 10_000:
		return fmt.Errorf("reveal_blocks: must be 1 to 10000 (got %d)", p.RevealBlocks)
	case p.TargetMillis < 1 || p.TargetMillis > 600_000:
		return fmt.Errorf("target_millis: must be 1 to 600000 (got %d)", p.TargetMillis)
	case !nOK(p.MinN):
		return fmt.Errorf("min_n: must be a multiple of %d from %d to %d (got %d)", matmul.ChunkEntries, matmul.ChunkEntries, matmul.MaxChallengeN, p.MinN)
	case !nOK(p.MaxN) || p.MaxN < p.MinN:
		return fmt.Errorf("max_n: must be a multiple of %d from min_n %d to %d (got %d)", matmul.ChunkEntries, p.MinN, matmul.MaxChallengeN, p.MaxN)
	case p.SampleChunks < 1 || p.SampleChunks > maxRevealChunks:
		// NB: 32 chunks of 512 bytes with proofs of at most 20 hashes fit a 64 KiB tx.
		return fmt.Errorf("sample_chunks: must be 1 to %d (got %d)", maxRevealChunks, p.SampleChunks)
	case p.EntriesPerChunk < 1 || p.EntriesPerChunk > matmul.ChunkEntries:
		return fmt.Errorf("entries_per_chunk: must be 1 to %d (got %d)", matmul.ChunkEntries, p.EntriesPerChunk)
	case p.SlashBps > 10_000:
		return fmt.Errorf("slash_bps: must be at most 10000 (got %d)", p.SlashBps)
	case p.SlowRatioBps > 10_000:
		return fmt.Errorf("slow_ratio_bps: must be at most 10000 (got %d)", p.SlowRatioBps)
	case p.MinTimedMillis > 600_000:
		return fmt.Errorf("min_timed_millis: must be at most 600000 (got %d)", p.MinTimedMillis)
	}
	keys := make([]string, 0, len(p.ExpectedMFLOPS))
	for k := range p.ExpectedMFLOPS {
		keys = append(keys, k)
	}
	sort.Strings(keys) // NB: the same key is reported on every node
	for _, k := range keys {
		if v := p.ExpectedMFLOPS[k]; k == "" || len(k) > 64 || v < 1 || v > 1<<50 {
			return fmt.Errorf("expected_mflops.%s: a model key of 1-64 bytes with 1 to 2^50 MFLOPS (got %d)", k, v)
		}
	}
	return nil
}

// SizeFor returns the challenge size for one unit of model: the largest multiple of
// 64 in MinN..MaxN whose 2n³ flops take at most TargetMillis at the model's expected
// throughput (MinN for a model without a figure). Integer arithmetic only.
func (p Params) SizeFor(model string) uint32 {
	exp, ok := p.ExpectedMFLOPS[model]
	if !ok {
		return p.MinN
	}
	budget := satMul(satMul(exp, p.TargetMillis), 1000) // flops: MFLOPS × ms × 1000
	for n := p.MaxN; n > p.MinN; n -= matmul.ChunkEntries {
		if 2*uint64(n)*uint64(n)*uint64(n) <= budget {
			return n
		}
	}
	return p.MinN
}

// satMul returns a×b, or the largest uint64 if that overflows.
func satMul(a, b uint64) uint64 {
	if hi, lo := bits.Mul64(a, b); hi == 0 {
		return lo
	}
	return math.MaxUint64
}
