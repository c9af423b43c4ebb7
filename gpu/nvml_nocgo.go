//go:build !cgo

package gpu

import (
	"context"
	"fmt"
)

// NVML is unavailable in builds without cgo: go-nvml needs cgo to dlopen the
// driver. Detect then goes straight to nvidia-smi. No value satisfies this
// interface.
type NVML interface{ nvmlNeedsCgo() }

const nvmlAvailable = false

func defaultNVML() NVML { return nil }

func detectNVML(context.Context, NVML) (Inventory, error) {
	return Inventory{}, fmt.Errorf("nvml: %w (binary built without cgo, NVML not available)", ErrNoDriver)
}
