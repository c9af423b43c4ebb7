package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/infer"
	"github.com/kiln-network/kiln/x/liveness"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
	xtee "github.com/kiln-network/kiln/x/tee"
	"github.com/kiln-network/kiln/x/verify"
)

// GenesisParams holds every module's parameters.
type GenesisParams struct {
	Auth     auth.Params     `json:"auth"`
	Bank     bank.Params     `json:"bank"`
	Staking  staking.Params  `json:"staking"`
	Registry registry.Params `json:"registry"`
	Market   market.Params   `json:"market"`
	Escrow   escrow.Params   `json:"escrow"`
	Liveness liveness.Params `json:"liveness"`
	TEE      xtee.Params     `json:"tee"`
	Infer    infer.Params    `json:"infer"`
	Verify   verify.Params   `json:"verify"`
}

// GenesisState is the app_state of genesis.json: either a new chain's parameters,
// balances and validators, or (Exported) the whole state of a chain it continues.
type GenesisState struct {
	Params  GenesisParams   `json:"params"`
	Bank    bank.Genesis    `json:"bank"`
	Staking staking.Genesis `json:"staking"`
	// Exported is a chain's whole state (`kiln export`); nothing else may be set
	// beside it.
	Exported *ExportedState `json:"exported,omitempty"`
}

// DefaultGenesis returns a genesis with every module's default parameters and no
// accounts.
func DefaultGenesis() GenesisState {
	var g GenesisState
	for _, m := range ledgerTable.modules {
		if m.DefaultParams != nil {
			m.DefaultParams(&g.Params)
		}
	}
	return g
}

// ParseGenesis decodes app_state strictly: unknown fields are an error, so a typo in a
// parameter name does not silently become its default.
func ParseGenesis(b []byte) (GenesisState, error) {
	var g GenesisState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return g, fmt.Errorf("genesis app_state: %w", err)
	}
	// NB: a genesis file written before a module existed has no params for it; they
	// get the defaults rather than failing validation. Presence, not a zero value,
	// decides: protocol_fee_bps 0 is a valid choice.
	var present struct {
		Params map[string]json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(b, &present)
	if g.Exported != nil {
		var top map[string]json.RawMessage
		_ = json.Unmarshal(b, &top)
		for _, k := range slices.Sorted(maps.Keys(top)) {
			if k != "exported" {
				return g, fmt.Errorf("genesis app_state: %q beside \"exported\": an exported state carries every module's state, parameters included", k)
			}
		}
		return g, nil
	}
	for _, m := range ledgerTable.modules {
		if _, ok := present.Params[m.Name]; !ok && m.DefaultParams != nil {
			m.DefaultParams(&g.Params)
		}
	}
	return g, nil
}

// initGenesis writes the genesis state and returns the initial validator set.
func (l *ledger) initGenesis(ctx *types.Context, g GenesisState) ([]staking.Update, error) {
	// NB: in module-name order, so that of several invalid parameter sets the same one
	// is reported on every node and every run.
	mods := slices.Clone(l.modules)
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	for _, m := range mods {
		if m.Params == nil {
			continue
		}
		if err := params.Set(ctx, m.Name, m.Params(&g.Params)); err != nil {
			return nil, fmt.Errorf("genesis params: %w", err)
		}
	}
	if err := bank.InitGenesis(ctx, g.Bank); err != nil {
		return nil, err
	}
	for _, b := range g.Bank.Balances {
		auth.Ensure(ctx, b.Address)
	}
	return staking.InitGenesis(ctx, g.Staking)
}
