// Package tenant is the tenant's side of Kiln: it turns a Kiln spec or an Akash SDL file
// into orders, places them, follows bids and leases, and talks to the provider over
// mutual TLS to send the manifest and inputs and fetch outputs.
package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/kiln-network/kiln/client"
	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/sdl"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// Plan is one order and what to run on its lease.
type Plan struct {
	Name         string
	Kind         string
	Groups       []market.Group
	Manifest     api.Manifest
	MaxPrice     uint64 // ukiln per block, whole order
	Deposit      types.Coin
	Manual       bool
	AutoRedeploy bool
	// Inputs are local files uploaded before the manifest is sent.
	Inputs []string
	// Images maps a service name to a local `docker save` archive, uploaded
	// before the manifest; the service's image is then the loaded image's ID.
	Images map[string]string
	// Source is "kiln" or "sdl".
	Source string
}

// DefaultDepositBlocks is how many blocks at max price a deposit covers when the spec
// names none: 600 one-second blocks, ten minutes.
const DefaultDepositBlocks = 600

// Spec is the Kiln YAML deployment spec: an order (client.OrderSpec: kind, max_price,
// deposit, groups) plus the services to run on its lease and the inputs to upload.
//
//	kind: batch
//	max_price: 5000ukiln          # per block, whole order
//	groups:
//	  - name: main
//	    cpu: "1"
//	    memory: 256Mi
//	    storage: 1Gi
//	    gpu: {units: 1, models: [{model: h100}]}
//	services:
//	  - name: job
//	    group: main               # default: the only group
//	    command: [sh, -c, 'tr a-z A-Z < $KILN_IN/in.txt > $KILN_OUT/out.txt']
//	    env: {GREETING: hello}
//	    expose: [{port: 8080}]    # service leases: reached through the provider's ingress
//	    # image_archive: job.tar  # `docker save` output, uploaded as this service's image
//	    # image: ghcr.io/acme/job@sha256:…  # or an image pinned by digest
//	    # user: "1000:1000"       # default: the image's USER, else 65534:65534
//	inputs: [in.txt]              # relative to the spec file
type Spec struct {
	client.OrderSpec `yaml:",inline"`
	Services         []ServiceSpec `yaml:"services"`
	Inputs           []string      `yaml:"inputs"`
}

// ServiceSpec is one service of a Spec.
type ServiceSpec struct {
	Name  string `yaml:"name"`
	Group string `yaml:"group"`
	Image string `yaml:"image"`
	// ImageArchive is a `docker save` archive of one image, relative to the spec
	// file, uploaded to the provider before the manifest; it replaces Image.
	ImageArchive string            `yaml:"image_archive"`
	Command      []string          `yaml:"command"`
	Args         []string          `yaml:"args"`
	Env          map[string]string `yaml:"env"`
	// User runs the service's containers as "uid[:gid]" or "name[:group]";
	// empty: the image's USER, else the provider's unprivileged default.
	User   string `yaml:"user"`
	Count  uint32 `yaml:"count"` // default: the group's count
	Expose []struct {
		Port uint32 `yaml:"port"`
	} `yaml:"expose"`
}

// Load reads a Kiln spec or an Akash SDL file (told apart by SDL's top-level
// `version`, `profiles` or `deployment`) and returns its plans and any warnings.
func Load(path string) ([]Plan, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(b, &top); err != nil {
		return nil, nil, fmt.Errorf("%s: not valid YAML: %w", path, err)
	}
	// An SDL file has version/profiles/deployment; a Kiln spec has groups instead.
	_, hasVersion := top["version"]
	_, hasProfiles := top["profiles"]
	_, hasDeployment := top["deployment"]
	if hasVersion || hasProfiles || hasDeployment {
		return loadSDL(path, b)
	}
	p, err := parseSpec(b, filepath.Dir(path))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return []Plan{p}, nil, nil
}

