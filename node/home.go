package node

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	cmttypes "github.com/cometbft/cometbft/types"
	"github.com/spf13/viper"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/staking"
)

// DefaultBlockTime is the default timeout_commit: a block about every second.
const DefaultBlockTime = time.Second

// DevKeyName is the funded account `kiln init` creates.
const DevKeyName = "dev"

// Genesis amounts for `kiln init`: the dev account gets 1,000,000 KILN, and bonds
// 10,000 KILN of it to the validator.
const (
	DevFunds       uint64 = 1_000_000_000_000
	ValidatorStake uint64 = 10_000_000_000
)

var chainIDRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,48}$`)

// InitOptions configure `kiln init`.
type InitOptions struct {
	Home           string
	ChainID        string
	Moniker        string
	BlockTime      time.Duration
	KeyringBackend string
	Passphrase     func() (string, error)
	// Accounts funded at genesis beside the dev key.
	Accounts []bank.GenesisBalance
	// Mnemonic of the dev key; empty generates one.
	Mnemonic string
	// Challenges turns liveness and hardware challenges on in the genesis, with the
	// liveness module's default parameters (they are off in app.DefaultGenesis).
	Challenges bool
}

// InitResult is what `kiln init` reports.
type InitResult struct {
	ChainID          string        `json:"chain_id"`
	NodeID           string        `json:"node_id"`
	DevAddress       types.Address `json:"dev_address"`
	DevMnemonic      string        `json:"dev_mnemonic"`
	ValidatorAddress string        `json:"validator_address"`
}

// Init writes a single-validator home: CometBFT config, genesis with the app state,
// validator and node keys, and a funded `dev` account key. It refuses a home that
// already holds a genesis, so nothing existing is overwritten.
func Init(o InitOptions) (InitResult, error) {
	if !chainIDRe.MatchString(o.ChainID) {
		return InitResult{}, fmt.Errorf("chain-id %q: must be 1-49 of [a-zA-Z0-9._-], starting with a letter or digit", o.ChainID)
	}
	conf, err := newHomeConfig(o.Home, o.Moniker, o.BlockTime)
	if err != nil {
		return InitResult{}, err
	}
	kr, err := keyring.Open(o.Home, o.KeyringBackend, o.Passphrase)
	if err != nil {
		return InitResult{}, err
	}
	var dev keyring.Info
	mnemonic := o.Mnemonic
	if mnemonic == "" {
		dev, mnemonic, err = kr.Add(DevKeyName)
	} else {
		dev, err = kr.Import(DevKeyName, mnemonic)
	}
	if err != nil {
		return InitResult{}, fmt.Errorf("create dev key: %w", err)
	}
	pv, nodeKey, err := writeNodeKeys(conf)
	if err != nil {
		return InitResult{}, err
	}
	g := app.DefaultGenesis()
	g.Bank.Balances = append([]bank.GenesisBalance{{Address: dev.Address, Coins: types.Coins{types.NewCoin(types.NativeDenom, DevFunds)}}}, o.Accounts...)
	g.Staking.Validators = []staking.GenesisValidator{{Operator: dev.Address, ConsPubKey: pv.Key.PubKey.Bytes(), Moniker: o.Moniker, Tokens: ValidatorStake}}
	if o.Challenges {
		g.Params.Liveness = liveness.DefaultParams()
	}
	if err := WriteGenesis(conf.GenesisFile(), o.ChainID, g, []cmttypes.PrivValidator{pv}); err != nil {
		return InitResult{}, err
	}
	cfg.WriteConfigFile(filepath.Join(o.Home, "config", "config.toml"), conf)
	if err := WriteAppConfig(o.Home, DefaultAppConfig()); err != nil {
		return InitResult{}, err
	}
	return InitResult{ChainID: o.ChainID, NodeID: string(nodeKey.ID()), DevAddress: dev.Address, DevMnemonic: mnemonic,
		ValidatorAddress: pv.Key.Address.String()}, nil
}

// newHomeConfig is the config of a new home (moniker "kiln-node" and DefaultBlockTime
// when not given); it refuses a home that already holds a genesis.
func newHomeConfig(home, moniker string, blockTime time.Duration) (*cfg.Config, error) {
	if blockTime <= 0 {
		blockTime = DefaultBlockTime
	}
	if moniker == "" {
		moniker = "kiln-node"
	}
	conf := DefaultConfig(home, moniker, blockTime)
	if _, err := os.Stat(conf.GenesisFile()); err == nil {
		return nil, fmt.Errorf("%s already exists: %s is initialized (remove it to start over)", conf.GenesisFile(), home)
	}
	return conf, nil
}

// DefaultConfig returns the CometBFT config Kiln writes for a new home.
func DefaultConfig(home, moniker string, blockTime time.Duration) *cfg.Config {
	conf := cfg.DefaultConfig()
	conf.SetRoot(home)
	conf.Moniker = moniker
	conf.Consensus.TimeoutCommit = blockTime
	conf.P2P.AddrBookStrict = false // loopback peers are normal for localnets
	conf.P2P.AllowDuplicateIP = true
	conf.RPC.ListenAddress = "tcp://127.0.0.1:26657"
	conf.P2P.ListenAddress = "tcp://127.0.0.1:26656"
	conf.Instrumentation.Prometheus = false
	return conf
}

func writeNodeKeys(conf *cfg.Config) (*privval.FilePV, *p2p.NodeKey, error) {
	cfg.EnsureRoot(conf.RootDir)
	pv := privval.GenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	pv.Save()
	nk, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	return pv, nk, nil
}

// WriteGenesis writes genesis.json with the app state and the validators' keys.
func WriteGenesis(path, chainID string, g app.GenesisState, vals []cmttypes.PrivValidator) error {
	appState, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	doc := &cmttypes.GenesisDoc{
		ChainID:         chainID,
		GenesisTime:     time.Now().UTC().Truncate(time.Second),
		ConsensusParams: cmttypes.DefaultConsensusParams(),
		AppState:        appState,
		InitialHeight:   1,
	}
	for i, v := range vals {
		pub, err := v.GetPubKey()
		if err != nil {
			return err
		}
		doc.Validators = append(doc.Validators, cmttypes.GenesisValidator{
			Address: pub.Address(), PubKey: pub, Power: int64(g.Staking.Validators[i].Tokens / g.Params.Staking.PowerReduction),
			Name: g.Staking.Validators[i].Moniker,
		})
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	return doc.SaveAs(path)
}

// LoadConfig reads HOME/config/config.toml, as CometBFT does.
func LoadConfig(home string) (*cfg.Config, error) {
	path := filepath.Join(home, "config", "config.toml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: run `kiln init --home %s` first", path, home)
	}
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	conf := cfg.DefaultConfig()
	if err := v.Unmarshal(conf); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	conf.SetRoot(home)
	if err := conf.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return conf, nil
}

// ConsPubKey returns the validator public key stored in home.
func ConsPubKey(conf *cfg.Config) (ed25519.PublicKey, error) {
	pv := privval.LoadFilePVEmptyState(conf.PrivValidatorKeyFile(), "")
	return ed25519.PublicKey(pv.Key.PubKey.Bytes()), nil
}
