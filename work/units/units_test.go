package units

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/proof"
)

const h1 = "0000000000000000000000000000000000000000000000000000000000000001"

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", `{"a": {"file": "tiles/a.png", "sha256": "` + h1 + `"}}`, ""},
		{"two", `{"a": {"file": "a", "sha256": "` + h1 + `"}, "b-1.x_2": {"file": "b", "sha256": "` + h1 + `"}}`, ""},
		{"empty", `{}`, "no units"},
		{"not object", `[]`, "one JSON object"},
		{"dup id", `{"a": {"file": "a", "sha256": "` + h1 + `"}, "a": {"file": "b", "sha256": "` + h1 + `"}}`, "appears twice"},
		{"dup file", `{"a": {"file": "x", "sha256": "` + h1 + `"}, "b": {"file": "x", "sha256": "` + h1 + `"}}`, "also unit"},
		{"unknown field", `{"a": {"file": "a", "sha256": "` + h1 + `", "size": 3}}`, "unknown field"},
		{"null unit", `{"a": null}`, "null"},
		{"trailing", `{"a": {"file": "a", "sha256": "` + h1 + `"}} {}`, "after the object"},
		{"short hash", `{"a": {"file": "a", "sha256": "abcd"}}`, "64 hex digits"},
		{"upper hash", `{"a": {"file": "a", "sha256": "` + strings.Repeat("A", 64) + `"}}`, "lowercase"},
		{"non-hex", `{"a": {"file": "a", "sha256": "` + strings.Repeat("g", 64) + `"}}`, "invalid byte"},
		{"dotdot", `{"a": {"file": "../etc/passwd", "sha256": "` + h1 + `"}}`, "leaves the job directory"},
		{"inner dotdot", `{"a": {"file": "x/../../y", "sha256": "` + h1 + `"}}`, "not clean"},
		{"absolute", `{"a": {"file": "/etc/passwd", "sha256": "` + h1 + `"}}`, "relative"},
		{"backslash", `{"a": {"file": "..\\x", "sha256": "` + h1 + `"}}`, "relative"},
		{"reserved", `{"a": {"file": "units.json", "sha256": "` + h1 + `"}}`, "reserved"},
		{"empty file", `{"a": {"file": "", "sha256": "` + h1 + `"}}`, "1 to"},
		{"bad id", `{"a b": {"file": "a", "sha256": "` + h1 + `"}}`, "not allowed"},
		{"dot id", `{".a": {"file": "a", "sha256": "` + h1 + `"}}`, "start with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v, want ok", tt.in, err)
				}
				b, err := s.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				again, err := Parse(b)
				if err != nil || len(again) != len(s) || again.Root() != s.Root() {
					t.Fatalf("Marshal/Parse round trip: %v, %v", again, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestPutLoadRoot(t *testing.T) {
	dir := t.TempDir()
	s := Set{}
	for i := range 5 {
		if err := s.Put(dir, fmt.Sprintf("u%d", i), fmt.Sprintf("out/u%d.bin", i), []byte{byte(i), 1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(dir, "u0", "other", nil); err == nil {
		t.Fatal("Put accepted a second u0")
	}
	if err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	root, err := Root(dir)
	if err != nil {
		t.Fatal(err)
	}
	var items []proof.Item
	for i := range 5 {
		items = append(items, proof.Item{Name: fmt.Sprintf("u%d", i), SHA256: [32]byte(mustSum(t, []byte{byte(i), 1, 2}))})
	}
	if want := proof.ItemsRoot(items); root != want {
		t.Fatalf("Root = %x, want proof.ItemsRoot %x", root, want)
	}
	it, p, err := s.Prove("u3")
	if err != nil || p.VerifyItem(root, it) != nil {
		t.Fatalf("Prove(u3): %v / %v", err, p.VerifyItem(root, it))
	}
	// A fetched unit checks against the committed root with its proof; a wrong byte,
	// another unit's proof or another root does not.
	data, _ := s.Load(dir, "u3")
	if err := VerifyUnit(root, "u3", data, p); err != nil {
		t.Fatalf("VerifyUnit(honest u3) = %v", err)
	}
	_, p1, _ := s.Prove("u1")
	for name, err := range map[string]error{
		"wrong byte":  VerifyUnit(root, "u3", append([]byte{9}, data[1:]...), p),
		"other proof": VerifyUnit(root, "u3", data, p1),
		"other id":    VerifyUnit(root, "u1", data, p),
		"other root":  VerifyUnit([32]byte{1}, "u3", data, p),
	} {
		if !errors.Is(err, proof.ErrMismatch) {
			t.Errorf("VerifyUnit(%s) = %v, want proof.ErrMismatch", name, err)
		}
	}
	// A file changed after the index was written: Load and Root refuse it.
	os.WriteFile(filepath.Join(dir, "out/u2.bin"), []byte("forged"), 0o644)
	if _, err := s.Load(dir, "u2"); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Load of a changed file = %v, want ErrHashMismatch", err)
	}
	if _, err := Root(dir); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Root over a changed file = %v, want ErrHashMismatch", err)
	}
	if _, err := s.Load(dir, "nope"); !errors.Is(err, ErrUnknownUnit) {
		t.Fatalf("Load(nope) = %v", err)
	}
}

func mustSum(t *testing.T, b []byte) []byte {
	t.Helper()
	s, err := ParseSum(Sum(b))
	if err != nil {
		t.Fatal(err)
	}
	return s[:]
}

func TestSymlinkOutsideRefused(t *testing.T) {
	outside := t.TempDir()
	secret := []byte("secret")
	os.WriteFile(filepath.Join(outside, "secret"), secret, 0o644)
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "u.bin")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	s := Set{"u": {File: "u.bin", SHA256: Sum(secret)}}
	if _, err := s.Load(dir, "u"); err == nil {
		t.Fatal("Load followed a symlink out of the job directory")
	}
}

func TestJob(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "scene.blend")
	os.WriteFile(src, []byte("BLENDER"), 0o644)
	j, err := NewJob("render", map[string]int{"tiles": 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.AddAsset(dir, "scene.blend", src); err != nil {
		t.Fatal(err)
	}
	if err := j.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJob(dir)
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Tiles int }
	if err := got.DecodeParams(&p); err != nil || p.Tiles != 4 {
		t.Fatalf("DecodeParams = %+v, %v", p, err)
	}
	var wrong struct{ Other int }
	if err := got.DecodeParams(&wrong); err == nil {
		t.Fatal("DecodeParams accepted an unknown field")
	}
	if _, err := got.AssetPath("scene.blend"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "scene.blend"), []byte("OTHER"), 0o644)
	if _, err := got.AssetPath("scene.blend"); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("AssetPath of a swapped scene = %v, want ErrHashMismatch", err)
	}
	for _, bad := range []string{
		`{"kind": "render", "params": {}, "extra": 1}`,
		`{"kind": "", "params": {}}`,
		`{"kind": "render", "params": 3}`,
		`{"kind": "render", "params": {}, "assets": {"../x": "` + h1 + `"}}`,
		`{"kind": "render", "params": {}, "assets": {"x": "zz"}}`,
	} {
		if _, err := ParseJob([]byte(bad)); err == nil {
			t.Errorf("ParseJob(%q) accepted", bad)
		}
	}
}

