package liveness

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/codec"
	"github.com/kiln-network/kiln/store"
	"github.com/kiln-network/kiln/tx"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/x/params"
)

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("DefaultParams: %v", err)
	}
	if err := DefaultParams().Off().Validate(); err != nil {
		t.Fatalf("Off: %v", err)
	}
	tests := []struct {
		field string
		edit  func(*Params)
	}{
		{"deadline_blocks", func(p *Params) { p.DeadlineBlocks = 0 }},
		{"reveal_blocks", func(p *Params) { p.RevealBlocks = -1 }},
		{"lease_challenge_blocks", func(p *Params) { p.LeaseChallengeBlocks = -5 }},
		{"min_n", func(p *Params) { p.MinN = 100 }},
		{"max_n", func(p *Params) { p.MaxN = 32 }},
		{"max_n", func(p *Params) { p.MaxN = 16384 }},
		{"sample_chunks", func(p *Params) { p.SampleChunks = 33 }},
		{"entries_per_chunk", func(p *Params) { p.EntriesPerChunk = 0 }},
		{"slash_bps", func(p *Params) { p.SlashBps = 10_001 }},
		{"slow_ratio_bps", func(p *Params) { p.SlowRatioBps = 20_000 }},
		{"target_millis", func(p *Params) { p.TargetMillis = 0 }},
		{"expected_mflops.h100", func(p *Params) { p.ExpectedMFLOPS["h100"] = 0 }},
	}
	for _, tt := range tests {
		p := DefaultParams()
		tt.edit(&p)
		if err := p.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.field) {
			t.Errorf("Validate with bad %s = %v, want an error naming it", tt.field, err)
		}
	}
}

func TestSizeFor(t *testing.T) {
	p := DefaultParams()
	p.ExpectedMFLOPS = map[string]uint64{"cpu": 500, "fast": 1 << 40, "x": 1}
	p.TargetMillis = 500
	tests := []struct {
		model string
		want  uint32
	}{
		{"cpu", 448},   // 500 MFLOPS × 0.5 s = 250 MFLOP: 2·448³ = 180 MFLOP, 2·512³ = 268
		{"fast", 2048}, // capped at max_n
		{"x", 64},      // too slow for anything above min_n
		{"nope", 64},   // no figure: min_n
	}
	for _, tt := range tests {
		if got := p.SizeFor(tt.model); got != tt.want {
			t.Errorf("SizeFor(%q) = %d, want %d", tt.model, got, tt.want)
		}
	}
}

func encode(m types.Msg) []byte {
	w := codec.NewWriter(128)
	m.MarshalTo(w)
	return w.Bytes()
}

func roundTrip(t *testing.T, d tx.Decoder, b []byte) {
	r := codec.NewReader(b)
	m := d(r)
	if r.Done() != nil {
		return
	}
	if got := encode(m); !bytes.Equal(got, b) {
		t.Fatalf("re-encoding %x gave %x", b, got)
	}
	_ = m.ValidateBasic()
}

func sampleReveal() *MsgReveal {
	s, _ := matmul.Solve(64, 1)
	return &MsgReveal{Provider: types.Address{3}, Challenge: 9, Chunks: []RevealedChunk{
		{Index: 5, Entries: s.Chunk(5), Proof: s.Proof(5)}, {Index: 0, Entries: s.Chunk(0), Proof: s.Proof(0)}}}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(encode(&MsgAnswer{Provider: types.Address{1}, Challenge: 7, Root: [32]byte{9}, Millis: 250}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeAnswer, b) })
}

func FuzzDecodeReveal(f *testing.F) {
	f.Add(encode(sampleReveal()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, DecodeReveal, b) })
}

func TestMsgValidateAndDecodeBounds(t *testing.T) {
	if err := sampleReveal().ValidateBasic(); err != nil {
		t.Fatalf("sample reveal: %v", err)
	}
	short := sampleReveal()
	short.Chunks[1].Entries = short.Chunks[1].Entries[:10]
	if err := short.ValidateBasic(); err == nil || !strings.Contains(err.Error(), "chunks[1].entries") {
		t.Fatalf("short chunk: %v", err)
	}
	for _, m := range []*MsgAnswer{{Challenge: 0, Root: [32]byte{1}, Millis: 1}, {Challenge: 1, Millis: 1}, {Challenge: 1, Root: [32]byte{1}, Millis: 0}} {
		if m.ValidateBasic() == nil {
			t.Errorf("answer %+v accepted", m)
		}
	}
	// A hostile chunk count is refused before anything is allocated.
	w := codec.NewWriter(64)
	w.Fixed(make([]byte, 20))
	w.Uvarint(1)
	w.Uvarint(1 << 40)
	r := codec.NewReader(w.Bytes())
	DecodeReveal(r)
	if r.Err() == nil || !strings.Contains(r.Err().Error(), "chunks") {
		t.Fatalf("decode of 2^40 chunks: %v", r.Err())
	}
}

// BenchmarkRevealCheck measures what a reveal costs FinalizeBlock with the default
// sampling (16 chunks, 4 entries each) at n = 512 and at the default max_n 2048: the
// Merkle checks and 64 entries computed in O(n) each. Baseline in the same run: one
// ed25519 signature check, which every transaction pays.
var solved = map[int]*matmul.Solution{}

func BenchmarkRevealCheck(b *testing.B) {
	b.Run("baseline=ed25519-verify", func(b *testing.B) {
		pub, priv, _ := ed25519.GenerateKey(nil)
		msg := make([]byte, 200)
		sig := ed25519.Sign(priv, msg)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
	for _, n := range []int{512, 2048} {
		b.Run("n="+itoa(n), func(b *testing.B) {
			ctx := &types.Context{Store: store.NewMem(), Height: 10, BlockRand: types.BlockRand{1}}
			p := DefaultParams()
			if err := params.Set(ctx, ModuleName, p); err != nil {
				b.Fatal(err)
			}
			c := Challenge{ID: 1, Kind: KindHardware, Provider: types.Address{1}, Model: "x", N: uint32(n), Seed: 5,
				IssuedHeight: 1, Deadline: 20, State: StateOpen}
			setChallenge(ctx, &c)
			sol := solved[n]
			if sol == nil {
				sol, _ = matmul.Solve(n, 5) // NB: 17 GFLOP at n = 2048: once per run
				solved[n] = sol
			}
			root := sol.Root()
			if err := answer(ctx, p, &MsgAnswer{Provider: c.Provider, Challenge: 1, Root: root, Millis: 1}); err != nil {
				b.Fatal(err)
			}
			c, _ = GetChallenge(ctx, 1)
			m := &MsgReveal{Provider: c.Provider, Challenge: 1}
			for _, k := range c.Chunks {
				m.Chunks = append(m.Chunks, RevealedChunk{Index: k, Entries: sol.Chunk(int(k)), Proof: sol.Proof(int(k))})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cctx := ctx.WithStore(store.NewCache(ctx.Store))
				if err := reveal(cctx, p, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
