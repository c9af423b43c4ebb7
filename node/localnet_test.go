package node

import (
	"bytes"
	"os"
	"testing"
)

// Every validator of a localnet gets the very same genesis (its time included): nodes
// whose genesis times differ never agree on block 1.
func TestInitLocalnetOneGenesis(t *testing.T) {
	dir := t.TempDir()
	ln, err := InitLocalnet(LocalnetOptions{Dir: dir, Validators: 8, ChainID: "kiln-one-genesis"})
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for _, nd := range ln.Nodes {
		conf, err := LoadConfig(nd.Home)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(conf.GenesisFile())
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("%s's genesis differs from node0's", nd.Name)
		}
	}
}
