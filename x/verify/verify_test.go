package verify

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/proof"
	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/types"
)

func randCtx(seed byte) *types.Context {
	return &types.Context{Store: store.NewMem(), Height: 1, BlockRand: types.BlockRand{seed, 1}}
}

// SampleUnits draws min(s, units) distinct, sorted, in-range indexes, the same on
// every node for the same stream, and each unit about equally often.
func TestSampleUnits(t *testing.T) {
	for _, tt := range []struct{ units, s uint32 }{{1, 44}, {10, 44}, {44, 44}, {100, 44}, {1000, 3}, {1 << 20, 256}} {
		got := SampleUnits(randCtx(1).Rand("t"), tt.units, tt.s)
		again := SampleUnits(randCtx(1).Rand("t"), tt.units, tt.s)
		if len(got) != int(min(tt.units, tt.s)) || !equal(got, again) {
			t.Fatalf("SampleUnits(%d, %d) = %d indexes (again: %v), want %d, deterministic", tt.units, tt.s, len(got), equal(got, again), min(tt.units, tt.s))
		}
		for i, u := range got {
			if u >= tt.units || (i > 0 && got[i-1] >= u) {
				t.Fatalf("SampleUnits(%d, %d) = %v: out of range, unsorted or repeated at %d", tt.units, tt.s, got, i)
			}
		}
	}
	// Uniform: over 4000 draws of 5 of 20 units, each unit is picked ~1000 times.
	counts := make([]int, 20)
	for i := 0; i < 4000; i++ {
		ctx := randCtx(byte(i))
		ctx.BlockRand[2], ctx.BlockRand[3] = byte(i>>8), 7
		for _, u := range SampleUnits(ctx.Rand("t"), 20, 5) {
			counts[u]++
		}
	}
	for u, c := range counts {
		if c < 850 || c > 1150 { // NB: ±15% of 1000, over 4 standard deviations (σ ≈ 27)
			t.Fatalf("unit %d picked %d times of 4000 draws of 5/20, want ~1000: %v", u, c, counts)
		}
	}
}

func equal(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParamsValidate(t *testing.T) {
	ok := DefaultParams()
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultParams().Validate() = %v", err)
	}
	for _, tt := range []struct {
		edit func(*Params)
		want string
	}{
		{func(p *Params) { p.SampleCount = 0 }, "sample_count"},
		{func(p *Params) { p.SampleDelayBlocks = 0 }, "sample_delay_blocks"},
		{func(p *Params) { p.CommitteeSize = 4 }, "committee_size: must be odd"},
		{func(p *Params) { p.FraudSlashBps = 10001 }, "fraud_slash_bps"},
		{func(p *Params) { p.WhistleblowerBps = 10001 }, "whistleblower_bps"},
		{func(p *Params) { p.FalseReportSlashBps = 10001 }, "false_report_slash_bps"},
		{func(p *Params) { p.SilentSlashBps = 10001 }, "silent_slash_bps"},
		{func(p *Params) { p.VerdictBlocks = 0 }, "verdict_blocks"},
		{func(p *Params) { p.VoteBlocks = 0 }, "vote_blocks"},
		{func(p *Params) { p.MaxDirectN = 5000 }, "max_direct_n"},
		{func(p *Params) { p.Denom = "x" }, "denom"},
	} {
		p := DefaultParams()
		tt.edit(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", p, err, tt.want)
		}
	}
}

