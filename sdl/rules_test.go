package sdl

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

// baseSDL is a minimal valid SDL with {{slots}} that the table tests fill.
const baseSDL = `version: "{{version}}"
services:
  web:
    image: {{image}}
    expose:
{{expose}}
{{svc}}
profiles:
  compute:
    web:
      resources:
        cpu:
          units: {{cpu}}
        memory:
          size: {{memory}}
        storage:
{{storage}}
{{gpu}}
  placement:
    dc:
      attributes:
        region: us-west
      pricing:
        web:
          denom: {{denom}}
          amount: {{amount}}
deployment:
  web:
    dc:
      profile: web
      count: {{count}}
{{top}}`

var baseSlots = map[string]string{
	"version": "2.0",
	"image":   "nginx:1.27",
	"expose":  "      - port: 80\n        to:\n          - global: true",
	"svc":     "",
	"cpu":     "0.5",
	"memory":  "512Mi",
	"storage": "          - size: 1Gi",
	"gpu":     "",
	"denom":   "uact",
	"amount":  "1000",
	"count":   "1",
	"top":     "",
}

// makeSDL fills baseSDL, overriding the given slots.
func makeSDL(over map[string]string) string {
	s := baseSDL
	for k, def := range baseSlots {
		v, ok := over[k]
		if !ok {
			v = def
		}
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return s
}

func gpuYAML(units, attrs string) string {
	s := "        gpu:\n          units: " + units
	if attrs != "" {
		s += "\n          attributes:\n" + attrs
	}
	return s
}

const anyNvidia = "            vendor:\n              nvidia:"

func nvidia(models ...string) string {
	s := "            vendor:\n              nvidia:"
	for _, m := range models {
		s += "\n                - " + m
	}
	return s
}

type ruleCase struct {
	name  string
	over  map[string]string
	want  string // substring of the error; "" means accepted
	warn  string // substring of a warning, if any is expected
	check func(t *testing.T, r *Result)
}

func unit(r *Result) ResourceUnit { return r.Groups[0].Resources[0] }

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := makeSDL(tc.over)
			res, err := Parse([]byte(src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Parse(%s) = %v, want accepted\n%s", tc.name, err, src)
			case tc.want != "" && err == nil:
				t.Fatalf("Parse(%s) accepted, want error containing %q\n%s", tc.name, tc.want, src)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Parse(%s) = %v, want error containing %q", tc.name, err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse(%s) error %v does not match ErrInvalid", tc.name, err)
			}
			if tc.warn != "" {
				found := false
				for _, w := range res.Warnings {
					found = found || strings.Contains(w.String(), tc.warn)
				}
				if !found {
					t.Errorf("Parse(%s) warnings = %v, want one containing %q", tc.name, res.Warnings, tc.warn)
				}
			}
			if tc.check != nil && err == nil {
				tc.check(t, res)
			}
		})
	}
}

func wantCPU(m uint64) func(*testing.T, *Result) {
	return func(t *testing.T, r *Result) {
		if got := unit(r).CPUMilli; got != m {
			t.Errorf("CPUMilli = %d, want %d", got, m)
		}
	}
}

func TestCPURules(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "min 10m", over: map[string]string{"cpu": "10m"}, check: wantCPU(10)},
		{name: "below min 9m", over: map[string]string{"cpu": "9m"}, want: "cpu.units: CPU must be 10m-384"},
		{name: "min as 0.01", over: map[string]string{"cpu": "0.01"}, check: wantCPU(10)},
		{name: "below min 0.009", over: map[string]string{"cpu": "0.009"}, want: "CPU must be 10m-384"},
		{name: "max 384", over: map[string]string{"cpu": "384"}, check: wantCPU(384000)},
		{name: "above max 384.001", over: map[string]string{"cpu": "384.001"}, want: "CPU must be 10m-384"},
		{name: "string 0.5", over: map[string]string{"cpu": `"0.5"`}, check: wantCPU(500)},
		{name: "millicpu 100m", over: map[string]string{"cpu": "100m"}, check: wantCPU(100)},
		{name: "integer 2", over: map[string]string{"cpu": "2"}, check: wantCPU(2000)},
		{name: "negative", over: map[string]string{"cpu": "-1"}, want: "must not be negative"},
		{name: "word", over: map[string]string{"cpu": "two"}, want: "must be a number of CPUs"},
		{name: "fractional millicpu", over: map[string]string{"cpu": "0.5m"}, want: "millicpu"},
		{name: "list", over: map[string]string{"cpu": "\n            - 2"}, want: "must be a number of CPUs, not a list"},
		{name: "unknown cpu attribute", over: map[string]string{"cpu": "1\n          attributes:\n            vendor: intel"}, want: "unsupported CPU attribute"},
		{name: "arch attribute", over: map[string]string{"cpu": "1\n          attributes:\n            arch: amd64"}, check: func(t *testing.T, r *Result) {
			if a := unit(r).CPUAttributes; len(a) != 1 || a[0] != (Attribute{"arch", "amd64"}) {
				t.Errorf("CPUAttributes = %v", a)
			}
		}},
	})
}