func parseSpec(b []byte, dir string) (Plan, error) {
	var sp Spec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&sp); err != nil {
		return Plan{}, err
	}
	if len(sp.Groups) == 0 {
		return Plan{}, errors.New("groups: at least one group is required")
	}
	if sp.MaxPrice == "" {
		return Plan{}, errors.New("max_price: required, e.g. 5000ukiln per block")
	}
	msg, err := sp.OrderSpec.Msg(types.Address{1}, types.NativeDenom)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Kind: msg.Kind, Groups: msg.Groups, MaxPrice: msg.MaxPrice, Manual: msg.Manual, AutoRedeploy: msg.AutoRedeploy, Source: "kiln"}
	p.Name = msg.Groups[0].Name
	if p.Deposit, err = deposit(sp.Deposit, msg.MaxPrice); err != nil {
		return Plan{}, err
	}
	if len(sp.Services) == 0 {
		return Plan{}, errors.New("services: at least one service is required")
	}
	for i, ss := range sp.Services {
		f := fmt.Sprintf("services[%d]", i)
		gi := -1
		for j, g := range msg.Groups {
			if g.Name == ss.Group || (ss.Group == "" && len(msg.Groups) == 1) {
				gi = j
			}
		}
		if gi < 0 {
			return Plan{}, fmt.Errorf("%s.group: %q is not one of the order's groups", f, ss.Group)
		}
		g := msg.Groups[gi]
		if len(ss.Command) == 0 && ss.Image == "" && ss.ImageArchive == "" {
			return Plan{}, fmt.Errorf("%s: command, image or image_archive is required", f)
		}
		if ss.Image != "" && ss.ImageArchive != "" {
			return Plan{}, fmt.Errorf("%s.image_archive: set image or image_archive, not both", f)
		}
		svc := api.Service{Name: ss.Name, Image: ss.Image, Command: ss.Command, Args: ss.Args, Count: ss.Count,
			Resources: api.ServiceResources{Unit: uint32(gi + 1), CPUMilli: g.CPUMilli, MemoryBytes: g.MemoryBytes, StorageBytes: g.StorageBytes, GPUUnits: g.GPU.Units}}
		if svc.Name == "" {
			svc.Name = g.Name
		}
		if svc.Count == 0 {
			svc.Count = g.Count
		}
		keys := make([]string, 0, len(ss.Env))
		for k := range ss.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			svc.Env = append(svc.Env, k+"="+ss.Env[k])
		}
		for _, e := range ss.Expose {
			svc.Expose = append(svc.Expose, api.Expose{Port: e.Port, Global: true, Proto: "tcp"})
		}
		svc.User = ss.User
		if ss.ImageArchive != "" {
			path := ss.ImageArchive
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			if _, err := os.Stat(path); err != nil {
				return Plan{}, fmt.Errorf("%s.image_archive: %w", f, err)
			}
			if p.Images == nil {
				p.Images = map[string]string{}
			}
			p.Images[svc.Name] = path
		}
		p.Manifest.Services = append(p.Manifest.Services, svc)
	}
	// NB: a service with an archive has its image only once it is uploaded;
	// validate as if it had one.
	check := p.Manifest
	check.Services = append([]api.Service(nil), p.Manifest.Services...)
	for i, s := range check.Services {
		if _, ok := p.Images[s.Name]; ok {
			check.Services[i].Image = "sha256:uploaded"
		}
	}
	if err := check.Validate(); err != nil {
		return Plan{}, err
	}
	for _, in := range sp.Inputs {
		path := in
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, in)
		}
		if _, err := os.Stat(path); err != nil {
			return Plan{}, fmt.Errorf("inputs: %w", err)
		}
		p.Inputs = append(p.Inputs, path)
	}
	return p, nil
}

func deposit(s string, maxPrice uint64) (types.Coin, error) {
	if s == "" {
		return types.NewCoin(types.NativeDenom, maxPrice*DefaultDepositBlocks), nil
	}
	c, err := types.ParseCoin(s)
	if err != nil || c.Denom != types.NativeDenom || c.Amount == 0 {
		return c, fmt.Errorf("deposit: want a positive amount of ukiln like 1000000ukiln (got %q)", s)
	}
	return c, nil
}

// loadSDL converts each SDL placement group into one order.
func loadSDL(path string, b []byte) ([]Plan, []string, error) {
	res, err := sdl.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, fmt.Sprintf("%s: %v", path, w))
	}
	kind := market.KindService // Akash deployments run until closed
	var plans []Plan
	for _, og := range res.Groups {
		p := Plan{Name: og.Name, Kind: kind, Source: "sdl"}
		units := append([]sdl.ResourceUnit(nil), og.Resources...)
		sort.Slice(units, func(i, j int) bool { return units[i].ID < units[j].ID })
		for i, u := range units {
			if u.ID != uint32(i+1) {
				return nil, warnings, fmt.Errorf("%s: group %s: resource unit ids are not 1..n", path, og.Name)
			}
			g := market.Group{Name: fmt.Sprintf("unit-%d", u.ID), Count: u.Count, CPUMilli: u.CPUMilli, MemoryBytes: u.MemoryBytes}
			for _, st := range u.Storage {
				if st.Class != "ram" { // shm comes out of memory, not disk
					g.StorageBytes += st.Bytes
				}
			}
			g.GPU.Units = u.GPU.Units
			for _, m := range u.GPU.Models {
				g.GPU.Models = append(g.GPU.Models, market.GPUFilter{Model: m.Model, MemoryBytes: m.RAMBytes, Interface: m.Interface})
			}
			for _, a := range og.Requirements.Attributes {
				if a.Key == "region" {
					g.Region = a.Value
					continue
				}
				g.Attributes = append(g.Attributes, registry.Attribute{Key: a.Key, Value: a.Value})
			}
			amt, err := strconv.ParseFloat(u.Price.Amount, 64)
			if err != nil || amt < 0 {
				return nil, warnings, fmt.Errorf("%s: group %s unit %d: price %q", path, og.Name, u.ID, u.Price.Amount)
			}
			per := uint64(amt + 0.999999) // round up: a price is a ceiling
			if per == 0 {
				per = 1
			}
			p.MaxPrice += per * uint64(u.Count)
			p.Groups = append(p.Groups, g)
		}
		p.Deposit = types.NewCoin(types.NativeDenom, p.MaxPrice*DefaultDepositBlocks)
		m, err := api.FromSDL(res.Manifest, og.Name)
		if err != nil {
			return nil, warnings, err
		}
		p.Manifest = m
		plans = append(plans, p)
	}
	if len(plans) == 0 {
		return nil, warnings, fmt.Errorf("%s: no deployment groups", path)
	}
	return plans, warnings, nil
}
