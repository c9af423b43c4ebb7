// Package node embeds CometBFT with the Kiln application in one process: it writes a
// home directory (config, genesis, keys), starts and stops a validator, and lays out
// multi-validator localnets on loopback.
package node