func wantMem(b uint64) func(*testing.T, *Result) {
	return func(t *testing.T, r *Result) {
		if got := unit(r).MemoryBytes; got != b {
			t.Errorf("MemoryBytes = %d, want %d", got, b)
		}
	}
}

func TestMemoryRules(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "min 1Mi", over: map[string]string{"memory": "1Mi"}, check: wantMem(unitMi)},
		{name: "below min", over: map[string]string{"memory": "1048575"}, want: "memory must be 1Mi-2Ti"},
		{name: "max 2Ti", over: map[string]string{"memory": "2Ti"}, check: wantMem(2 * unitTi)},
		{name: "above max", over: map[string]string{"memory": "2199023255553"}, want: "memory must be 1Mi-2Ti"},
		{name: "decimal suffix G", over: map[string]string{"memory": "1G"}, check: wantMem(1e9)},
		{name: "fraction 0.5Gi", over: map[string]string{"memory": "0.5Gi"}, check: wantMem(unitGi / 2)},
		{name: "k", over: map[string]string{"memory": "2000k"}, check: wantMem(2e6)},
		{name: "GB read as G with a warning", over: map[string]string{"memory": "1GB"}, warn: `size "1GB" is read as 1G`, check: wantMem(1e9)},
		{name: "lower-case gi read as Gi with a warning", over: map[string]string{"memory": "1gi"}, warn: `size "1gi" is read as 1Gi`, check: wantMem(unitGi)},
		{name: "unknown suffix refused with hint", over: map[string]string{"memory": "1Gx"}, want: "must be a size in bytes"},
		{name: "negative", over: map[string]string{"memory": "-1Gi"}, want: "must not be negative"},
		{name: "missing", over: map[string]string{"memory": "\n          nothing: 1"}, want: "memory must be 1Mi-2Ti"},
	})
}

