// Package types holds the ledger's shared vocabulary: addresses, coins, result codes,
// the message interface and the execution context handed to modules.
package types
