// Package inventory reads the hardware inventory file a provider operator writes (TOML or JSON) into the registry's Inventory.
package inventory

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/kiln-network/kiln/quantity"
	"github.com/kiln-network/kiln/x/registry"
)

// inventoryFile is the on-disk form an operator writes (TOML or JSON), with sizes as
// strings with units.
type inventoryFile struct {
	Source     string            `toml:"source" json:"source"`
	Region     string            `toml:"region" json:"region"`
	CPUCores   uint64            `toml:"cpu_cores" json:"cpu_cores"`
	Memory     string            `toml:"memory" json:"memory"`
	Storage    string            `toml:"storage" json:"storage"`
	GPUs       []gpuFile         `toml:"gpus" json:"gpus"`
	Attributes map[string]string `toml:"attributes" json:"attributes"`
	Runtime    *runtimeFile      `toml:"runtime" json:"runtime"`
}

type runtimeFile struct {
	Executor   string `toml:"executor" json:"executor"`
	Containers bool   `toml:"containers" json:"containers"`
	GPUs       bool   `toml:"gpus" json:"gpus"`
}

type gpuFile struct {
	Model     string `toml:"model" json:"model"`
	Memory    string `toml:"memory" json:"memory"`
	Interface string `toml:"interface" json:"interface"`
	Count     uint32 `toml:"count" json:"count"`
}

// Load reads an inventory from a TOML (.toml) or JSON (.json) file and
// validates it. A missing source means "declared".
func Load(path string) (registry.Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return registry.Inventory{}, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(b, filepath.Ext(path))
}

// Parse parses an inventory file's bytes, ext selecting the format (.json,
// else TOML), refusing unknown fields, and validates the inventory
// (registry.Inventory.Validate). A missing source means "declared"; a missing
// [runtime], registry.DefaultRuntime.
func Parse(b []byte, ext string) (registry.Inventory, error) {
	var f inventoryFile
	if ext == ".json" {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return registry.Inventory{}, fmt.Errorf("inventory: %w", err)
		}
	} else {
		md, err := toml.Decode(string(b), &f)
		if err != nil {
			return registry.Inventory{}, fmt.Errorf("inventory: %w", err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return registry.Inventory{}, fmt.Errorf("inventory: unknown field %q", und[0].String())
		}
	}
	inv := registry.Inventory{Source: f.Source, Region: f.Region, CPUCores: f.CPUCores, Runtime: registry.DefaultRuntime()}
	if f.Runtime != nil {
		inv.Runtime = registry.Runtime(*f.Runtime)
	}
	if inv.Source == "" {
		inv.Source = "declared"
	}
	var err error
	if inv.MemoryBytes, err = quantity.ParseBytes(f.Memory); err != nil {
		return inv, fmt.Errorf("inventory.memory: %w (got %q)", err, f.Memory)
	}
	if inv.StorageBytes, err = quantity.ParseBytes(f.Storage); err != nil {
		return inv, fmt.Errorf("inventory.storage: %w (got %q)", err, f.Storage)
	}
	for i, g := range f.GPUs {
		mem, err := quantity.ParseBytes(g.Memory)
		if err != nil {
			return inv, fmt.Errorf("inventory.gpus[%d].memory: %w (got %q)", i, err, g.Memory)
		}
		inv.GPUs = append(inv.GPUs, registry.GPU{Model: g.Model, MemoryBytes: mem, Interface: g.Interface, Count: g.Count})
	}
	for k, v := range f.Attributes {
		inv.Attributes = append(inv.Attributes, registry.Attribute{Key: k, Value: v})
	}
	sort.Slice(inv.Attributes, func(i, j int) bool { return inv.Attributes[i].Key < inv.Attributes[j].Key })
	return inv, inv.Validate()
}