func TestStorageRules(t *testing.T) {
	vol := func(extra string) map[string]string {
		return map[string]string{"storage": extra}
	}
	runRules(t, []ruleCase{
		{name: "min 5Mi", over: vol("          - size: 5Mi")},
		{name: "below min", over: vol("          - size: 5242879"), want: "storage volume size must be 5Mi-32Ti"},
		{name: "max 32Ti", over: vol("          - size: 32Ti")},
		{name: "above max", over: vol("          - size: 35184372088833"), want: "storage volume size must be 5Mi-32Ti"},
		{name: "single mapping form", over: vol("          size: 2Gi"), check: func(t *testing.T, r *Result) {
			if s := unit(r).Storage; len(s) != 1 || s[0].Name != "default" || s[0].Bytes != 2*unitGi {
				t.Errorf("Storage = %+v", s)
			}
		}},
		{name: "missing storage", over: vol(""), want: "storage is required"},
		{name: "two root ephemeral volumes", over: vol("          - size: 1Gi\n          - size: 2Gi"), want: "only one root ephemeral volume"},
		{name: "duplicated name", over: vol("          - size: 1Gi\n          - name: a\n            size: 1Gi\n          - name: a\n            size: 2Gi"), want: "duplicated volume name"},
		{name: "ram class for shm", over: map[string]string{
			"storage": "          - size: 1Gi\n          - name: shm\n            size: 1Gi\n            attributes:\n              class: ram",
			"svc":     "    params:\n      storage:\n        shm:\n          mount: /dev/shm",
		}, check: func(t *testing.T, r *Result) {
			s := unit(r).Storage
			if len(s) != 2 || s[1].Class != "ram" || s[1].Persistent {
				t.Errorf("Storage = %+v", s)
			}
		}},
		{name: "ram cannot be persistent", over: vol("          - size: 1Gi\n          - name: shm\n            size: 1Gi\n            attributes:\n              class: ram\n              persistent: true"), want: "ram (shared memory) cannot be persistent"},
		{name: "ephemeral with class", over: vol("          - size: 1Gi\n          - name: c\n            size: 1Gi\n            attributes:\n              class: beta2"), want: "ephemeral volume must not set a class"},
		{name: "unknown class", over: map[string]string{
			"storage": "          - size: 1Gi\n          - name: data\n            size: 1Gi\n            attributes:\n              class: ssd\n              persistent: true",
			"svc":     "    params:\n      storage:\n        data:\n          mount: /data",
		}, want: "unknown storage class"},
		{name: "unsupported attribute", over: vol("          - size: 1Gi\n            attributes:\n              speed: fast"), want: "unsupported storage attribute"},
		{name: "persistent bool word", over: vol("          - size: 1Gi\n            attributes:\n              persistent: maybe"), want: "must be true or false"},
		{name: "persistent gets class default", over: map[string]string{
			"storage": "          - size: 1Gi\n          - name: data\n            size: 10Gi\n            attributes:\n              persistent: true",
			"svc":     "    params:\n      storage:\n        data:\n          mount: /data",
		}, check: func(t *testing.T, r *Result) {
			s := unit(r).Storage[1]
			if s.Name != "data" || s.Class != "default" || !s.Persistent {
				t.Errorf("Storage[1] = %+v", s)
			}
			if p := r.Manifest.Groups[0].Services[0].Params; p == nil || p.Storage[0] != (StorageParams{Name: "data", Mount: "/data"}) {
				t.Errorf("Params = %+v", p)
			}
		}},
		{name: "persistent not mounted 2.0", over: vol("          - size: 1Gi\n          - name: data\n            size: 10Gi\n            attributes:\n              persistent: true"), want: "persistent volume must be mounted"},
		{name: "persistent not mounted 2.1", over: map[string]string{"version": "2.1", "storage": "          - size: 1Gi\n          - name: data\n            size: 10Gi\n            attributes:\n              persistent: true"}, warn: "is not mounted"},
		{name: "relative mount", over: map[string]string{
			"storage": "          - size: 1Gi\n          - name: data\n            size: 1Gi\n            attributes:\n              persistent: true",
			"svc":     "    params:\n      storage:\n        data:\n          mount: data",
		}, want: "mount must be an absolute path"},
		{name: "mount of unknown volume", over: map[string]string{"svc": "    params:\n      storage:\n        nope:\n          mount: /x"}, want: `no volume named "nope"`},
		{name: "duplicate mount point", over: map[string]string{
			"storage": "          - size: 1Gi\n          - name: a\n            size: 1Gi\n            attributes:\n              persistent: true\n          - name: b\n            size: 2Gi\n            attributes:\n              persistent: true",
			"svc":     "    params:\n      storage:\n        a:\n          mount: /d\n        b:\n          mount: /d",
		}, want: "mount point already used"},
		{name: "ram readOnly 2.1", over: map[string]string{
			"version": "2.1",
			"storage": "          - size: 1Gi\n          - name: shm\n            size: 1Gi\n            attributes:\n              class: ram",
			"svc":     "    params:\n      storage:\n        shm:\n          mount: /dev/shm\n          readOnly: true",
		}, want: "cannot be readOnly"},
		{name: "ram readOnly 2.0 accepted", over: map[string]string{
			"storage": "          - size: 1Gi\n          - name: shm\n            size: 1Gi\n            attributes:\n              class: ram",
			"svc":     "    params:\n      storage:\n        shm:\n          mount: /dev/shm\n          readOnly: true",
		}},
	})
}

func TestGPURules(t *testing.T) {
	g := func(units, attrs string) map[string]string { return map[string]string{"gpu": gpuYAML(units, attrs)} }
	runRules(t, []ruleCase{
		{name: "any nvidia (null)", over: g("1", anyNvidia), check: func(t *testing.T, r *Result) {
			gpu := unit(r).GPU
			if gpu.Units != 1 || len(gpu.Models) != 1 || gpu.Models[0].Model != "*" || gpu.Attributes[0].Key != "vendor/nvidia/model/*" {
				t.Errorf("GPU = %+v", gpu)
			}
		}},
		{name: "max 24", over: g("24", anyNvidia)},
		{name: "above max 25", over: g("25", anyNvidia), want: "GPU units must be 0-24"},
		{name: "units without attributes", over: g("1", ""), want: "GPU attributes are required when units > 0"},
		{name: "zero units no attributes", over: g("0", "")},
		{name: "zero units with attributes", over: g("0", anyNvidia), want: "not allowed when units is 0"},
		{name: "models ram interface", over: g("2", nvidia("model: h100\n                  ram: 80Gi\n                  interface: sxm", "model: a100")), check: func(t *testing.T, r *Result) {
			gpu := unit(r).GPU
			want := []GPUModel{{Vendor: "nvidia", Model: "h100", RAM: "80Gi", RAMBytes: 80 * unitGi, Interface: "sxm"}, {Vendor: "nvidia", Model: "a100"}}
			if fmt.Sprint(gpu.Models) != fmt.Sprint(want) {
				t.Errorf("Models = %+v, want %+v", gpu.Models, want)
			}
			if gpu.Attributes[1].Key != "vendor/nvidia/model/h100/ram/80Gi/interface/sxm" {
				t.Errorf("Attributes = %+v", gpu.Attributes)
			}
		}},
		{name: "interface pcie", over: g("1", nvidia("model: rtx4090\n                  interface: pcie"))},
		{name: "interface nvlink", over: g("1", nvidia("model: a100\n                  interface: nvlink")), want: "GPU interface must be pcie or sxm"},
		{name: "ram decimal suffix refused", over: g("1", nvidia("model: a100\n                  ram: 80G")), want: "must be a size"},
		{name: "unknown gpu field", over: map[string]string{"gpu": gpuYAML("1", anyNvidia) + "\n          model: a100"}, want: "unsupported GPU field"},
		{name: "unknown gpu attribute", over: g("1", anyNvidia+"\n            arch: x86"), want: "unsupported GPU attribute"},
		{name: "no vendor", over: g("1", "            vendor:"), want: "at least one GPU vendor"},
		{name: "amd ignored", over: g("1", "            vendor:\n              amd:\n                - model: mi300"), warn: `GPU vendor "amd" is ignored`},
		{name: "model with space", over: g("1", nvidia("model: rtx 4090")), want: "invalid attribute key"},
		{name: "model twice", over: g("1", nvidia("model: a100", "model: a100")), want: "GPU model listed twice"},
		{name: "units not a number", over: g("one", anyNvidia), want: "whole number of GPUs"},
	})
}

