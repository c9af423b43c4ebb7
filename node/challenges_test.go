package node

import (
	"path/filepath"
	"testing"

	cmttypes "github.com/cometbft/cometbft/types"

	"github.com/kiln-network/kiln/app"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/x/liveness"
)

// Init writes challenges off by default and, with Challenges, the liveness module's
// defaults.
func TestInitChallenges(t *testing.T) {
	for _, on := range []bool{false, true} {
		home := TempHome(t)
		if _, err := Init(InitOptions{Home: home, ChainID: "kiln-x", KeyringBackend: keyring.BackendTest, Challenges: on}); err != nil {
			t.Fatal(err)
		}
		doc, err := cmttypes.GenesisDocFromFile(filepath.Join(home, "config", "genesis.json"))
		if err != nil {
			t.Fatal(err)
		}
		g, err := app.ParseGenesis(doc.AppState)
		if err != nil {
			t.Fatal(err)
		}
		want := liveness.DefaultParams()
		if !on {
			want = want.Off()
		}
		got := g.Params.Liveness
		if got.LeaseChallengeBlocks != want.LeaseChallengeBlocks || got.HardwareAtRegistration != want.HardwareAtRegistration ||
			got.HardwareRecheckBlocks != want.HardwareRecheckBlocks || got.MaxN != want.MaxN {
			t.Errorf("Init(Challenges: %v): liveness params %+v, want %+v", on, got, want)
		}
	}
}
