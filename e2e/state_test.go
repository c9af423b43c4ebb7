package e2e

import (
	cfg "github.com/cometbft/cometbft/config"

	"github.com/kiln-network/kiln/node"
	"github.com/kiln-network/kiln/store"
)

func openState(conf *cfg.Config) (*store.DB, error) { return store.Open(node.StateDir(conf)) }