func TestCountAndPriceRules(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "count 1", over: map[string]string{"count": "1"}},
		{name: "count 0", over: map[string]string{"count": "0"}, want: "count must be 1-50"},
		{name: "count 50", over: map[string]string{"count": "50"}},
		{name: "count 51", over: map[string]string{"count": "51"}, want: "count must be 1-50"},
		{name: "count missing", over: map[string]string{"count": ""}, want: "count must be 1-50"},
		{name: "count negative", over: map[string]string{"count": "-1"}, want: "whole number of instances"},
		{name: "amount max", over: map[string]string{"amount": "10000000"}},
		{name: "amount above max", over: map[string]string{"amount": "10000000.000000000000000001"}, want: "must be at most 10000000 uact"},
		{name: "amount zero", over: map[string]string{"amount": "0"}, want: "must be greater than zero"},
		{name: "amount negative", over: map[string]string{"amount": "-5"}, want: "must not be negative"},
		{name: "amount exponent", over: map[string]string{"amount": "1e3"}, want: "decimal number"},
		{name: "amount smallest", over: map[string]string{"amount": "0.000000000000000001"}},
		{name: "amount 19 decimals", over: map[string]string{"amount": "0.0000000000000000001"}, want: "at most 18 decimals"},
		{name: "denom uakt", over: map[string]string{"denom": "uakt"}},
		{name: "denom ukiln kept per Kiln block", over: map[string]string{"denom": "ukiln", "amount": "7"}, check: func(t *testing.T, r *Result) {
			if p := unit(r).Price; p != (Coin{"ukiln", "7"}) {
				t.Errorf("Price = %+v", p)
			}
		}},
		{name: "denom usdc ibc", over: map[string]string{"denom": "ibc/170C677610AC31DF0904FFE09CD3B5C657492170E7E52372E48756B71E56F2F1"}},
		{name: "denom other ibc warns", over: map[string]string{"denom": "ibc/ABCDEF"}, warn: "generic ibc/* rate"},
		{name: "denom without rate", over: map[string]string{"denom": "uatom"}, want: `no conversion rate to ukiln for denom "uatom"`},
		{name: "denom malformed", over: map[string]string{"denom": "u"}, want: "must be a denomination"},
		{name: "price converted", over: map[string]string{"amount": "6098"}, check: func(t *testing.T, r *Result) {
			// 6098 uact per 6.098 s block is 1000 per second.
			if p := unit(r).Price; p != (Coin{"ukiln", "1000"}) {
				t.Errorf("Price = %+v, want 1000ukiln", p)
			}
			if p := unit(r).SourcePrice; p != (Coin{"uact", "6098"}) {
				t.Errorf("SourcePrice = %+v", p)
			}
		}},
	})
}

