package scratchimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// The archive is one image whose layer holds the program at /name and a /tmp
// writable by every user, and the same program gives the same archive and ID.
func TestBuild(t *testing.T) {
	prog := []byte("\x7fELF not really")
	archive, id, err := Build("prog", prog, "amd64", "x:y")
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, archive)
	var man []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"].body, &man); err != nil || len(man) != 1 || len(man[0].Layers) != 1 {
		t.Fatalf("manifest.json %s: %v; want one image of one layer", files["manifest.json"].body, err)
	}
	if id != "sha256:"+man[0].Config[:64] || man[0].RepoTags[0] != "x:y" {
		t.Errorf("manifest %+v, id %s: want the config's digest and tag x:y", man[0], id)
	}
	layer := untar(t, files[man[0].Layers[0]].body)
	if f, ok := layer["tmp/"]; !ok || f.hdr.Typeflag != tar.TypeDir || f.hdr.Mode != 0o1777 {
		t.Errorf("layer's tmp/: %+v; want a directory of mode 1777", f.hdr)
	}
	if f := layer["prog"]; !bytes.Equal(f.body, prog) || f.hdr.Mode != 0o755 {
		t.Errorf("layer's prog: mode %o, %q; want mode 755 and the program", f.hdr.Mode, f.body)
	}
	again, id2, _ := Build("prog", prog, "amd64", "x:y")
	if id2 != id || !bytes.Equal(again, archive) {
		t.Errorf("a second Build gave another archive or ID (%s, %s)", id, id2)
	}
	if _, _, err := Build("a/b", prog, "amd64", ""); err == nil {
		t.Error(`Build("a/b") = nil error; want one naming the program name`)
	}
}

type entry struct {
	hdr  *tar.Header
	body []byte
}

func untar(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out[h.Name] = entry{h, body}
	}
}
