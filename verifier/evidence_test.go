package verifier

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/x/verify"
)

// A report carries a unit's data only where the chain checks the kind itself and the
// data fits a transaction; otherwise its hash, so a report of any size can be sent.
func TestEvidenceCarriesDataOnlyForDirectKinds(t *testing.T) {
	p := proof.Proof{Index: 1, Total: 4}
	for _, tt := range []struct {
		kind     string
		size     int
		wantData bool
	}{
		{matmul.Kind, 4 << 10, true},
		{matmul.Kind, verify.MaxUnitBytes, true},
		{matmul.Kind, verify.MaxUnitBytes + 1, false},
		{render.Kind, 300, false},
		{train.Kind, 77 << 10, false},
	} {
		data := bytes.Repeat([]byte{7}, tt.size)
		e := evidence(tt.kind, api.UnitProof{Unit: "u1", Data: data, Proof: p})
		want := sha256.Sum256(data)
		if e.Name != "u1" || e.Proof.Index != 1 || e.Hash() != want || (len(e.Data) > 0) != tt.wantData || e.HashOnly() == tt.wantData {
			t.Errorf("evidence(%s, %d bytes) = data %d bytes, sha256 %x; want data carried: %v", tt.kind, tt.size, len(e.Data), e.SHA256, tt.wantData)
		}
		if err := (&verify.MsgVerdict{CommitID: 1, Evidence: e}).ValidateBasic(); err != nil {
			t.Errorf("evidence(%s, %d bytes): %v", tt.kind, tt.size, err)
		}
	}
}