func TestVersionAndTopLevelRules(t *testing.T) {
	runRules(t, []ruleCase{
		{name: "2.0", over: map[string]string{"version": "2.0"}},
		{name: "2", over: map[string]string{"version": "2"}},
		{name: "v2.0", over: map[string]string{"version": "v2.0"}},
		{name: "2.1", over: map[string]string{"version": "2.1"}},
		{name: "2.1.3", over: map[string]string{"version": "2.1.3"}},
		{name: "2.0.1", over: map[string]string{"version": "2.0.1"}, want: "unsupported SDL version"},
		{name: "2.2", over: map[string]string{"version": "2.2"}, want: "unsupported SDL version"},
		{name: "1.0", over: map[string]string{"version": "1.0"}, want: "unsupported SDL version"},
		{name: "garbage", over: map[string]string{"version": "two"}, want: "must be a version number"},
		{name: "unknown top-level key", over: map[string]string{"top": "volumes:\n  data: {}"}, want: "volumes: unknown top-level key"},
		{name: "include ignored", over: map[string]string{"top": "include:\n  - other.yaml"}, warn: "include is accepted but ignored"},
		{name: "compose depends_on warns", over: map[string]string{"svc": "    depends_on:\n      - db"}, warn: `services.web.depends_on: unknown key "depends_on" ignored`},
		{name: "dependencies kept", over: map[string]string{"svc": "    dependencies:\n      - service: web"}, check: func(t *testing.T, r *Result) {
			if d := r.Manifest.Groups[0].Services[0].Dependencies; len(d) != 1 || d[0] != "web" {
				t.Errorf("Dependencies = %v", d)
			}
		}},
	})
}

func TestServiceAndExposeRules(t *testing.T) {
	ex := func(s string) map[string]string { return map[string]string{"expose": s} }
	runRules(t, []ruleCase{
		{name: "port 80 is http", over: nil, check: func(t *testing.T, r *Result) {
			if e := unit(r).Endpoints; len(e) != 1 || e[0].Kind != EndpointSharedHTTP {
				t.Errorf("Endpoints = %+v", e)
			}
			x := r.Manifest.Groups[0].Services[0].Expose[0]
			if x.Proto != "TCP" || !x.Global || x.ExternalPort != 0 || x.HTTPOptions.MaxBodySize != defaultMaxBodySize || x.HTTPOptions.NextTries != 3 {
				t.Errorf("Expose = %+v", x)
			}
		}},
		{name: "as 80 is http", over: ex("      - port: 8080\n        as: 80\n        to:\n          - global: true"), check: func(t *testing.T, r *Result) {
			if e := unit(r).Endpoints; e[0].Kind != EndpointSharedHTTP {
				t.Errorf("Endpoints = %+v", e)
			}
		}},
		{name: "other port random", over: ex("      - port: 22\n        to:\n          - global: true"), check: func(t *testing.T, r *Result) {
			if e := unit(r).Endpoints; e[0].Kind != EndpointRandomPort {
				t.Errorf("Endpoints = %+v", e)
			}
		}},
		{name: "udp on 80 is not http", over: ex("      - port: 80\n        proto: udp\n        to:\n          - global: true"), check: func(t *testing.T, r *Result) {
			if e := unit(r).Endpoints; e[0].Kind != EndpointRandomPort {
				t.Errorf("Endpoints = %+v", e)
			}
		}},
		{name: "proto TCP upper case", over: ex("      - port: 80\n        proto: TCP\n        to:\n          - global: true")},
		{name: "proto http refused", over: ex("      - port: 80\n        proto: http\n        to:\n          - global: true"), want: "unsupported protocol"},
		{name: "port 0", over: ex("      - port: 0\n        as: 80\n        to:\n          - global: true"), want: "port must be 1-65535"},
		{name: "port 65535", over: ex("      - port: 65535\n        to:\n          - global: true")},
		{name: "port 65536", over: ex("      - port: 65536\n        to:\n          - global: true"), want: "port must be 1-65535"},
		{name: "no global expose", over: ex("      - port: 80\n        to:\n          - service: web"), want: "no service is exposed globally"},
		{name: "accept on http", over: ex("      - port: 80\n        accept:\n          - www.example.com\n        to:\n          - global: true"), check: func(t *testing.T, r *Result) {
			if h := r.Manifest.Groups[0].Services[0].Expose[0].Hosts; len(h) != 1 || h[0] != "www.example.com" {
				t.Errorf("Hosts = %v", h)
			}
		}},
		{name: "accept on non-http warns", over: ex("      - port: 22\n        accept:\n          - example.com\n        to:\n          - global: true"), warn: "accept only applies to HTTP"},
		{name: "accept invalid host", over: ex("      - port: 80\n        accept:\n          - Example_.com\n        to:\n          - global: true"), want: "must be a DNS name"},
		{name: "http_options at limits", over: ex("      - port: 80\n        http_options:\n          max_body_size: 104857600\n          read_timeout: 60000\n          send_timeout: 60000\n          next_cases: [\"off\"]\n        to:\n          - global: true")},
		{name: "max_body_size above", over: ex("      - port: 80\n        http_options:\n          max_body_size: 104857601\n        to:\n          - global: true"), want: "must be at most 104857600 bytes"},
		{name: "read_timeout above", over: ex("      - port: 80\n        http_options:\n          read_timeout: 60001\n        to:\n          - global: true"), want: "must be at most 60000 ms"},
		{name: "next_cases off with others", over: ex("      - port: 80\n        http_options:\n          next_cases: [\"off\", \"error\"]\n        to:\n          - global: true"), want: "if off is given"},
		{name: "next_cases unknown", over: ex("      - port: 80\n        http_options:\n          next_cases: [\"418\"]\n        to:\n          - global: true"), want: "unknown next case"},
		{name: "to as mapping", over: ex("      - port: 80\n        to:\n          global: true"), want: "to: must be a list, not a mapping"},
		{name: "image missing", over: map[string]string{"image": ""}, want: "image is required"},
		{name: "env valid", over: map[string]string{"svc": "    env:\n      - A_B=1\n      - EMPTY="}},
		{name: "env bad name", over: map[string]string{"svc": "    env:\n      - 1X=2"}, want: "environment variable must be NAME=value"},
		{name: "env as mapping", over: map[string]string{"svc": "    env:\n      A: 1"}, want: "env: must be a list, not a mapping"},
		{name: "command as string", over: map[string]string{"svc": "    command: bash -c"}, want: "command: must be a list"},
		{name: "credentials ok", over: map[string]string{"svc": "    credentials:\n      host: ghcr.io\n      username: u\n      password: p"}},
		{name: "credentials missing password", over: map[string]string{"svc": "    credentials:\n      host: ghcr.io\n      username: u"}, want: "password is missing"},
		{name: "permissions", over: map[string]string{"svc": "    params:\n      permissions:\n        read:\n          - logs"}, check: func(t *testing.T, r *Result) {
			if p := r.Manifest.Groups[0].Services[0].Params; p == nil || p.Permissions == nil || p.Permissions.Read[0] != "logs" {
				t.Errorf("Params = %+v", p)
			}
		}},
	})
}

