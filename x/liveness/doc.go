// Package liveness is the ledger's time-lock and hardware proofs: random matmul
// challenges a provider must answer, signed, by a deadline, proving that it is up and
// holds the compute it claims.
//
// A challenge names a size n and a seed drawn from the issuing block's randomness; the
// provider computes C = A×B for the matrices of that seed (work/matmul's challenge
// form), commits to C with a Merkle root over 64-entry chunks (MsgAnswer, by
// issued_height + deadline_blocks), and then opens the sample_chunks chunks the chain
// drew in the answer's block (MsgReveal, by answered_height + reveal_blocks). The
// chain checks each opened chunk against the root and entries_per_chunk of its entries
// (drawn in the reveal's block) against its own O(n) computation of them: it never
// builds a matrix, so FinalizeBlock's cost is O(sample_chunks × entries_per_chunk × n)
// per reveal. n is sized so that one unit of the claimed model (a GPU, or one CPU
// core) takes about target_millis at the model's expected throughput (gpu catalogue
// figures in expected_mflops), within min_n..max_n.
//
// Two kinds:
//
//   - liveness: while a lease runs (from MsgStartLease), every lease_challenge_blocks
//     on average, at a height drawn from block randomness. A missed, unrevealed or
//     wrong answer slashes slash_bps of the provider bond (dated at the issuing
//     height, so stake that began unbonding after it is taken too) and closes the lease
//     with reason liveness_failed: the tenant gets the unused escrow and the provider's
//     held pay back at once, and an auto_redeploy order re-opens for other providers.
//   - hardware: at registration and inventory changes (one per claimed model), and
//     every hardware_recheck_blocks on average later. A wrong or missing answer, or a
//     right one whose reported throughput is below slow_ratio_bps of the model's figure,
//     flags the model: orders that need it exclude the provider (market constraint
//     hardware_proof, in why-no-bids) until a later hardware challenge passes. No
//     slash: a slow card is not a fraud, it is a different card.
//
// What is trusted. The chain cannot time a computation. It knows: the seed was
// unknown before the issuing block was decided; the answer's root was fixed in a block
// no later than the deadline; the sampled entries are right (a provider that computed
// only a fraction f of C passes with probability at most f^(chunks×entries)); and the
// block times of both blocks, so 2n³ / (answer time − issue time) is a throughput the
// chain proves (chain_mflops, a lower bound that includes block latency). The
// provider's reported duration (millis, signed with its key) gives reported_mflops:
// it is the provider's own claim. A provider can understate its time and look faster;
// it cannot answer faster than the deadline allows or answer wrongly unnoticed. So a
// tight proof of speed needs deadline_blocks × block time close to target_millis; the
// reported figure is for scoring and pricing, not for slashing.
//
// What can bias it: the block proposer (see types.BlockRand) can grind the chunks drawn
// for an answer in its own block; a provider that is also the proposer could shift
// which chunks it must open. Bounded by what grinding a block costs against one
// challenge's slash.
//
// Contracts:
//
//   - Every pending challenge (open or answered) is queued at its current deadline and
//     indexed under its provider; EndBlock fails every challenge whose deadline is this
//     block, so after a block none is pending past its deadline (CheckInvariants).
//   - An answer is final: a second answer, or one after the deadline, is refused
//     (ErrChallengeClosed, ErrChallengeLate) and changes nothing. A reveal that does
//     not match the committed root is refused (ErrBadReveal) and may be retried until
//     its deadline; a reveal that matches the root but holds a wrong entry fails the
//     challenge.
//   - The module NEVER moves money itself: slashing goes through staking.SlashBond and
//     lease closing through market.CloseLease, whose books the app checks.
//   - Deterministic: no floats in state; the chain's entry computation rounds every
//     product (no fused multiply-add), and its tolerance (1e-6·n) is far wider than any
//     platform's difference.
package liveness
