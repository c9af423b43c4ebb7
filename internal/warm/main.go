package main

import (
	_ "github.com/cometbft/cometbft/node"
	_ "github.com/cometbft/cometbft/rpc/client/http"
	_ "github.com/cometbft/cometbft/abci/example/kvstore"
	_ "github.com/cockroachdb/pebble"
	_ "github.com/spf13/cobra"
	_ "github.com/cosmos/go-bip39"
	_ "github.com/btcsuite/btcd/btcutil/bech32"
	_ "github.com/moby/moby/client"
	_ "github.com/NVIDIA/go-nvml/pkg/nvml"
	_ "gopkg.in/yaml.v3"
	_ "filippo.io/age"
	_ "github.com/BurntSushi/toml"
)
func main() {}
