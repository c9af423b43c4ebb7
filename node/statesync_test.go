package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/internal/poll"
	"github.com/kiln-network/kiln/keyring"
	"github.com/kiln-network/kiln/ports"
)

// A node that joins late through CometBFT's state sync restores the validator's
// snapshot instead of replaying the chain: it starts at the snapshot's height (its
// block store holds nothing below it), reaches the validator's app hash, and follows
// the chain from there.
func TestLateNodeJoinsThroughStateSync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two real nodes and waits for CometBFT's 5 s snapshot discovery")
	}
	home := TempHome(t)
	if _, err := Init(InitOptions{Home: home, ChainID: "kiln-statesync", BlockTime: 100 * time.Millisecond, KeyringBackend: keyring.BackendTest}); err != nil {
		t.Fatal(err)
	}
	conf, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ports.Pick("127.0.0.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	conf.RPC.ListenAddress = AnyLoopbackPort
	conf.P2P.ListenAddress = fmt.Sprintf("tcp://127.0.0.1:%d", p[0])
	// NB: with 100 ms blocks, keep enough snapshots that the one offered is still
	// there after the joiner's 5 s of discovery.
	val, err := Start(conf, Options{StateSync: StateSyncConfig{SnapshotInterval: 10, SnapshotKeepRecent: 50}})
	if err != nil {
		t.Fatal(err)
	}
	defer val.Stop()
	vc, err := client.New(val.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	// 60 s: node start-up, 30 blocks of 100 ms, 5 s of discovery, on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := vc.WaitHeight(ctx, 25); err != nil {
		t.Fatal(err)
	}
	trustHeight := int64(2)
	meta := val.CometBFT().BlockStore().LoadBlockMeta(trustHeight)
	if meta == nil {
		t.Fatal("validator has no block 2")
	}

	// The joiner: its own keys, the validator's genesis, state sync on.
	jhome := TempHome(t)
	if _, err := Init(InitOptions{Home: jhome, ChainID: "kiln-statesync", KeyringBackend: keyring.BackendTest}); err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(conf.GenesisFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jhome, "config", "genesis.json"), gen, 0o644); err != nil {
		t.Fatal(err)
	}
	jconf, err := LoadConfig(jhome)
	if err != nil {
		t.Fatal(err)
	}
	UseFreePorts(jconf)
	rpc := "http" + val.RPCAddr()[len("tcp"):]
	jconf.P2P.PersistentPeers = fmt.Sprintf("%s@127.0.0.1:%d", val.CometBFT().NodeInfo().ID(), p[0])
	jconf.StateSync.Enable = true
	jconf.StateSync.RPCServers = []string{rpc, rpc}
	jconf.StateSync.TrustHeight = trustHeight
	jconf.StateSync.TrustHash = fmt.Sprintf("%X", meta.BlockID.Hash)
	jconf.StateSync.TrustPeriod = time.Hour
	jconf.StateSync.DiscoveryTime = 5 * time.Second
	start := time.Now()
	joiner, err := Start(jconf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer joiner.Stop()
	jc, err := client.New(joiner.RPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	var joinedAt int64
	poll.WaitFor(t, 60*time.Second, func() error {
		joinedAt = joiner.CometBFT().BlockStore().Base()
		if joiner.App.Height() < 20 || joinedAt == 0 {
			return fmt.Errorf("joiner at app height %d, block store base %d", joiner.App.Height(), joinedAt)
		}
		return nil
	})
	t.Logf("joined through state sync at height %d in %v", joinedAt, time.Since(start).Round(time.Millisecond))
	if joinedAt <= 10 {
		t.Fatalf("joiner's block store starts at %d: it replayed blocks instead of restoring a snapshot", joinedAt)
	}
	// It follows the chain: at a common height both report the same app hash.
	target := joiner.App.Height() + 3
	if err := jc.WaitHeight(ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := vc.WaitHeight(ctx, target); err != nil {
		t.Fatal(err)
	}
	vm := val.CometBFT().BlockStore().LoadBlockMeta(target)
	jm := joiner.CometBFT().BlockStore().LoadBlockMeta(target)
	if vm == nil || jm == nil || !bytes.Equal(vm.Header.AppHash, jm.Header.AppHash) || !bytes.Equal(vm.BlockID.Hash, jm.BlockID.Hash) {
		t.Fatalf("at height %d the joiner and the validator disagree", target)
	}
}
