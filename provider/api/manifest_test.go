package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckManifest(t *testing.T) {
	order := []ResourceUnit{
		{ID: 1, Count: 2, CPUMilli: 1000, MemoryBytes: 1 << 30, StorageBytes: 1 << 30, GPUUnits: 1},
		{ID: 2, Count: 1, CPUMilli: 500, MemoryBytes: 512 << 20},
	}
	svc := func(name string, unit, count uint32, r ServiceResources) Service {
		r.Unit = unit
		return Service{Name: name, Image: "busybox", Count: count, Resources: r}
	}
	small := ServiceResources{CPUMilli: 500, MemoryBytes: 256 << 20}
	for _, tc := range []struct {
		name    string
		m       Manifest
		field   string // "" means accepted
		exceeds bool
	}{
		{"fits", Manifest{Services: []Service{svc("web", 1, 2, small), svc("db", 2, 1, small)}}, "", false},
		{"gpu fits", Manifest{Services: []Service{svc("ml", 1, 1, ServiceResources{GPUUnits: 1})}}, "", false},
		{"cpu over", Manifest{Services: []Service{svc("web", 2, 1, ServiceResources{CPUMilli: 600})}}, "resources.cpu_milli", true},
		{"memory over", Manifest{Services: []Service{svc("web", 1, 1, ServiceResources{MemoryBytes: 2 << 30})}}, "resources.memory_bytes", true},
		{"storage over", Manifest{Services: []Service{svc("web", 2, 1, ServiceResources{StorageBytes: 1})}}, "resources.storage_bytes", true},
		{"gpu over", Manifest{Services: []Service{svc("web", 1, 1, ServiceResources{GPUUnits: 2})}}, "resources.gpu_units", true},
		{"count over", Manifest{Services: []Service{svc("a", 1, 1, small), svc("b", 1, 2, small)}}, "count", true},
		{"unknown unit", Manifest{Services: []Service{svc("web", 9, 1, small)}}, "resources.unit", true},
		{"unit needed", Manifest{Services: []Service{svc("web", 0, 1, small)}}, "resources.unit", false},
		{"no services", Manifest{}, "services", false},
		{"bad name", Manifest{Services: []Service{svc("Web_1", 1, 1, small)}}, "name", false},
		{"duplicate", Manifest{Services: []Service{svc("a", 1, 1, small), svc("a", 1, 1, small)}}, "name", false},
		{"zero count", Manifest{Services: []Service{svc("a", 1, 0, small)}}, "count", false},
		{"no program", Manifest{Services: []Service{{Name: "a", Count: 1, Resources: ServiceResources{Unit: 1}}}}, "image", false},
		{"bad port", Manifest{Services: []Service{{Name: "a", Image: "x", Count: 1, Resources: ServiceResources{Unit: 1}, Expose: []Expose{{Port: 70000}}}}}, "expose[0].port", false},
		{"bad env", Manifest{Services: []Service{{Name: "a", Image: "x", Count: 1, Resources: ServiceResources{Unit: 1}, Env: []string{"=x"}}}}, "env", false},
		{"user", Manifest{Services: []Service{{Name: "a", Image: "x", Count: 1, Resources: ServiceResources{Unit: 1}, User: "1000:1000"}}}, "", false},
		{"bad user", Manifest{Services: []Service{{Name: "a", Image: "x", Count: 1, Resources: ServiceResources{Unit: 1}, User: "1000:"}}}, "user", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckManifest(tc.m, order)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("CheckManifest() = %v, want nil", err)
				}
				return
			}
			var me *ManifestError
			if !errors.As(err, &me) || me.Field != tc.field || me.Exceeds != tc.exceeds {
				t.Fatalf("CheckManifest() = %#v, want field %s exceeds=%v", err, tc.field, tc.exceeds)
			}
			if tc.exceeds && !strings.Contains(err.Error(), "asks") && !strings.Contains(err.Error(), "order") {
				t.Errorf("CheckManifest() = %q, want asked against ordered", err)
			}
		})
	}
}

func FuzzCheckManifestJSON(f *testing.F) {
	f.Add([]byte(`{"services":[{"name":"a","image":"x","count":1,"resources":{"cpu_milli":1}}]}`))
	order := []ResourceUnit{{ID: 1, Count: 4, CPUMilli: 1000, MemoryBytes: 1 << 30}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if json.Unmarshal(b, &m) != nil {
			return
		}
		CheckManifest(m, order) // must not panic
	})
}

func TestUnitID(t *testing.T) {
	for i := range 3 {
		id := UnitID(i)
		if id != uint32(i+1) {
			t.Errorf("UnitID(%d) = %d, want %d", i, id, i+1)
		}
		if g, ok := GroupIndex(id); !ok || g != i {
			t.Errorf("GroupIndex(UnitID(%d)) = %d, %v", i, g, ok)
		}
	}
	if _, ok := GroupIndex(0); ok {
		t.Errorf("GroupIndex(0) = ok, want no group")
	}
}