func goodEvidence() *Evidence {
	items := []proof.Item{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	p, _ := proof.ProveItem(items, "b")
	return &Evidence{Name: "b", Data: []byte("data"), Proof: p}
}

// hashEvidence is goodEvidence reported by its hash, as for a unit a committee judges.
func hashEvidence() *Evidence {
	e := goodEvidence()
	h := e.Hash()
	e.Data, e.SHA256 = nil, h[:]
	return e
}

// ValidateBasic names the field and the rule of every refusal.
func TestValidateBasic(t *testing.T) {
	root := make([]byte, 32)
	bad := goodEvidence()
	bad.Proof.Aunts[0] = []byte{1}
	for _, tt := range []struct {
		m    types.Msg
		want string // "" valid
	}{
		{&MsgRegisterVerifier{Stake: types.NewCoin("ukiln", 1)}, ""},
		{&MsgRegisterVerifier{Stake: types.NewCoin("ukiln", 0)}, "stake"},
		{&MsgUnbondVerifier{Amount: 0}, "amount"},
		{&MsgCommit{LeaseID: 1, Kind: "render", Root: root, Units: 4}, ""},
		{&MsgCommit{LeaseID: 0, Kind: "render", Root: root, Units: 4}, "lease_id"},
		{&MsgCommit{LeaseID: 1, Kind: "Render!", Root: root, Units: 4}, "kind"},
		{&MsgCommit{LeaseID: 1, Kind: "render", Root: root[:31], Units: 4}, "root"},
		{&MsgCommit{LeaseID: 1, Kind: "render", Root: root, Units: 0}, "units"},
		{&MsgCommit{LeaseID: 1, Kind: "render", Root: root, Units: 4, Job: make([]byte, MaxJobBytes+1)}, "job"},
		{&MsgVerdict{CommitID: 1, OK: true}, ""},
		{&MsgVerdict{CommitID: 0, OK: true}, "commit_id"},
		{&MsgVerdict{CommitID: 1, OK: true, Evidence: goodEvidence()}, "evidence: must be empty when ok"},
		{&MsgVerdict{CommitID: 1, Evidence: goodEvidence()}, ""},
		{&MsgVerdict{CommitID: 1, Evidence: bad}, "evidence.proof.aunts[0]"},
		{&MsgVerdict{CommitID: 1, Evidence: hashEvidence()}, ""},
		{&MsgVerdict{CommitID: 1, Evidence: &Evidence{Name: "b", SHA256: make([]byte, 31), Proof: goodEvidence().Proof}}, "evidence.sha256"},
		{&MsgVerdict{CommitID: 1, Evidence: &Evidence{Name: "b", Data: []byte("d"), SHA256: make([]byte, 32), Proof: goodEvidence().Proof}}, "not both"},
		{&MsgVerdict{CommitID: 1, Evidence: &Evidence{Name: "b", Data: make([]byte, MaxUnitBytes+1), Proof: goodEvidence().Proof}}, "carry the unit's sha256 instead"},
		{&MsgDispute{CommitID: 1, Evidence: &Evidence{Name: "", Proof: goodEvidence().Proof}}, "evidence.name"},
		{&MsgDispute{CommitID: 1, Evidence: &Evidence{Name: "x", Proof: proof.Proof{Index: 3, Total: 3}}}, "evidence.proof"},
		{&MsgVote{ChallengeID: 0}, "challenge_id"},
		{&MsgVote{ChallengeID: 1}, ""},
		{&MsgVote{ChallengeID: 1, Unavailable: true}, ""},
		{&MsgVote{ChallengeID: 1, Fraud: true, Unavailable: true}, "unavailable"},
		{&MsgUnavailable{CommitID: 1, Unit: 3}, ""},
		{&MsgUnavailable{CommitID: 0}, "commit_id"},
		{&MsgUnavailable{CommitID: 1, Input: "ckpt-000020"}, ""},
		{&MsgUnavailable{CommitID: 1, Input: "ckpt-000020", Asset: "scene.blend"}, "asset"},
		{&MsgUnavailable{CommitID: 1, Asset: strings.Repeat("a", MaxUnitName+1)}, "asset"},
	} {
		err := tt.m.ValidateBasic()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%T%+v.ValidateBasic() = %v, want %q", tt.m, tt.m, err, tt.want)
		}
	}
}

// fuzzDecoder checks that decode never panics, and that whatever it accepts whole
// re-encodes to the very same bytes (one encoding per message: signatures cover it).
func fuzzDecoder(f *testing.F, decode func(*codec.Reader) types.Msg, seeds ...types.Msg) {
	for _, m := range seeds {
		w := codec.NewWriter(64)
		m.MarshalTo(w)
		f.Add(w.Bytes())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := codec.NewReader(b)
		m := decode(r)
		if r.Done() != nil {
			return
		}
		w := codec.NewWriter(len(b))
		m.MarshalTo(w)
		if !bytes.Equal(w.Bytes(), b) {
			t.Fatalf("re-encoding %x gave %x", b, w.Bytes())
		}
		_ = m.ValidateBasic()
	})
}

func FuzzDecodeRegisterVerifier(f *testing.F) {
	fuzzDecoder(f, DecodeRegisterVerifier, &MsgRegisterVerifier{Verifier: types.Address{1}, Stake: types.NewCoin("ukiln", 5)})
}

func FuzzDecodeUnbondVerifier(f *testing.F) {
	fuzzDecoder(f, DecodeUnbondVerifier, &MsgUnbondVerifier{Verifier: types.Address{1}, Amount: 5})
}

func FuzzDecodeCommit(f *testing.F) {
	fuzzDecoder(f, DecodeCommit, &MsgCommit{Provider: types.Address{1}, LeaseID: 3, Checkpoint: 2, Kind: "train",
		Root: bytes.Repeat([]byte{7}, 32), Units: 9, Job: []byte(`{"kind":"train"}`)})
}

func FuzzDecodeVerdict(f *testing.F) {
	fuzzDecoder(f, DecodeVerdict, &MsgVerdict{Verifier: types.Address{1}, CommitID: 3, OK: true},
		&MsgVerdict{Verifier: types.Address{1}, CommitID: 3, Unit: 1, Evidence: goodEvidence()},
		&MsgVerdict{Verifier: types.Address{1}, CommitID: 3, Unit: 1, Evidence: hashEvidence()})
}

func FuzzDecodeDispute(f *testing.F) {
	fuzzDecoder(f, DecodeDispute, &MsgDispute{Tenant: types.Address{1}, CommitID: 3, Unit: 1, Evidence: goodEvidence()},
		&MsgDispute{Tenant: types.Address{1}, CommitID: 3, Unit: 1, Evidence: hashEvidence()},
		&MsgDispute{Tenant: types.Address{1}, CommitID: 3})
}

func FuzzDecodeVote(f *testing.F) {
	fuzzDecoder(f, DecodeVote, &MsgVote{Verifier: types.Address{1}, ChallengeID: 3, Fraud: true},
		&MsgVote{Verifier: types.Address{1}, ChallengeID: 3, Unavailable: true})
}

func FuzzDecodeUnavailable(f *testing.F) {
	fuzzDecoder(f, DecodeUnavailable, &MsgUnavailable{Verifier: types.Address{1}, CommitID: 3, Unit: 2, Input: "ckpt-000020"},
		&MsgUnavailable{Verifier: types.Address{1}, CommitID: 3, Asset: "scene.blend"})
}
