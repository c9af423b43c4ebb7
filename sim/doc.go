// Package sim is the market simulator: synthetic providers and tenants at network
// scale (40,000 to 1,000,000 GPUs) driving the chain's own market code — the module
// table's handlers, hooks and end-block, through app.Ledger on an in-memory store —
// block by block, and measuring fill rate, time to lease, prices, utilization and the
// cost of matching.
//
// What is synthetic is only what lives outside the chain: who asks for what and when
// (tenants), and how providers decide to bid, start, heartbeat and finish (daemons).
// Providers pick the orders they bid on from the market's free-capacity index
// (market.Candidates), as a daemon asking the chain "which orders can I take" would;
// everything they send is an ordinary message that the chain checks as usual.
package sim
