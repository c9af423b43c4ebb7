package market

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-network/kiln/types"
)

// Queries show a CPU-only lease without a phantom GPU, keep positions for mixed
// orders, and decode back into the Lease they show.
func TestShowLeaseGPUs(t *testing.T) {
	h100 := GPUSpec{Model: "h100", MemoryBytes: 80 << 30, Interface: "sxm"}
	tests := []struct {
		name string
		gpus []GPUSpec
		want string // the "gpus" member, "" for none
	}{
		{"cpu only", []GPUSpec{{}}, ""},
		{"two cpu-only groups", []GPUSpec{{}, {}}, ""},
		{"no groups recorded", nil, ""},
		{"one gpu group", []GPUSpec{h100}, `"gpus":[{"model":"h100","memory_bytes":"85899345920","interface":"sxm"}]`},
		{"gpu then cpu group", []GPUSpec{h100, {}}, `"gpus":[{"model":"h100","memory_bytes":"85899345920","interface":"sxm"},null]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := Lease{ID: 3, Owner: types.Address{1}, Provider: types.Address{2}, GPUs: tt.gpus, State: LeaseActive}
			b, err := json.Marshal(ShowLease(l))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if i := strings.Index(string(b), `"gpus":[`); i >= 0 {
				got = string(b[i : i+strings.Index(string(b[i:]), "]")+1])
			}
			if got != tt.want || strings.Contains(string(b), `"model":""`) {
				t.Fatalf("ShowLease(GPUs %+v) = %s\nwant gpus %q", tt.gpus, b, tt.want)
			}
			var back Lease
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			wantBack := tt.gpus
			if tt.want == "" {
				wantBack = nil
			}
			if !reflect.DeepEqual(back.GPUs, wantBack) || back.ID != 3 || back.Provider != l.Provider {
				t.Fatalf("decoded %+v, want GPUs %+v", back, wantBack)
			}
		})
	}
}
