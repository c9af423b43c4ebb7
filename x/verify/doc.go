// Package verify is Kiln's trust layer on chain: providers commit the Merkle root of
// their work units, verifiers re-execute units sampled with later block randomness,
// mismatches become challenges decided by the chain itself (matmul, plain hashes) or by
// a committee of 2N+1 verifiers, tenants dispute within a window, and a proven cheat is
// slashed, its reporter rewarded and its tenant refunded.
//
// Contracts:
//
//   - Commitments. Only a lease's provider commits, while the lease runs or, after it
//     completed, within its dispute window; one commitment per (lease, attempt,
//     checkpoint) NEVER changes. Its root is proof.ItemsRoot over (unit id, SHA-256 of
//     the unit's file): the root `kiln fetch` checks units.json against.
//   - Sampling. The units to check are drawn at the END of block commit height +
//     sample_delay_blocks (>= 1) from that block's randomness (types.Context.Rand), which
//     the provider cannot know when its commitment is included. What one proposer can
//     bias: the proposer of that block can grind its block (transaction order, time,
//     included votes) to pick among candidate samples, or withhold it and pass the choice
//     to the next round's proposer; a provider that is not the proposer cannot. A
//     colluding proposer improves a cheat's odds only by retrying: each candidate block
//     is an independent draw, so k grinds let a provider faking a fraction f of its units
//     escape with probability at most k(1-f)^s (s = sample_count), and a lease's
//     tenant may still dispute any unit within the window. The verifier assigned is drawn
//     from the same block, from all verifiers with min_verifier_stake, excluding the
//     provider and the tenant.
//   - Verdicts and votes come only from the verifier assigned (or the committee drawn),
//     once, by their deadline: replays (ErrAnswered), late answers (ErrLate) and
//     strangers (ErrNotAssigned) are refused and change nothing. A verifier silent at
//     its deadline is slashed silent_slash_bps and replaced (at most three tries, then
//     the commitment stays unchecked); a committee member silent at the vote deadline
//     is slashed the same; without a majority a fresh committee (none of the last)
//     votes once more, and then the challenge is inconclusive (nobody convicted, the
//     tenant's deposit returned).
//   - Availability. A provider MUST serve a commitment's units and pinned assets to the
//     verifiers with a duty on it. The assigned verifier that was not served what a
//     sample needs (the unit, its committed input, an asset) reports it
//     (MsgUnavailable) instead of a verdict, and is NEVER slashed for that silence: a
//     committee drawn without it gives the provider serve_blocks to serve the item.
//     Members vote served, or unavailable; a majority unavailable convicts the
//     provider as for fraud (slash, reward, refund); a majority served sends the check
//     to another verifier, the reporter neither slashed nor paid. A committee member
//     not served what re-executing a disputed unit needs votes unavailable, which
//     counts toward conviction. A member outvoted is slashed only for the opposite
//     finding by re-execution: never for saying it was not served, for saying it was,
//     nor for finding a unit honest when the conviction is for withholding.
//   - Evidence. A challenge's evidence (the unit's data or its SHA-256, and its Merkle
//     proof) MUST lead to the committed root at the challenged index; a forged proof
//     is refused (ErrBadProof) and changes nothing. Data is carried only for kinds
//     with a DirectCheck, which are decided in the same transaction; a report on any
//     other kind carries the unit's hash (its data is refused) and the committee
//     fetches the unit from the provider, so a unit of any size, larger than a
//     transaction, can be reported. A direct kind's unit reported by its hash (too big
//     to carry) goes to a committee as well.
//   - Money. A proven cheat's provider bond is slashed fraud_slash_bps into the
//     community pool (staking.SlashBond, dated at its commitment, so stake unbonded since
//     is slashed too); whistleblower_bps of it goes to the reporter; the lease closes
//     with reason fraud, its held pay goes back to the tenant at once, and the rest of
//     what the lease paid (gross, fees included) is refunded from the community pool up
//     to what the slash (less the reward) and the lease's fees brought into it. A false
//     report slashes the reporting verifier false_report_slash_bps, or forfeits a
//     tenant's dispute deposit to the community pool. Verifiers are paid verifier_pay per
//     check the outcome bore out, from the community pool while it holds it. Money only
//     moves between accounts: supply NEVER changes; the verify module account MUST hold
//     exactly the deposits of undecided challenges (the books check it every block).
//   - Locks. While a commitment of a provider awaits its verdict or a challenge of it
//     is undecided, its provider bond cannot be unbonded (ErrBondLocked), and the pay
//     held back on its lease is kept (escrow.KeepHeld) until the verdict can claw it
//     back.
//   - Every record notes the height that wrote it; EndBlock works a due queue keyed by
//     height, so per-block work is proportional to what is due, never to history.
package verify