func TestEndpointRules(t *testing.T) {
	ipExpose := "      - port: 80\n        to:\n          - global: true\n            ip: myip"
	runRules(t, []ruleCase{
		{name: "ip endpoint", over: map[string]string{"expose": ipExpose, "top": "endpoints:\n  myip:\n    kind: ip"}, check: func(t *testing.T, r *Result) {
			eps := unit(r).Endpoints
			if len(eps) != 2 || eps[0].Kind != EndpointSharedHTTP || eps[1] != (Endpoint{EndpointLeasedIP, 1}) {
				t.Errorf("Endpoints = %+v", eps)
			}
		}},
		{name: "ip without global", over: map[string]string{"expose": "      - port: 80\n        to:\n          - global: true\n          - ip: myip", "top": "endpoints:\n  myip:\n    kind: ip"}, want: "must also set global: true"},
		{name: "unknown endpoint", over: map[string]string{"expose": ipExpose}, want: `no endpoint named "myip"`},
		{name: "endpoint unused", over: map[string]string{"top": "endpoints:\n  myip:\n    kind: ip"}, want: "endpoint declared but never used"},
		{name: "endpoint bad kind", over: map[string]string{"expose": ipExpose, "top": "endpoints:\n  myip:\n    kind: dns"}, want: "unknown endpoint kind"},
		{name: "endpoint bad name", over: map[string]string{"expose": "      - port: 80\n        to:\n          - global: true\n            ip: MyIP", "top": "endpoints:\n  MyIP:\n    kind: ip"}, want: "endpoint name must be lower-case"},
		{name: "ip port collision", over: map[string]string{"expose": ipExpose + "\n      - port: 81\n        to:\n          - global: true\n            ip: myip", "top": "endpoints:\n  myip:\n    kind: ip"}, want: "give each expose on the same IP a distinct `as`"},
	})
}

