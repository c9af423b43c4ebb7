package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/auth"
	"github.com/kiln-network/kiln/x/bank"
	"github.com/kiln-network/kiln/x/escrow"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/params"
	"github.com/kiln-network/kiln/x/registry"
	"github.com/kiln-network/kiln/x/staking"
)

// GenesisParams holds every module's parameters.
type GenesisParams struct {
	Auth     auth.Params     `json:"auth"`
	Bank     bank.Params     `json:"bank"`
	Staking  staking.Params  `json:"staking"`
	Registry registry.Params `json:"registry"`
	Market   market.Params   `json:"market"`
	Escrow   escrow.Params   `json:"escrow"`
}

// GenesisState is the app_state of genesis.json.
type GenesisState struct {
	Params  GenesisParams   `json:"params"`
	Bank    bank.Genesis    `json:"bank"`
	Staking staking.Genesis `json:"staking"`
}

// DefaultGenesis returns a genesis with default parameters and no accounts.
func DefaultGenesis() GenesisState {
	return GenesisState{Params: GenesisParams{
		Auth: auth.DefaultParams(), Bank: bank.DefaultParams(),
		Staking: staking.DefaultParams(), Registry: registry.DefaultParams(),
		Market: market.DefaultParams(), Escrow: escrow.DefaultParams(),
	}}
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
	// NB: genesis files written before the market existed have no market or escrow
	// params; they get the defaults rather than failing validation. Presence, not a
	// zero value, decides: protocol_fee_bps 0 is a valid choice.
	var present struct {
		Params map[string]json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(b, &present)
	if _, ok := present.Params[market.ModuleName]; !ok {
		g.Params.Market = market.DefaultParams()
	}
	if _, ok := present.Params[escrow.ModuleName]; !ok {
		g.Params.Escrow = escrow.DefaultParams()
	}
	return g, nil
}

// initGenesis writes the genesis state and returns the initial validator set.
func initGenesis(ctx *types.Context, g GenesisState) ([]staking.Update, error) {
	// NB: in module-name order, so that of several invalid parameter sets the same one
	// is reported on every node and every run.
	mods := []struct {
		name string
		p    params.Validator
	}{
		{auth.ModuleName, g.Params.Auth}, {bank.ModuleName, g.Params.Bank},
		{staking.ModuleName, g.Params.Staking}, {registry.ModuleName, g.Params.Registry},
		{market.ModuleName, g.Params.Market}, {escrow.ModuleName, g.Params.Escrow},
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].name < mods[j].name })
	for _, m := range mods {
		if err := params.Set(ctx, m.name, m.p); err != nil {
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
