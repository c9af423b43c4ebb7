package infer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
)

// trained returns a model trained by the Go engine on the generated digits, and the data.
func trained(tb testing.TB) (*Model, *train.Dataset) {
	tb.Helper()
	dir := tb.TempDir()
	p := train.DefaultParams()
	p.Steps, p.Every = 400, 400
	job, err := train.NewJob(p, train.DataGenerated, dir)
	if err != nil {
		tb.Fatal(err)
	}
	if err := (train.Workload{}).Run(context.Background(), job, dir, nil); err != nil {
		tb.Fatal(err)
	}
	set, _ := units.Read(dir)
	m, err := Load(filepath.Join(dir, set[train.UnitID(400)].File))
	if err != nil {
		tb.Fatal(err)
	}
	d, _ := train.ParseData(train.Generate(p.Seed))
	return m, d
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/predict", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestServe(t *testing.T) {
	m, d := trained(t)
	srv := httptest.NewServer(m.Handler(nil))
	defer srv.Close()
	// Held-out rows (the trainer used the first 1500): the served model classifies them.
	var inputs [][]float64
	for n := 1500; n < 1600; n++ {
		in := make([]float64, 64)
		for i, v := range d.X[n] {
			in[i] = float64(v) * 16
		}
		inputs = append(inputs, in)
	}
	body, _ := json.Marshal(Request{Inputs: inputs})
	code, b := post(t, srv.URL, string(body))
	if code != http.StatusOK {
		t.Fatalf("POST /predict = %d %s", code, b)
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil || len(resp.Predictions) != 100 || resp.Step != 400 || resp.Checkpoint != m.SHA256 {
		t.Fatalf("response: %+v %v", resp, err)
	}
	right := 0
	for i, p := range resp.Predictions {
		if p.Class == d.Y[1500+i] {
			right++
		}
	}
	if right < 80 {
		t.Fatalf("served model got %d/100 held-out images right, want >= 80", right)
	}
	one, _ := json.Marshal(Request{Input: inputs[0]})
	if code, b := post(t, srv.URL, string(one)); code != http.StatusOK || !bytes.Contains(b, []byte(`"class"`)) {
		t.Fatalf("single input: %d %s", code, b)
	}

	for _, tt := range []struct {
		body string
		code int
		want string
	}{
		{`{}`, 400, "want"},
		{`{"input": [1,2,3]}`, 400, "3 values"},
		{`{"input": [` + strings.Repeat("1,", 63) + `17]}`, 400, "input[63]"},
		{`{"input": [` + strings.Repeat("1,", 63) + `-1]}`, 400, "must be 0"},
		{`{"inputs": [[1]]}`, 400, "inputs[0]"},
		{`{"input": [1], "inputs": [[1]]}`, 400, "not both"},
		{`{"image": [1]}`, 400, "unknown field"},
		{`{"input": [` + strings.Repeat("1,", 63) + `1]} x`, 400, "after"},
		{`not json`, 400, "body"},
		{`{"inputs": [` + strings.Repeat(`[0],`, MaxBatch) + `[0]]}`, 400, "at most"},
		{`{"input": [` + strings.Repeat("1,", 1<<19) + `1]}`, 413, "larger"},
	} {
		code, b := post(t, srv.URL, tt.body)
		if code != tt.code || !strings.Contains(string(b), tt.want) {
			t.Errorf("POST %.40q = %d %s, want %d %q", tt.body, code, b, tt.code, tt.want)
		}
	}
	resp2, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if !strings.Contains(string(mb), `kiln_infer_images_total 101`) || !strings.Contains(string(mb), `kiln_infer_requests_total{code="400"} 10`) {
		t.Fatalf("metrics:\n%s", mb)
	}
	info, _ := http.Get(srv.URL + "/")
	ib, _ := io.ReadAll(info.Body)
	info.Body.Close()
	if !strings.Contains(string(ib), m.SHA256) {
		t.Fatalf("GET / = %s", ib)
	}
}

func TestLoadRefuses(t *testing.T) {
	if _, err := Decode([]byte("hello")); err == nil {
		t.Fatal("Decode accepted garbage")
	}
	c := &train.Checkpoint{Step: 0, Prev: train.ZeroPrev, Engine: "go", Tensors: []train.Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}}
	b, _ := c.Encode()
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "fc1.weight") {
		t.Fatalf("Decode of a non-MLP checkpoint = %v", err)
	}
}

func FuzzPredictBody(f *testing.F) {
	m, _ := trained(f)
	h := m.Handler(nil)
	f.Add([]byte(`{"input": [` + strings.Repeat("1,", 63) + `1]}`))
	f.Add([]byte(`{"inputs": [[1e308, -0]]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/predict", bytes.NewReader(body)))
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 413 {
			t.Fatalf("POST %q = %d", body, rec.Code)
		}
		if rec.Code == 200 {
			var r Response
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || len(r.Predictions) == 0 {
				t.Fatalf("200 with %s", rec.Body.Bytes())
			}
			for _, p := range r.Predictions {
				if p.Class < 0 || p.Class > 9 {
					t.Fatal(fmt.Sprint("class ", p.Class))
				}
			}
		}
	})
}