// TestDeploymentShape covers references between sections and the group
// limits, with SDLs built in code.
func TestDeploymentShape(t *testing.T) {
	multi := func(version string, placements, services int, sameProfile bool) string {
		var b strings.Builder
		fmt.Fprintf(&b, "version: %q\nservices:\n", version)
		for s := 0; s < services; s++ {
			fmt.Fprintf(&b, "  s%d:\n    image: nginx\n    expose:\n      - port: 80\n        to:\n          - global: true\n", s)
		}
		b.WriteString("profiles:\n  compute:\n")
		for s := 0; s < services; s++ {
			fmt.Fprintf(&b, "    c%d:\n      resources:\n        cpu: {units: 1}\n        memory: {size: 1Gi}\n        storage: {size: 1Gi}\n", s)
		}
		b.WriteString("  placement:\n")
		for p := 0; p < placements; p++ {
			fmt.Fprintf(&b, "    p%d:\n      pricing:\n", p)
			for s := 0; s < services; s++ {
				fmt.Fprintf(&b, "        c%d: {denom: uact, amount: 100}\n", s)
			}
		}
		b.WriteString("deployment:\n")
		for s := 0; s < services; s++ {
			fmt.Fprintf(&b, "  s%d:\n", s)
			for p := 0; p < placements; p++ {
				prof := s
				if sameProfile {
					prof = 0
				}
				fmt.Fprintf(&b, "    p%d: {profile: c%d, count: 1}\n", p, prof)
			}
		}
		return b.String()
	}
	tests := []struct {
		name   string
		src    string
		want   string
		groups int
		units  int
	}{
		{name: "20 groups", src: multi("2.0", 20, 1, false), groups: 20, units: 1},
		{name: "21 groups", src: multi("2.0", 21, 1, false), want: "at most 20 groups"},
		{name: "20 units", src: multi("2.0", 1, 20, false), groups: 1, units: 20},
		{name: "21 units", src: multi("2.0", 1, 21, false), want: "at most 20 resource units"},
		{name: "2.0 one unit per service", src: multi("2.0", 1, 3, true), groups: 1, units: 3},
		{name: "2.1 merges a shared profile", src: multi("2.1", 1, 3, true), groups: 1, units: 1},
		{name: "2.1 21 services sharing a profile", src: multi("2.1", 1, 21, true), groups: 1, units: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse([]byte(tc.src))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Parse(%s) = %v, want error containing %q", tc.name, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%s) = %v, want accepted", tc.name, err)
			}
			if len(res.Groups) != tc.groups || len(res.Groups[0].Resources) != tc.units {
				t.Fatalf("Parse(%s) = %d groups, %d units; want %d, %d", tc.name, len(res.Groups), len(res.Groups[0].Resources), tc.groups, tc.units)
			}
			if tc.name == "2.1 merges a shared profile" {
				if c := res.Groups[0].Resources[0].Count; c != 3 {
					t.Errorf("merged Count = %d, want 3", c)
				}
				for _, s := range res.Manifest.Groups[0].Services {
					if s.Resources.ID != 1 || s.Count != 1 {
						t.Errorf("service %s: resources ID %d count %d", s.Name, s.Resources.ID, s.Count)
					}
				}
			}
		})
	}

	bad := []struct{ name, from, to, want string }{
		{"unknown service", "deployment:\n  web:", "deployment:\n  api:", `no service named "api"`},
		{"unknown profile", "      profile: web", "      profile: big", `no compute profile named "big"`},
		{"unknown placement", "  web:\n    dc:\n      profile", "  web:\n    eu:\n      profile", `no placement profile named "eu"`},
		{"no price for profile", "      pricing:\n        web:", "      pricing:\n        other:", `no price for compute profile "web"`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(makeSDL(nil), tc.from, tc.to, 1)
			_, err := Parse([]byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%s) = %v, want error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestServiceNameMustBeDNSLabel(t *testing.T) {
	src := strings.Replace(strings.Replace(makeSDL(nil), "services:\n  web:", "services:\n  Web:", 1), "deployment:\n  web:", "deployment:\n  Web:", 1)
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "service name must be lower-case") {
		t.Fatalf("Parse(Web) = %v, want service name error", err)
	}
}

func TestMixedDenominations(t *testing.T) {
	src := `version: "2.0"
services:
  a: {image: nginx, expose: [{port: 80, to: [{global: true}]}]}
  b: {image: nginx}
profiles:
  compute:
    c: {resources: {cpu: {units: 1}, memory: {size: 1Gi}, storage: {size: 1Gi}}}
  placement:
    p1: {pricing: {c: {denom: uact, amount: 1}}}
    p2: {pricing: {c: {denom: uakt, amount: 1}}}
deployment:
  a: {p1: {profile: c, count: 1}}
  b: {p2: {profile: c, count: 1}}
`
	_, err := Parse([]byte(src))
	if err == nil || !strings.Contains(err.Error(), "all prices must use one denomination") {
		t.Fatalf("Parse(mixed denoms) = %v, want denomination error", err)
	}
}

func TestNullPlacementAttributes(t *testing.T) {
	src := strings.Replace(makeSDL(nil), "      attributes:\n        region: us-west", "      attributes:", 1)
	res, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(null attributes) = %v, want accepted", err)
	}
	if a := res.Groups[0].Requirements.Attributes; len(a) != 0 {
		t.Errorf("Attributes = %v, want none", a)
	}
}

