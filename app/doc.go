// Package app is the Kiln ABCI 2.0 application: it decodes transactions, checks them,
// routes their messages to the modules, and commits the resulting state.
//
// Contracts (the ledger is a replicated state machine; these keep replicas identical):
//
//   - The app MUST be deterministic: the same genesis and the same blocks MUST yield the
//     same results, events and app hash on every node. It NEVER reads the wall clock,
//     randomness, the network or the environment; time comes from the block header and
//     iteration is always over sorted keys.
//   - FinalizeBlock stages every write in a cache and computes the app hash; Commit
//     persists it in one synced batch. A crash between them loses the block, which
//     CometBFT's handshake replays on restart.
//   - Every module is one entry of the module table (Modules, modules.go): its message
//     types and decoders, handler, hooks, begin- and end-block, genesis parameters,
//     module accounts, invariants and query root. The table's order is the order
//     hooks are wired and begin- and end-block run, and is part of the protocol. A
//     message type or name claimed twice panics when the app is made. A message of a
//     type no module registered is refused with its own result code, never ignored.
//   - MsgSend may not credit a module account whose module keeps records of what it
//     holds: money reaches those only through their module's messages.
//   - A transaction that fails its checks (decode, chain-id, signer, signature, sequence,
//     fee) changes nothing. A transaction that passes them pays its fee and uses its
//     sequence even if a message then fails; the messages' effects are all or nothing.
//   - A bad user transaction yields a result code and a log a person understands. A
//     broken invariant (supply not matching balances, a corrupt record) panics: a
//     diverging node must halt, not limp on.
//   - After a block's transactions, the market settles every active lease from escrow
//     and closes the bid windows due at that height (x/market, x/escrow); this work is
//     proportional to active leases and due orders, never to history.
//   - Modules extend one another only through types.Hooks (market hooks and close
//     reasons, staking's unbond guards), which New fills in a declared order (its own
//     wiring, then Options.Extend) and seals before any block: every node runs the same
//     hooks in the same order, in FinalizeBlock and CheckTx alike.
//   - Every context carries the block's randomness (types.BlockRand), derived in
//     FinalizeBlock from the previous value, the height, the block hash and its
//     DecidedLastCommit, and stored in state; CheckTx and queries get the last
//     committed block's. No other source of randomness exists in the app.
//   - After the market's EndBlock, escrow releases the held-back pay whose dispute
//     window ends at this height.
//   - CheckTx runs the whole transaction against a scratch copy of state, so the mempool
//     only holds transactions that would succeed now; it is reset to committed state on
//     every Commit, and CometBFT's recheck re-applies what is still pending. Its block
//     time is the last committed block's (genesis time before block 1).
//   - Query reads a store.View of the last committed height, never the live database:
//     it runs beside Commit and MUST NOT see part of a block.
package app
