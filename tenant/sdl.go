package tenant

import (
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/sdl"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
	"github.com/kiln-network/kiln/x/registry"
)

// loadSDL converts each SDL placement group into one order and its manifest.
func loadSDL(path string, b []byte) ([]Plan, []string, error) {
	res, err := sdl.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, fmt.Sprintf("%s: %v", path, w))
	}
	var plans []Plan
	for _, og := range res.Groups {
		p, err := sdlPlan(og, res.Manifest)
		if err != nil {
			return nil, warnings, fmt.Errorf("%s: %w", path, err)
		}
		if r := res.Reclamation; r != nil {
			p.ReclaimMinWindowSeconds = r.MinWindowSeconds
		}
		plans = append(plans, p)
	}
	if len(plans) == 0 {
		return nil, warnings, fmt.Errorf("%s: no deployment groups", path)
	}
	return plans, warnings, nil
}

// sdlPlan turns one SDL order group and its part of the manifest into a Plan: each
// resource unit becomes the order group api.GroupIndex names (sdlGroup), and each service runs in its unit with
// the resources of that order group (serviceResources), so that what the manifest
// asks and what the order buys are one conversion and cannot disagree.
func sdlPlan(og sdl.OrderGroup, m sdl.Manifest) (Plan, error) {
	p := Plan{Name: og.Name, Kind: market.KindService, Source: "sdl", TEE: og.TEE} // Akash deployments run until closed
	policy, reqs, err := sdlClusterAttr(og.Requirements)
	if err != nil {
		return Plan{}, fmt.Errorf("group %s: %w", og.Name, err)
	}
	og.Requirements = reqs
	units := slices.Clone(og.Resources)
	sort.Slice(units, func(i, j int) bool { return units[i].ID < units[j].ID })
	for i, u := range units {
		if u.ID != api.UnitID(i) {
			return Plan{}, fmt.Errorf("group %s: resource unit ids are not 1..n (unit %d at position %d)", og.Name, u.ID, i+1)
		}
		g, err := sdlGroup(u, og.Requirements)
		if err != nil {
			return Plan{}, fmt.Errorf("group %s unit %d: %w", og.Name, u.ID, err)
		}
		per, err := sdlUnitPrice(u.Price)
		if err != nil {
			return Plan{}, fmt.Errorf("group %s unit %d: %w", og.Name, u.ID, err)
		}
		hi, total := bits.Mul64(per, uint64(u.Count))
		sum, carry := bits.Add64(p.MaxPrice, total, 0)
		if hi != 0 || carry != 0 {
			return Plan{}, fmt.Errorf("group %s unit %d: price %s ukiln x count %d overflows the order's max price", og.Name, u.ID, u.Price.Amount, u.Count)
		}
		p.MaxPrice = sum
		p.Groups = append(p.Groups, g)
	}
	if policy != "" {
		if err := sdlCluster(&p, policy); err != nil {
			return Plan{}, fmt.Errorf("group %s: %w", og.Name, err)
		}
	}
	if p.Deposit, err = deposit("", p.MaxPrice); err != nil {
		return Plan{}, fmt.Errorf("group %s: %w", og.Name, err)
	}
	// NB: the owner is a placeholder; the order is checked here so that what the chain
	// would refuse is refused before anything is sent.
	if err := p.Msg(types.Address{1}).ValidateBasic(); err != nil {
		return Plan{}, fmt.Errorf("group %s: the order cannot be placed: %w", og.Name, err)
	}
	if p.Manifest, err = sdlManifest(m, og.Name, p.Groups); err != nil {
		return Plan{}, err
	}
	if p.Cluster != nil {
		// NB: each member runs one instance of the service.
		for i := range p.Manifest.Services {
			p.Manifest.Services[i].Count = 1
		}
	}
	return p, nil
}

// SDLClusterAttribute is the placement attribute that makes an SDL placement group a
// GPU cluster: `attributes: {kiln-cluster: refund}` (or replace, the failure policy).
// Its one service's count is then the cluster's members, each a machine of its own
// that may land on another provider, instead of count instances on one provider.
// Akash's own parser reads it as any other attribute, so the file stays a valid SDL;
// without it `count > 1` keeps its Akash meaning.
const SDLClusterAttribute = "kiln-cluster"

// sdlClusterAttr takes the kiln-cluster attribute out of a placement's
// requirements: its policy ("" when absent) and the other requirements.
func sdlClusterAttr(reqs sdl.Requirements) (string, sdl.Requirements, error) {
	policy := ""
	out := reqs
	out.Attributes = nil
	for _, a := range reqs.Attributes {
		if a.Key != SDLClusterAttribute {
			out.Attributes = append(out.Attributes, a)
			continue
		}
		if a.Value != market.FailRefund && a.Value != market.FailReplace {
			return "", reqs, fmt.Errorf("placement attribute %s: %q: must be refund or replace (what happens when a member's provider fails)", SDLClusterAttribute, a.Value)
		}
		policy = a.Value
	}
	return policy, out, nil
}