func TestSample(t *testing.T) {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%03d", i)
	}
	a := Sample(ids, 10, []byte("seed"))
	rev := append([]string(nil), ids...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b := Sample(rev, 10, []byte("seed"))
	if len(a) != 10 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("Sample depends on order: %v vs %v", a, b)
	}
	seen := map[string]bool{}
	for _, id := range a {
		if seen[id] {
			t.Fatalf("Sample repeated %s", id)
		}
		seen[id] = true
	}
	if c := Sample(ids, 10, []byte("other")); fmt.Sprint(c) == fmt.Sprint(a) {
		t.Fatalf("Sample ignores its seed: %v", c)
	}
	if all := Sample(ids[:3], 10, nil); len(all) != 3 {
		t.Fatalf("Sample(3 ids, 10) = %v", all)
	}
	// Every id gets picked by some seed: no id is never checked.
	hit := map[string]bool{}
	for s := range 400 {
		for _, id := range Sample(ids[:20], 2, []byte{byte(s), byte(s >> 8)}) {
			hit[id] = true
		}
	}
	if len(hit) != 20 {
		t.Fatalf("400 samples of 2 of 20 ids reached only %d ids", len(hit))
	}
}

// echo is a toy workload: unit i is the bytes "unit i of SEED", unit i>0 also needs unit i-1.
type echo struct{}

type echoParams struct {
	Seed  int `json:"seed"`
	Units int `json:"units"`
}

func (echo) Kind() string { return "echo" }
func (echo) Run(ctx context.Context, job Job, out string, progress Progress) error {
	var p echoParams
	if err := job.DecodeParams(&p); err != nil {
		return err
	}
	s := Set{}
	for i := range p.Units {
		b, _ := echo{}.RunUnit(ctx, job, fmt.Sprintf("u%d", i), nil)
		if err := s.Put(out, fmt.Sprintf("u%d", i), fmt.Sprintf("u%d.txt", i), b); err != nil {
			return err
		}
	}
	if err := job.Write(out); err != nil {
		return err
	}
	return s.Write(out)
}
func (echo) Inputs(job Job, id string) ([]string, error) {
	var i int
	if _, err := fmt.Sscanf(id, "u%d", &i); err != nil {
		return nil, err
	}
	if i == 0 {
		return nil, nil
	}
	return []string{fmt.Sprintf("u%d", i-1)}, nil
}
func (echo) RunUnit(_ context.Context, job Job, id string, _ map[string][]byte) ([]byte, error) {
	var p echoParams
	if err := job.DecodeParams(&p); err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf("%s of %d", id, p.Seed)), nil
}
func (echo) Compare(_ Job, id string, claimed, recomputed []byte) error {
	if !bytes.Equal(claimed, recomputed) {
		return Mismatch(id, "bytes differ")
	}
	return nil
}

