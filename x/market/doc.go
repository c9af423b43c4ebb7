// Package market is the compute market: tenants post orders, providers offer, an offer
// becomes a lease that bills per block from the order's escrow once its workload runs.
//
// Core and pricing modes. The core (keeper.go) owns orders, bids, leases, capacity and
// settlement. How an open order finds its provider and price is its pricing mode
// (Order.Mode, fixed when placed; mode.go): a Mode opens the order's windows, takes
// bids and picks, and checks the order when it is due. The reverse auction (auction.go)
// is the first mode; others are siblings behind the same interface and make leases
// only through the core.
//
// Lifecycle (reverse auction). An order placed at height H accepts bids in blocks H+1..H+bid_window_blocks
// and its window closes at the END of block H+bid_window_blocks. There, for an automatic
// order, the best bid that still fits wins (lowest price, then higher provider stake,
// then earlier bid); every other bid is released. A manual order instead waits up to
// manual_pick_blocks for the tenant's MsgCreateLease. An order with no bid at its
// window's close stays open for order_ttl_blocks (the first late bid arms a fresh
// window) and then closes with reason no_bids. A lease's ID is its order's ID: one
// order has at most one active lease; when auto_redeploy re-opens an order, the next
// lease of the same order gets the next attempt number and the old one stays as history.
//
// Contracts:
//
//   - Capacity: for every provider, the resources of its active leases MUST NEVER exceed
//     its registered inventory at the time each lease was made. A bid that does not fit
//     the provider's free capacity is refused (ErrInsufficientCapacity) and capacity is
//     checked again when the lease is made. The per-provider usage record always equals
//     the sum of its active leases (CheckInvariants).
//   - Money: an order's deposit sits in its escrow account (x/escrow) from creation;
//     bid deposits sit in the Market module account, which MUST hold exactly the sum of
//     open bids' deposits. Every bid's deposit is refunded when the bid is released
//     (lost, withdrawn, won, or its order closed).
//   - Bids and leases NEVER outlive their order: closing an order releases its bids and
//     closes its lease, and closing a lease closes its order (or re-opens it, for
//     auto_redeploy after provider_unresponsive), refunding the unused escrow in the same
//     block.
//   - Every close records its reason and height; every record notes the height that
//     wrote it.
//   - Per-block work is proportional to active leases and to orders due this block:
//     active leases and the due-queue are indexed by prefix; history is never scanned.
//   - Every close has a Reason, built in or registered by another module at app start
//     (RegisterReason), which says whether the lease pays the current block, whether an
//     auto_redeploy order re-opens, and whether the provider's held-back pay goes back
//     to the tenant at once. Closing with an unknown reason panics: a programming
//     error. Other modules close leases only through CloseLease.
//   - Closing a lease opens its dispute window (x/escrow: held pay is released when it
//     ends). While a provider has an active lease, or a closed one in its dispute
//     window, its bond cannot fall below min_provider_stake nor leave (ErrBondLocked,
//     naming the lease and the height it unlocks): the guard Wire registers with
//     staking.
//   - Modules follow leases through Hooks (created, started, closed, payment made),
//     registered at app start and run in that declared order, after the market's own
//     writes; the market imports none of them.
package market