// sdlCluster turns plan p (one SDL placement group) into a cluster: its one resource
// unit's count becomes the members.
func sdlCluster(p *Plan, policy string) error {
	if len(p.Groups) != 1 {
		return fmt.Errorf("placement attribute %s: a cluster runs one service, each member on a machine of its own (this group has %d resource units)", SDLClusterAttribute, len(p.Groups))
	}
	g := &p.Groups[0]
	if g.Count < 2 {
		return fmt.Errorf("placement attribute %s: the service's count is the cluster's members: must be at least 2 (got %d)", SDLClusterAttribute, g.Count)
	}
	p.Cluster = &market.Cluster{Members: g.Count, GPUsPerMember: g.GPU.Units, OnMemberFailure: policy}
	g.Count = 1
	return nil
}

// sdlGroup is the one place an SDL resource unit becomes Kiln resources: the order
// group a provider reserves, and through serviceResources what each instance of a
// service in the unit may use. Storage is the unit's disk: every volume but the
// memory-backed (class ram, /dev/shm) ones, which come out of the unit's memory.
func sdlGroup(u sdl.ResourceUnit, reqs sdl.Requirements) (market.Group, error) {
	g := market.Group{Name: fmt.Sprintf("unit-%d", u.ID), Count: u.Count, CPUMilli: u.CPUMilli, MemoryBytes: u.MemoryBytes}
	for _, st := range u.Storage {
		if st.Class == "ram" {
			continue
		}
		s, carry := bits.Add64(g.StorageBytes, st.Bytes, 0)
		if carry != 0 {
			return g, fmt.Errorf("storage: volumes add up to more than %d bytes", uint64(1<<64-1))
		}
		g.StorageBytes = s
	}
	g.GPU.Units = u.GPU.Units
	for _, m := range u.GPU.Models {
		g.GPU.Models = append(g.GPU.Models, market.GPUFilter{Model: m.Model, MemoryBytes: m.RAMBytes, Interface: m.Interface})
	}
	for _, a := range reqs.Attributes {
		if a.Key == "region" {
			g.Region = a.Value
			continue
		}
		g.Attributes = append(g.Attributes, registry.Attribute{Key: a.Key, Value: a.Value})
	}
	return g, nil
}

// sdlUnitPrice reads an SDL unit's price (ukiln per Kiln block) as whole ukiln,
// rounded up exactly (sdl.Coin.Ceil): a price is a ceiling. A price of 0 becomes 1,
// the least an order may offer.
func sdlUnitPrice(price sdl.Coin) (uint64, error) {
	v, _, err := price.Ceil()
	if err != nil {
		return 0, fmt.Errorf("price: %w (want a non-negative decimal amount of ukiln below 2^64)", err)
	}
	return max(v, 1), nil
}

// serviceResources are what each instance of a service placed in order group g, the
// order's unit `unit`, may use: the group's resources per instance. The Kiln spec and
// SDL paths both build manifests with it; the provider checks them against the same
// groups as read from the chain.
func serviceResources(unit uint32, g market.Group) api.ServiceResources {
	return api.ServiceResources{Unit: unit, CPUMilli: g.CPUMilli, MemoryBytes: g.MemoryBytes, StorageBytes: g.StorageBytes, GPUUnits: g.GPU.Units}
}

// sdlManifest converts the named group of an SDL manifest into the manifest the
// provider receives. groups are the order groups built from the same SDL group
// (api.UnitID), whose resources the services get.
func sdlManifest(m sdl.Manifest, group string, groups []market.Group) (api.Manifest, error) {
	i := slices.IndexFunc(m.Groups, func(g sdl.ManifestGroup) bool { return g.Name == group })
	if i < 0 {
		names := make([]string, len(m.Groups))
		for i, gr := range m.Groups {
			names[i] = gr.Name
		}
		return api.Manifest{}, fmt.Errorf("convert SDL manifest: group %q: not found (groups: %s)", group, strings.Join(names, ", "))
	}
	var out api.Manifest
	for _, s := range m.Groups[i].Services {
		unit := s.Resources.ID
		gi, ok := api.GroupIndex(unit)
		if !ok || gi >= len(groups) {
			return api.Manifest{}, fmt.Errorf("convert SDL manifest: service %s: resource unit %d is not one of group %s's %d units", s.Name, unit, group, len(groups))
		}
		svc := api.Service{
			Name:      s.Name,
			Image:     s.Image,
			Command:   slices.Clone(s.Command),
			Args:      slices.Clone(s.Args),
			Env:       sdlEnv(s.Env),
			Count:     s.Count,
			Resources: serviceResources(unit, groups[gi]),
		}
		for _, e := range s.Expose {
			svc.Expose = append(svc.Expose, api.Expose{Port: e.Port, As: e.ExternalPort, Proto: strings.ToLower(e.Proto), Global: e.Global})
		}
		if s.Params != nil && len(s.Params.Storage) > 0 {
			svc.Params = &api.Params{}
			for _, p := range s.Params.Storage {
				svc.Params.Storage = append(svc.Params.Storage, api.StorageMount{Name: p.Name, Mount: p.Mount, ReadOnly: p.ReadOnly})
			}
		}
		out.Services = append(out.Services, svc)
	}
	return out, nil
}

// sdlEnv reads SDL env entries as Akash does: "KEY=VALUE", and a bare "KEY" is KEY
// set to the empty string (Akash's provider makes it a Kubernetes variable with no
// value), which the manifest writes "KEY=".
func sdlEnv(env []string) []string {
	if env == nil {
		return nil
	}
	out := make([]string, len(env))
	for i, e := range env {
		if !strings.Contains(e, "=") {
			e += "="
		}
		out[i] = e
	}
	return out
}