func TestVerify(t *testing.T) {
	reg := NewRegistry(echo{})
	dir := t.TempDir()
	job, _ := NewJob("echo", echoParams{Seed: 7, Units: 10})
	if err := (echo{}).Run(context.Background(), job, dir, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := reg.Verify(context.Background(), dir, 10, []byte("s"), nil)
	if err != nil || rep.Verdict != VerdictOK || rep.Checked != 10 || len(rep.Failed) != 0 {
		t.Fatalf("honest job: %+v, %v", rep, err)
	}
	// A cheat that rewrites a unit and its index entry consistently: re-execution catches it.
	s, _ := Read(dir)
	delete(s, "u4")
	os.Remove(filepath.Join(dir, "u4.txt"))
	s.Put(dir, "u4", "u4.txt", []byte("u4 of 8"))
	s.Write(dir)
	rep, err = reg.Verify(context.Background(), dir, 10, []byte("s"), nil)
	if err != nil || rep.Verdict != VerdictFraud || fmt.Sprint(rep.Failed) != "[u4]" {
		t.Fatalf("forged u4: %+v, %v", rep, err)
	}
	// A file that no longer matches the index is fraud, too (as unit and as an input).
	os.WriteFile(filepath.Join(dir, "u7.txt"), []byte("junk"), 0o644)
	rep, _ = reg.Verify(context.Background(), dir, 10, []byte("s"), nil)
	if fmt.Sprint(rep.Failed) != "[u4 u7 u8]" {
		t.Fatalf("changed u7: failed %v (%v)", rep.Failed, rep.Reasons)
	}
	// Unknown kind: an error, not a verdict.
	j2, _ := NewJob("nope", echoParams{})
	j2.Write(dir)
	if _, err := reg.Verify(context.Background(), dir, 1, nil, nil); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("unknown kind: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"a": {"file": "tiles/a.png", "sha256": "` + h1 + `"}}`))
	f.Add([]byte(`{"a": {"file": "../a", "sha256": "` + h1 + `"}, "a": 1}`))
	f.Add([]byte(`{"a": null}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses to the same root, and
		// never names a file outside the directory.
		b, err := s.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed set: %v", err)
		}
		again, err := Parse(b)
		if err != nil || again.Root() != s.Root() {
			t.Fatalf("round trip: %v", err)
		}
		for _, u := range s {
			if strings.HasPrefix(u.File, "/") || strings.Contains(u.File, "..") && ValidPath(u.File) != nil {
				t.Fatalf("accepted path %q", u.File)
			}
		}
	})
}

func FuzzParseJob(f *testing.F) {
	f.Add([]byte(`{"kind": "render", "params": {"tiles": 4}, "assets": {"scene.blend": "` + h1 + `"}}`))
	f.Add([]byte(`{"kind": "train", "params": {}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := ParseJob(data)
		if err != nil {
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("ParseJob accepted an invalid job: %v", err)
		}
		for name := range j.Assets {
			if ValidPath(name) != nil {
				t.Fatalf("accepted asset %q", name)
			}
		}
	})
}

// batchEcho is echo as a Batcher; it counts its calls.
type batchEcho struct {
	echo
	calls *int
}

func (b batchEcho) RunUnits(ctx context.Context, job Job, ids []string, in map[string][]byte) (map[string][]byte, error) {
	*b.calls++
	out := map[string][]byte{}
	for _, id := range ids {
		out[id], _ = b.RunUnit(ctx, job, id, in)
	}
	return out, nil
}

func TestVerifyBatches(t *testing.T) {
	calls := 0
	reg := NewRegistry(batchEcho{calls: &calls})
	dir := t.TempDir()
	job, _ := NewJob("echo", echoParams{Seed: 7, Units: 10})
	if err := (echo{}).Run(context.Background(), job, dir, nil); err != nil {
		t.Fatal(err)
	}
	s, _ := Read(dir)
	delete(s, "u2")
	s.Put(dir, "u2", "u2b.txt", []byte("forged"))
	s.Write(dir)
	rep, err := reg.Verify(context.Background(), dir, 10, []byte("s"), nil)
	if err != nil || calls != 1 || fmt.Sprint(rep.Failed) != "[u2]" {
		t.Fatalf("batched verify: %d calls, %+v, %v", calls, rep, err)
	}
}
