package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/privval"
	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/store"
)

// Export reads the whole state of the node in home at its last committed height and
// returns a genesis for a new chain that continues it (`kiln export`): app_state is
// the exported state (app.ExportedState), initial_height the next height, the
// genesis time that height's block time, the consensus parameters those of home's
// genesis, and the validators left to the app (the set staking last gave CometBFT).
// chainID names the new chain; empty keeps the old one. The node must be stopped:
// Export claims the home as a node would.
func Export(home, chainID string) (*cmttypes.GenesisDoc, app.ExportedState, error) {
	conf, err := LoadConfig(home)
	if err != nil {
		return nil, app.ExportedState{}, err
	}
	pid, err := lockHome(home)
	if err != nil {
		return nil, app.ExportedState{}, fmt.Errorf("export: %w", err)
	}
	defer pid.Release()
	db, err := store.Open(StateDir(conf))
	if err != nil {
		return nil, app.ExportedState{}, err
	}
	defer db.Close()
	e, err := app.Export(db)
	if err != nil {
		return nil, e, err
	}
	old, err := cmttypes.GenesisDocFromFile(conf.GenesisFile())
	if err != nil {
		return nil, e, fmt.Errorf("genesis of %s: %w", home, err)
	}
	if chainID == "" {
		chainID = old.ChainID
	}
	if !chainIDRe.MatchString(chainID) {
		return nil, e, fmt.Errorf("chain-id %q: must be 1-49 of [a-zA-Z0-9._-], starting with a letter or digit", chainID)
	}
	appState, err := json.Marshal(struct {
		Exported *app.ExportedState `json:"exported"`
	}{&e})
	if err != nil {
		return nil, e, err
	}
	doc := &cmttypes.GenesisDoc{
		ChainID:         chainID,
		GenesisTime:     db.BlockTime(),
		InitialHeight:   e.Height + 1,
		ConsensusParams: old.ConsensusParams,
		AppState:        appState,
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return nil, e, fmt.Errorf("exported genesis: %w", err)
	}
	return doc, e, nil
}

// InitFromGenesisOptions configure InitFromGenesis.
type InitFromGenesisOptions struct {
	Home      string
	Genesis   string // the genesis file to start from (`kiln export`'s)
	Moniker   string
	BlockTime time.Duration
	// PrivValidatorKey is the validator's priv_validator_key.json to sign with (its
	// key in the exported validator set); empty generates a new key (a full node).
	PrivValidatorKey string
}

// InitFromGenesis writes a home for a node of the chain that genesis starts: CometBFT
// config, that genesis, a node key, and the validator key given (with a fresh sign
// state: the new chain's heights are the new chain's). It refuses a home that already
// holds a genesis, and a genesis CometBFT would not start from.
func InitFromGenesis(o InitFromGenesisOptions) (InitResult, error) {
	doc, err := cmttypes.GenesisDocFromFile(o.Genesis)
	if err != nil {
		return InitResult{}, fmt.Errorf("--genesis %s: %w", o.Genesis, err)
	}
	conf, err := newHomeConfig(o.Home, o.Moniker, o.BlockTime)
	if err != nil {
		return InitResult{}, err
	}
	pv, nk, err := writeNodeKeys(conf)
	if err != nil {
		return InitResult{}, err
	}
	if o.PrivValidatorKey != "" {
		b, err := os.ReadFile(o.PrivValidatorKey)
		if err != nil {
			return InitResult{}, fmt.Errorf("--priv-validator-key: %w", err)
		}
		var key privval.FilePVKey
		if err := cmtjson.Unmarshal(b, &key); err != nil || key.PrivKey == nil {
			return InitResult{}, fmt.Errorf("--priv-validator-key %s: not a CometBFT priv_validator_key.json (%v)", o.PrivValidatorKey, err)
		}
		pv = privval.NewFilePV(key.PrivKey, conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
		pv.Save()
	}
	if err := doc.SaveAs(conf.GenesisFile()); err != nil {
		return InitResult{}, err
	}
	cfg.WriteConfigFile(filepath.Join(o.Home, "config", "config.toml"), conf)
	if err := WriteAppConfig(o.Home, DefaultAppConfig()); err != nil {
		return InitResult{}, err
	}
	return InitResult{ChainID: doc.ChainID, NodeID: string(nk.ID()), ValidatorAddress: pv.Key.Address.String()}, nil
}