// TestAllErrorsReported checks that one file's problems are all reported,
// each with line, column, path and value.
func TestAllErrorsReported(t *testing.T) {
	src := makeSDL(map[string]string{"cpu": "9m", "memory": "1Gx", "count": "51", "amount": "0"})
	_, err := Parse([]byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse = %v, want ErrorList", err)
	}
	wants := []string{"cpu.units", "memory.size", "pricing.web.amount", "deployment.web.dc.count"}
	for _, w := range wants {
		found := false
		for _, e := range list {
			if strings.HasSuffix(e.Path, w) && e.Line > 0 && e.Column > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("Parse errors = %v, want one at %s with a position", list, w)
		}
	}
	for _, e := range list {
		if e.Path == "profiles.compute.web.resources.memory.size" && (e.Line != 17 || e.Column != 17 || e.Value != "1Gx") {
			t.Errorf("memory error at %d:%d value %q, want 17:17 \"1Gx\"", e.Line, e.Column, e.Value)
		}
	}
}

func TestSyntaxAndShapeErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"stray -- before the document", "--\n" + makeSDL(nil), "invalid YAML"},
		{"empty", "", "empty document"},
		{"comment only", "# nothing\n", "empty document"},
		{"scalar document", "hello", "must be a mapping"},
		{"duplicate key", makeSDL(nil) + "\nservices: {}\n", `mapping key "services" already defined`},
		{"no version", strings.Replace(makeSDL(nil), `version: "2.0"`, "", 1), "no version found"},
		{"no deployment", strings.Split(makeSDL(nil), "deployment:")[0], "no service is deployed"},
		{"tab indentation", "version: \"2.0\"\nservices:\n\tweb: {}\n", "invalid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v, want error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestAliasBomb checks that exponential alias expansion is cut off quickly.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x0: &x0 {image: nginx}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "x%d: &x%d {<<: [*x%d, *x%d]}\n", i, i, i-1, i-1)
	}
	src := "version: '2.0'\n" + b.String() + "<<: *x40\n"
	start := time.Now()
	_, err := Parse([]byte(src))
	// 2s: far above the milliseconds it takes, far below 2^40 steps.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Parse(alias bomb) took %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "document too complex") {
		t.Errorf("Parse(alias bomb) = %v, want too complex", err)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	src := `version: "2.0"
services:
  web:
    image: nginx
    expose: &http
      - port: 80
        to: [{global: true}]
  api:
    image: nginx
    expose: *http
profiles:
  compute:
    base: &base
      resources:
        cpu: {units: 1}
        memory: {size: 1Gi}
        storage: {size: 1Gi}
    other:
      <<: *base
  placement:
    dc: {pricing: {base: {denom: uact, amount: 10}, other: {denom: uact, amount: 10}}}
deployment:
  web: {dc: {profile: base, count: 1}}
  api: {dc: {profile: other, count: 2}}
`
	res, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(anchors) = %v, want accepted", err)
	}
	if u := res.Groups[0].Resources; len(u) != 2 || u[0].CPUMilli != 1000 || u[0].Count != 2 {
		t.Errorf("Resources = %+v", u)
	}
}

func TestConvertPrice(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		in   Coin
		want string
	}{
		{Coin{"uact", "6098"}, "1000"},
		{Coin{"uakt", "1000"}, "163.988192850114791735"},
		{Coin{"ukiln", "5"}, "5"},
		{Coin{"uact", "0.000000000000000001"}, "0"},
	}
	for _, tc := range tests {
		got, err := cfg.ConvertPrice(tc.in)
		if err != nil || got.Amount != tc.want || got.Denom != KilnDenom {
			t.Errorf("ConvertPrice(%v) = %v, %v, want %s ukiln", tc.in, got, err, tc.want)
		}
	}
	// Same price per hour on both chains, for any block times.
	cfg.AkashBlockTime, cfg.KilnBlockTime = 6*time.Second, 2*time.Second
	got, _ := cfg.ConvertPrice(Coin{"uact", "300"})
	perHourAkash := new(big.Rat).Mul(big.NewRat(300, 1), big.NewRat(3600, 6))
	kiln, _ := new(big.Rat).SetString(got.Amount)
	perHourKiln := new(big.Rat).Mul(kiln, big.NewRat(3600, 2))
	if perHourAkash.Cmp(perHourKiln) != 0 {
		t.Errorf("per hour: akash %v, kiln %v", perHourAkash, perHourKiln)
	}
	if _, err := cfg.ConvertPrice(Coin{"uatom", "1"}); err == nil {
		t.Errorf("ConvertPrice(uatom) = nil error, want no rate")
	}
	bad := DefaultConfig()
	bad.Rates = map[string]string{"uact": "-1"}
	if err := bad.Validate(); err == nil {
		t.Errorf("Validate(negative rate) = nil, want error")
	}
}
