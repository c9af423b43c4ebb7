package testnet

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cometbft/cometbft/consensus"
	"github.com/cometbft/cometbft/crypto/tmhash"
	"github.com/cometbft/cometbft/evidence"
	"github.com/cometbft/cometbft/privval"
	cmtcons "github.com/cometbft/cometbft/proto/tendermint/consensus"
	cmtproto "github.com/cometbft/cometbft/proto/tendermint/types"
	cmttypes "github.com/cometbft/cometbft/types"
)

const walChainID = "kiln-wal-test"

// signedVote is a precommit at height 5, round 0 for block (nil: for nil), signed by pv.
func signedVote(t *testing.T, pv *privval.FilePV, idx int32, block []byte) *cmttypes.Vote {
	t.Helper()
	v := &cmttypes.Vote{Type: cmtproto.PrecommitType, Height: 5, Round: 0, Timestamp: time.Unix(1700000000, 0).UTC(),
		ValidatorAddress: pv.Key.Address, ValidatorIndex: idx}
	if block != nil {
		v.BlockID = cmttypes.BlockID{Hash: tmhash.Sum(block), PartSetHeader: cmttypes.PartSetHeader{Total: 1, Hash: tmhash.Sum(append(block, 'p'))}}
	}
	p := v.ToProto()
	if err := pv.SignVote(walChainID, p); err != nil {
		t.Fatalf("sign %v: %v", v, err)
	}
	v.Signature, v.Timestamp = p.Signature, p.Timestamp
	return v
}

// walRecord frames a vote as CometBFT's WAL does: CRC-32C and length, big-endian,
// then the TimedWALMessage.
func walRecord(t *testing.T, v *cmttypes.Vote) []byte {
	t.Helper()
	m := cmtcons.TimedWALMessage{Time: time.Unix(1700000000, 0).UTC(), Msg: &cmtcons.WALMessage{Sum: &cmtcons.WALMessage_MsgInfo{MsgInfo: &cmtcons.MsgInfo{
		Msg: cmtcons.Message{Sum: &cmtcons.Message_Vote{Vote: &cmtcons.Vote{Vote: v.ToProto()}}}}}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := binary.BigEndian.AppendUint32(nil, crc32.Checksum(data, castagnoli))
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	return append(out, data...)
}

func writeWAL(t *testing.T, recs ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wal")
	var b []byte
	for _, r := range recs {
		b = append(b, r...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Two instances with one key (each its own sign state, as the twin has) sign a nil
// and a block precommit at one height and round; the WAL reader finds the pair, and
// CometBFT's own evidence verification accepts the evidence made of it.
func TestFindDoubleSign(t *testing.T) {
	dir := t.TempDir()
	real := privval.GenFilePV(filepath.Join(dir, "key.json"), filepath.Join(dir, "state.json"))
	twin := privval.NewFilePV(real.Key.PrivKey, filepath.Join(dir, "key2.json"), filepath.Join(dir, "state2.json"))
	other := privval.GenFilePV(filepath.Join(dir, "okey.json"), filepath.Join(dir, "ostate.json"))
	vals := cmttypes.NewValidatorSet([]*cmttypes.Validator{cmttypes.NewValidator(real.Key.PubKey, 10), cmttypes.NewValidator(other.Key.PubKey, 10)})
	idx, _ := vals.GetByAddress(real.Key.Address)
	oidx, _ := vals.GetByAddress(other.Key.Address)

	forBlock := signedVote(t, real, idx, []byte("block"))
	forNil := signedVote(t, twin, idx, nil)
	if _, err := consensus.NewWALDecoder(writeWALReader(t, walRecord(t, forBlock))).Decode(); err != nil {
		t.Fatalf("CometBFT's WAL decoder refuses the test's framing: %v", err)
	}

	otherVote := signedVote(t, other, oidx, []byte("block"))
	sameAgain := signedVote(t, privval.NewFilePV(real.Key.PrivKey, filepath.Join(dir, "k3.json"), filepath.Join(dir, "s3.json")), idx, []byte("block"))
	full := walRecord(t, forNil)

	for _, tc := range []struct {
		name string
		recs [][]byte
		want bool
	}{
		{"votes for two blocks", [][]byte{walRecord(t, otherVote), walRecord(t, forBlock), walRecord(t, forNil)}, true},
		{"two votes for one block are not evidence", [][]byte{walRecord(t, forBlock), walRecord(t, sameAgain), walRecord(t, otherVote)}, false},
		{"the second vote still being written", [][]byte{walRecord(t, forBlock), full[:len(full)-3]}, false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, ok, err := findDoubleSign(writeWAL(t, tc.recs...), real.Key.Address)
			if err != nil || ok != tc.want {
				t.Fatalf("findDoubleSign = %v, %v; want %v", ok, err, tc.want)
			}
			if !ok {
				return
			}
			ev, err := cmttypes.NewDuplicateVoteEvidence(a, b, time.Unix(1700000000, 0), vals)
			if err != nil {
				t.Fatal(err)
			}
			if err := evidence.VerifyDuplicateVote(ev, walChainID, vals); err != nil {
				t.Fatalf("CometBFT refuses the evidence: %v", err)
			}
			if err := evidence.VerifyDuplicateVote(ev, "another-chain", vals); err == nil {
				t.Fatal("the evidence verifies for another chain too")
			}
		})
	}
	if _, _, _, err := findDoubleSign(writeWAL(t, []byte{0, 0, 0, 0, 0x7f, 0, 0, 0}), real.Key.Address); err == nil {
		t.Fatal("a record of 2 GiB is read as a WAL")
	}
}

func writeWALReader(t *testing.T, rec []byte) io.Reader {
	t.Helper()
	f, err := os.Open(writeWAL(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
