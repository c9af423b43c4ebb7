// Package catalog wires every verifiable workload into one units.Registry: the one place a
// verifier (or `kiln work verify`) re-executes any unit of any workload.
package catalog

import (
	"github.com/kiln-network/kiln/work/matmul"
	"github.com/kiln-network/kiln/work/render"
	"github.com/kiln-network/kiln/work/train"
	"github.com/kiln-network/kiln/work/units"
)

// Registry returns the registry of Kiln's workloads (render, train, matmul), with
// Blender and Python found on PATH.
func Registry() *units.Registry {
	return units.NewRegistry(render.Workload{}, train.Workload{}, matmul.Workload{})
}
