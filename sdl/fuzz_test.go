package sdl

import (
	"encoding/json"
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics or hangs, that it is
// deterministic, and that what it accepts is within Akash's limits.
func FuzzParse(f *testing.F) {
	f.Add([]byte(makeSDL(nil)))
	f.Add([]byte(makeSDL(map[string]string{"version": "2.1", "gpu": gpuYAML("2", nvidia("model: h100\n                  ram: 80Gi\n                  interface: sxm"))})))
	f.Add([]byte(makeSDL(map[string]string{"expose": "      - port: 80\n        to:\n          - global: true\n            ip: myip", "top": "endpoints:\n  myip:\n    kind: ip"})))
	f.Add([]byte(makeSDL(map[string]string{"storage": "          - size: 1Gi\n          - name: shm\n            size: 1Gi\n            attributes:\n              class: ram", "svc": "    params:\n      storage:\n        shm:\n          mount: /dev/shm"})))
	f.Add([]byte("version: '2.0'\nservices: {a: &x {image: n}, b: *x}\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("--\nversion: 2.0\n"))
	f.Add([]byte("version: 2\nprofiles: {compute: {c: {resources: {cpu: {units: 1e400}, memory: {size: NaN}, storage: 1}}}}"))
	f.Add([]byte("<<: {version: 2.0}\n"))
	f.Add([]byte(makeSDL(map[string]string{"svc": "    params:\n      tee: cpu-gpu", "gpu": teeGPU, "memory": "16gi"})))
	f.Add([]byte(makeSDL(map[string]string{"version": "2.1", "top": "reclamation:\n  min_window: 24h", "storage": "          - size: 15GB"})))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data)
		if res == nil {
			t.Fatalf("Parse returned a nil Result (err %v)", err)
		}
		res2, err2 := Parse(data)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(res, res2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		if len(res.Groups) == 0 || len(res.Groups) > maxGroups {
			t.Fatalf("accepted with %d groups", len(res.Groups))
		}
		if r := res.Reclamation; r != nil && (r.MinWindowSeconds < 3600 || r.MinWindowSeconds > 720*3600) {
			t.Fatalf("accepted a reclamation window outside 1h-720h: %+v", r)
		}
		for _, g := range res.Groups {
			if g.TEE != "" && g.TEE != TEECPU && g.TEE != TEECPUGPU {
				t.Fatalf("accepted TEE type %q", g.TEE)
			}
			for _, u := range g.Resources {
				if g.TEE == TEECPUGPU && u.GPU.Units == 0 {
					t.Fatalf("accepted tee cpu-gpu for a unit without GPUs: %+v", u)
				}
				if u.CPUMilli < minUnitCPU || u.CPUMilli > maxUnitCPU || u.MemoryBytes < minUnitMemory || u.MemoryBytes > maxUnitMemory ||
					u.Count < minUnitCount || u.Count > maxUnitCount || u.GPU.Units > maxUnitGPU || len(u.Storage) == 0 {
					t.Fatalf("accepted a unit outside the limits: %+v", u)
				}
			}
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("json.Marshal(result) = %v", err)
		}
	})
}

// BenchmarkParse measures files parsed and validated per second over the
// corpus (or the inline base SDL when the corpus is absent), against a
// baseline that only builds the YAML tree.
func BenchmarkParse(b *testing.B) {
	var inputs [][]byte
	if files := corpusFilesOrNil(); len(files) > 0 {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			inputs = append(inputs, data)
		}
	} else {
		inputs = [][]byte{[]byte(makeSDL(nil))}
	}
	b.Run("yaml-only-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, in := range inputs {
				var n yaml.Node
				_ = yaml.Unmarshal(in, &n)
			}
		}
		b.ReportMetric(float64(b.N*len(inputs))/b.Elapsed().Seconds(), "files/s")
	})
	b.Run("parse-validate-convert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, in := range inputs {
				_, _ = Parse(in)
			}
		}
		b.ReportMetric(float64(b.N*len(inputs))/b.Elapsed().Seconds(), "files/s")
	})
}

// corpusFilesOrNil is corpusFiles without skipping.
func corpusFilesOrNil() (files []string) {
	defer func() { _ = recover() }()
	tb := &skipTB{}
	return corpusFiles(tb)
}

// skipTB turns Skip into a panic recovered by corpusFilesOrNil.
type skipTB struct{ testing.TB }

func (*skipTB) Helper()              {}
func (*skipTB) Skip(...any)          { panic("skip") }
func (*skipTB) Skipf(string, ...any) { panic("skip") }

// FuzzCoinCeil checks Coin.Ceil against exact rational arithmetic: the result is the
// least whole number at or above the amount, whole exactly when they are equal.
func FuzzCoinCeil(f *testing.F) {
	for _, s := range []string{"0", "1000", "16398.819285011479173500", "0.000000000000000001", "18446744073709551615", "-1", "1e3", "1/3", "", ".5", "5."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, amount string) {
		units, whole, err := Coin{Denom: "ukiln", Amount: amount}.Ceil()
		if err != nil {
			return
		}
		r, ok := new(big.Rat).SetString(amount)
		if !ok || r.Sign() < 0 || strings.Trim(amount, "0123456789.") != "" || strings.Count(amount, ".") > 1 {
			t.Fatalf("Ceil(%q) = %d: accepted something other than a plain non-negative decimal", amount, units)
		}
		u := new(big.Rat).SetInt(new(big.Int).SetUint64(units))
		below := new(big.Rat).Sub(u, big.NewRat(1, 1))
		if u.Cmp(r) < 0 || (units > 0 && below.Cmp(r) >= 0) || whole != (u.Cmp(r) == 0) {
			t.Fatalf("Ceil(%q) = %d, whole %v: not the ceiling of %s", amount, units, whole, r.FloatString(20))
		}
	})
}
