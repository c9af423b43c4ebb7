// Package store is the ledger's state: a pebble database of committed state, copy-on-write
// caches for blocks and transactions, and an incremental lattice hash (LtHash) that
// commits to the whole state.
//
// # Why not a Merkle tree
//
// github.com/cosmos/iavl is not available to us, and the app hash MUST commit to the
// entire state every block. The options were:
//
//   - A Merkle tree rebuilt every block: O(state) hashing per block, which grows without
//     bound as accounts, leases and proofs accumulate.
//   - A sparse Merkle tree (Jellyfish-style): O(k log n) per block for k changed keys and
//     inclusion proofs, at the price of a node store, pruning and a large amount of subtle
//     code to own.
//   - A homomorphic multiset hash: O(k) per block with a fixed 2 KiB accumulator.
//
// We use the third: LtHash16 (Bellare–Micciancio; Lewi et al., "Securing Update
// Propagation with Homomorphic Hashing", 2019), the same construction Solana adopted for
// its accounts hash. Each key/value pair is expanded with SHAKE128 into 1024 uint16
// lanes; the state hash is the lane-wise sum mod 2^16 over all pairs. Writing a key
// subtracts the old pair and adds the new one, so the cost of a block is proportional
// to what it changed, and two nodes with the same state have the same accumulator no
// matter in which order they wrote it. Finding two different states with the same sum
// is as hard as the short integer solution problem on that lattice. The app hash is
// SHA-256 of the accumulator.
//
// The trade-off: no per-key inclusion proofs. Light clients must trust the full node
// they query; a sparse Merkle tree can be added beside the accumulator later without
// changing the state layout.
//
// # Contracts
//
//   - Iteration MUST be in ascending key order; no code path may depend on map order.
//   - A Cache MUST NOT change its parent until Write.
//   - Committed state, height, app hash and accumulator are written in one synced pebble
//     batch, so a crash leaves either the old block or the new one, never a mix.
//   - Keys starting with MetaPrefix are bookkeeping, never part of the hashed state.
//   - A View reads exactly one committed height (a pebble snapshot taken inside Commit,
//     under the lock that hands Views out), whatever commits after it; readers beside
//     Commit (queries) MUST read through one, and MUST release it.
package store
