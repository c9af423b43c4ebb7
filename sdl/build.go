package sdl

import (
	"fmt"
	"math/big"
	"path"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Akash's network-wide limits (deployment validation config).
const (
	maxUnitCPU     = 384 * 1000 // millicpu per instance
	minUnitCPU     = 10
	maxUnitGPU     = 24
	maxUnitMemory  = 2 * unitTi
	minUnitMemory  = unitMi
	maxUnitStorage = 32 * unitTi
	minUnitStorage = 5 * unitMi
	maxUnitCount   = 50
	minUnitCount   = 1
	maxUnitPrice   = 10000000 // per instance per block, in the SDL denom
	maxGroups      = 20
	maxGroupUnits  = 20
)

// HTTP option defaults and limits (Akash v2HTTPOptions.asManifest).
const (
	defaultMaxBodySize = 1048576
	maxBodySize        = 104857600
	defaultReadTimeout = 60000
	maxReadTimeout     = defaultReadTimeout
	defaultSendTimeout = 60000
	maxSendTimeout     = defaultSendTimeout
	defaultNextTries   = 3
)

var (
	endpointNameRe = regexp.MustCompile(`^[[:lower:]]+[[:lower:]-_\d]+$`)
	serviceNameRe  = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	envNameRe      = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	dnsLabelRe     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	nextCases      = map[string]bool{"error": true, "timeout": true, "500": true, "502": true, "503": true, "504": true, "403": true, "404": true, "429": true, "off": true}
)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func names[V any](m map[string]V) string {
	k := sortedKeys(m)
	if len(k) == 0 {
		return "none defined"
	}
	return "defined: " + strings.Join(k, ", ")
}

// groupBuilder accumulates one order group.
type groupBuilder struct {
	group    OrderGroup
	manifest ManifestGroup
	// byProfile maps a compute profile to its unit index (SDL 2.1 merges
	// services that share a profile into one unit).
	byProfile map[string]int
	countAt   []*yaml.Node
	priceAt   []*price
	// teeFrom is the first service placed in the group: the one whose
	// params.tee the others must match.
	teeFrom *service
}

// build validates what is deployed and produces groups and manifest.
func (p *parser) build() ([]OrderGroup, Manifest) {
	w, d := p.w, &p.d

	// Endpoints: every declared one must be well-formed and used.
	for _, name := range sortedKeys(d.endpoints) {
		ep := d.endpoints[name]
		switch {
		case !endpointNameRe.MatchString(name):
			w.errAt(ep.key, ep.path, name, "endpoint name must be lower-case letters, then letters, digits, - or _ (at least 2 characters)")
		case ep.kind == "":
			w.errAt(ep.key, join(ep.path, "kind"), "", "endpoint has no kind; allowed: ip")
		case ep.kind != "ip":
			w.errAt(ep.key, join(ep.path, "kind"), ep.kind, "unknown endpoint kind; allowed: ip")
		}
	}

	if len(d.deployment) == 0 {
		w.errAt(nil, "deployment", "", "no service is deployed; deployment must map at least one service to a placement and profile")
		return nil, Manifest{}
	}

	seq := p.endpointSequenceNumbers()
	endpointsUsed := map[string]bool{}
	ipPorts := map[string]string{}
	groups := map[string]*groupBuilder{}
	usedCompute, usedPlacement := map[string]bool{}, map[string]bool{}

	for _, svcName := range sortedKeys(d.deployment) {
		depl := d.deployment[svcName]
		svc, svcOK := d.services[svcName]
		if !svcOK {
			w.errAt(d.deplNodes[svcName], join("deployment", svcName), svcName, "no service named %q in services (%s)", svcName, names(d.services))
		}
		if len(depl) == 0 {
			w.errAt(d.deplNodes[svcName], join("deployment", svcName), "", "service is not placed anywhere; map a placement to {profile, count}")
		}
		for _, plName := range sortedKeys(depl) {
			sd := depl[plName]
			ok := svcOK
			compute, cOK := d.compute[sd.profile]
			if !cOK {
				at := sd.profileNode
				if at == nil {
					at = sd.node
				}
				w.errAt(at, join(sd.path, "profile"), sd.profile, "no compute profile named %q in profiles.compute (%s)", sd.profile, names(d.compute))
				ok = false
			}
			usedCompute[sd.profile] = true
			usedPlacement[plName] = true
			infra, pOK := d.placement[plName]
			if !pOK {
				w.errAt(sd.node, sd.path, plName, "no placement profile named %q in profiles.placement (%s)", plName, names(d.placement))
				ok = false
			}
			var pr *price
			if pOK {
				pr = infra.pricing[sd.profile]
				if pr == nil {
					w.errAt(infra.node, join(join(infra.path, "pricing"), sd.profile), "", "no price for compute profile %q in this placement (%s)", sd.profile, names(infra.pricing))
					ok = false
				}
			}
			if cOK && compute.resources == nil {
				w.errAt(compute.node, join(compute.path, "resources"), "", "compute profile has no resources; cpu, memory and storage are required")
				ok = false
			}
			if !svcOK {
				continue
			}
			p.checkCredentials(svc, plName)
			p.checkIPExposes(svc, endpointsUsed, ipPorts)
			if cOK && compute.resources != nil {
				p.checkStorageParams(svc, compute)
			}
			if !ok {
				continue
			}
			p.addToGroup(groups, svc, plName, infra, sd, compute, pr, seq)
		}
	}

	for _, name := range sortedKeys(d.endpoints) {
		if !endpointsUsed[name] {
			w.errAt(d.endpoints[name].key, d.endpoints[name].path, "", "endpoint declared but never used; reference it with expose.to.ip or remove it")
		}
	}
	p.warnUnused(usedCompute, usedPlacement)

	var out []OrderGroup
	var man Manifest
	for _, name := range sortedKeys(groups) {
		g := groups[name]
		sort.SliceStable(g.manifest.Services, func(i, j int) bool { return g.manifest.Services[i].Name < g.manifest.Services[j].Name })
		out = append(out, g.group)
		man.Groups = append(man.Groups, g.manifest)
	}
	p.checkChain(groups)
	p.checkManifest(man)
	return out, man
}

// endpointSequenceNumbers numbers IP endpoints as Akash does: it sorts the
// ip names of every non-global-or-IP `to` entry of deployed services and
// numbers them from 1, a later duplicate overwriting an earlier number.
func (p *parser) endpointSequenceNumbers() map[string]uint32 {
	var epNames []string
	for _, svcName := range sortedKeys(p.d.deployment) {
		svc := p.d.services[svcName]
		if svc == nil {
			continue
		}
		for _, e := range svc.expose {
			for _, to := range e.to {
				if to.global && to.ip == "" {
					continue
				}
				epNames = append(epNames, to.ip)
			}
		}
	}
	sort.Strings(epNames)
	res := map[string]uint32{}
	for i, n := range epNames {
		res[n] = uint32(i + 1)
	}
	return res
}

func (p *parser) checkCredentials(svc *service, placement string) {
	c := svc.creds
	if c == nil {
		return
	}
	path := join(svc.path, "credentials")
	for _, f := range []struct{ name, v string }{{"host", c.host}, {"username", c.username}, {"password", c.password}} {
		if strings.TrimSpace(f.v) == "" {
			p.w.errAt(svc.credsNode, join(path, f.name), "", "credentials need host, username and password; %s is missing", f.name)
		}
	}
}

func (p *parser) checkIPExposes(svc *service, used map[string]bool, ports map[string]string) {
	w := p.w
	for _, e := range svc.expose {
		for _, to := range e.to {
			if to.ip == "" {
				continue
			}
			ipPath := join(to.path, "ip")
			if !to.global {
				w.errAt(to.ipNode, ipPath, to.ip, "an expose to an IP endpoint must also set global: true")
				continue
			}
			ep, ok := p.d.endpoints[to.ip]
			if !ok {
				w.errAt(to.ipNode, ipPath, to.ip, "no endpoint named %q in endpoints (%s)", to.ip, names(p.d.endpoints))
				continue
			}
			if ep.kind != "ip" {
				w.errAt(to.ipNode, ipPath, to.ip, "endpoint %q has kind %q, should be ip", to.ip, ep.kind)
				continue
			}
			used[to.ip] = true
			// NB: Akash keys the collision check on `as` and proto as
			// written, so two exposes without `as` collide even with
			// different ports.
			key := fmt.Sprintf("%s-%d-%s", to.ip, e.as, e.proto)
			if other, inUse := ports[key]; inUse {
				w.errAt(to.ipNode, ipPath, to.ip, "IP endpoint %q: external port %d/%s is already used by service %q (Akash compares `as` as written; give each expose on the same IP a distinct `as`)", to.ip, e.as, e.proto, other)
				continue
			}
			ports[key] = strings.TrimPrefix(svc.path, "services.")
		}
	}
}

func (p *parser) checkStorageParams(svc *service, compute *computeProfile) {
	w := p.w
	vols := map[string]*volume{}
	for _, v := range compute.resources.storage {
		vols[v.name] = v
	}
	svcName := strings.TrimPrefix(svc.path, "services.")
	mounted := map[string]bool{}
	if svc.params != nil {
		mounts := map[string]string{}
		for _, name := range sortedKeys(svc.params.storage) {
			sp := svc.params.storage[name]
			v, ok := vols[name]
			if !ok {
				w.errAt(sp.node, sp.path, name, "no volume named %q in the storage of compute profile %s (%s)", name, compute.path, names(vols))
				continue
			}
			if !path.IsAbs(sp.mount) {
				w.errAt(sp.node, join(sp.path, "mount"), sp.mount, "mount must be an absolute path (e.g. /data)")
				continue
			}
			if other, dup := mounts[sp.mount]; dup {
				w.errAt(sp.node, join(sp.path, "mount"), sp.mount, "mount point already used by volume %q", other)
				continue
			}
			mounts[sp.mount] = name
			mounted[name] = true
			if p.d.v21 && v.class == "ram" && sp.readOnly {
				w.errAt(sp.node, join(sp.path, "readOnly"), "true", "a volume of class ram cannot be readOnly")
			}
		}
	}
	for _, v := range compute.resources.storage {
		if !v.persistent {
			continue
		}
		// Akash 2.0 refuses a persistent volume when the service mounts
		// nothing; 2.1 accepts an unmounted one.
		if !p.d.v21 && len(mounted) == 0 && (svc.params == nil || len(svc.params.storage) == 0) {
			w.errAt(v.node, v.path, v.name, "persistent volume must be mounted: add services.%s.params.storage.%s.mount", svcName, v.name)
		} else if !mounted[v.name] {
			w.warnAt(v.node, v.path, "persistent volume %q is not mounted by service %q", v.name, svcName)
		}
	}
}

func (p *parser) addToGroup(groups map[string]*groupBuilder, svc *service, plName string, infra *placementProfile, sd *svcDeployment, compute *computeProfile, pr *price, seq map[string]uint32) {
	w := p.w
	svcName := strings.TrimPrefix(svc.path, "services.")
	g := groups[plName]
	if g == nil {
		g = &groupBuilder{
			group: OrderGroup{
				Name:         plName,
				Requirements: Requirements{Attributes: infra.attrs, SignedBy: infra.signedBy},
			},
			manifest:  ManifestGroup{Name: plName},
			byProfile: map[string]int{},
		}
		if g.group.Requirements.Attributes == nil {
			g.group.Requirements.Attributes = []Attribute{}
		}
		if g.group.Requirements.SignedBy.AllOf == nil {
			g.group.Requirements.SignedBy.AllOf = []string{}
		}
		if g.group.Requirements.SignedBy.AnyOf == nil {
			g.group.Requirements.SignedBy.AnyOf = []string{}
		}
		groups[plName] = g
	}
	p.checkTEE(g, svc, compute)
	exposes := p.manifestExposes(svc, seq)
	var eps []Endpoint
	for _, e := range exposes {
		eps = append(eps, exposeEndpoints(e)...)
	}
	if eps == nil {
		eps = []Endpoint{}
	}
	res := p.resources(compute.resources)
	res.Endpoints = eps

	kilnPrice, err := p.cfg.ConvertPrice(pr.coin)
	if err != nil {
		w.errAt(pr.node, pr.path, pr.coin.Denom, "%v; known: %s", err, strings.Join(sortedKeys(p.cfg.Rates), ", "))
	} else if _, wildcard, _ := p.cfg.rate(pr.coin.Denom); wildcard {
		w.warnAt(pr.node, join(pr.path, "denom"), "no conversion rate for %q; using the generic ibc/* rate (assumes a USD stablecoin)", pr.coin.Denom)
	}

	idx, merged := g.byProfile[sd.profile]
	if p.d.v21 && merged {
		u := &g.group.Resources[idx]
		u.Count += sd.count
		u.Endpoints = append(u.Endpoints, eps...)
		sortEndpoints(u.Endpoints)
		res.ID = u.ID
		res.Endpoints = eps
		g.countAt[idx] = sd.countNode
	} else {
		res.ID = uint32(len(g.group.Resources) + 1)
		g.group.Resources = append(g.group.Resources, ResourceUnit{
			Resources:   res,
			Count:       sd.count,
			Price:       kilnPrice,
			SourcePrice: pr.coin,
		})
		g.byProfile[sd.profile] = len(g.group.Resources) - 1
		cn := sd.countNode
		if cn == nil {
			cn = sd.node
		}
		g.countAt = append(g.countAt, cn)
		g.priceAt = append(g.priceAt, pr)
	}

	ms := Service{
		Name:         svcName,
		Image:        svc.image,
		Command:      svc.command,
		Args:         svc.args,
		Env:          svc.env,
		Resources:    cloneResources(res),
		Count:        sd.count,
		Expose:       exposes,
		Dependencies: svc.dependencies,
	}
	if svc.params != nil {
		sp := &ServiceParams{Permissions: svc.params.permissions}
		for _, name := range sortedKeys(svc.params.storage) {
			v := svc.params.storage[name]
			sp.Storage = append(sp.Storage, StorageParams{Name: name, Mount: v.mount, ReadOnly: v.readOnly})
		}
		sp.TEE = svc.params.tee
		ms.Params = sp
	}
	if c := svc.creds; c != nil {
		ic := &ImageCredentials{Host: c.host, Username: c.username, Password: c.password}
		if p.d.v21 {
			ic = &ImageCredentials{
				Host:     strings.TrimSpace(c.host),
				Email:    strings.TrimSpace(c.email),
				Username: strings.TrimSpace(c.username),
				Password: strings.TrimSpace(c.password),
			}
		}
		ms.Credentials = ic
	}
	for i, dep := range svc.dependencies {
		if _, ok := p.d.services[dep]; !ok {
			w.warnAt(svc.depNodes[i], join(svc.path, "dependencies"), "dependency on unknown service %q", dep)
		}
	}
	g.manifest.Services = append(g.manifest.Services, ms)
}

// teeOf is the TEE type a service asks for; "" when none.
func teeOf(s *service) string {
	if s.params == nil {
		return ""
	}
	return s.params.tee
}

// checkTEE applies Akash's params.tee rules to a service placed in group g:
// cpu-gpu needs GPUs in the service's compute profile, and one group holds
// one TEE type (every service the same value, or none sets it), since the
// group runs on one provider's one kind of confidential VM.
func (p *parser) checkTEE(g *groupBuilder, svc *service, compute *computeProfile) {
	w, tee := p.w, teeOf(svc)
	if tee == TEECPUGPU {
		r := compute.resources
		if r.gpu == nil || r.gpu.units == 0 {
			w.errAt(svc.params.teeNode, join(svc.path, "params.tee"), tee, "%s needs GPU resources: %s has no gpu.units > 0 (use tee: %s for a CPU-only confidential VM)", TEECPUGPU, compute.path, TEECPU)
		}
	}
	if g.teeFrom == nil {
		g.teeFrom = svc
		g.group.TEE = tee
		return
	}
	if first := teeOf(g.teeFrom); first != tee {
		at := svc.node
		if svc.params != nil && svc.params.teeNode != nil {
			at = svc.params.teeNode
		}
		show := func(t string) string {
			if t == "" {
				return "none"
			}
			return t
		}
		w.errAt(at, join(svc.path, "params.tee"), tee, "placement %s mixes TEE types: %s asks for %s, %s for %s; every service of a group must use the same tee value or none may set it", g.group.Name,
			strings.TrimPrefix(g.teeFrom.path, "services."), show(first), strings.TrimPrefix(svc.path, "services."), show(tee))
	}
}

func cloneResources(r Resources) Resources {
	r.Endpoints = append([]Endpoint{}, r.Endpoints...)
	return r
}

func (p *parser) resources(r *computeResources) Resources {
	w := p.w
	out := Resources{Storage: []Storage{}, Endpoints: []Endpoint{}}
	if r.cpu == nil {
		w.errAt(r.node, join(r.path, "cpu"), "", "cpu is required (e.g. cpu: {units: 0.5})")
	} else {
		out.CPUMilli = r.cpu.milli
		out.CPUAttributes = r.cpu.attrs
	}
	if r.memory == nil {
		w.errAt(r.node, join(r.path, "memory"), "", "memory is required (e.g. memory: {size: 512Mi})")
	} else {
		out.MemoryBytes = r.memory.bytes
	}
	if len(r.storage) == 0 {
		at := r.storageN
		if at == nil {
			at = r.node
		}
		w.errAt(at, join(r.path, "storage"), "", "storage is required (e.g. storage: {size: 1Gi})")
	}
	for _, v := range r.storage {
		out.Storage = append(out.Storage, Storage{Name: v.name, Bytes: v.bytes, Class: v.class, Persistent: v.persistent})
	}
	if r.gpu != nil {
		out.GPU.Units = uint32(min(r.gpu.units, 1<<32-1))
		if r.gpu.units > 0 || len(r.gpu.attrs) > 0 {
			out.GPU.Models = r.gpu.models
			out.GPU.Attributes = r.gpu.attrs
		}
	}
	return out
}

// manifestExposes turns a service's expose list into manifest entries, one
// per destination, sorted as Akash sorts them.
func (p *parser) manifestExposes(svc *service, seq map[string]uint32) []Expose {
	w := p.w
	var out []Expose
	for _, e := range svc.expose {
		proto := "TCP"
		switch strings.ToUpper(e.proto) {
		case "", "TCP":
		case "UDP":
			proto = "UDP"
		default:
			w.errAt(e.protoNode, join(e.path, "proto"), e.proto, "unsupported protocol; allowed: tcp, udp (HTTP is tcp on port 80)")
		}
		ho := p.httpOptions(e.http)
		if len(e.to) == 0 {
			out = append(out, Expose{Port: e.port, ExternalPort: e.as, Proto: proto, Hosts: e.accept, HTTPOptions: ho})
		}
		for _, to := range e.to {
			x := Expose{
				Service:      to.service,
				Port:         e.port,
				ExternalPort: e.as,
				Proto:        proto,
				Global:       to.global,
				Hosts:        e.accept,
				HTTPOptions:  ho,
				IP:           to.ip,
			}
			if to.global && to.ip != "" {
				x.EndpointSequenceNumber = seq[to.ip]
			}
			if to.service != "" {
				if _, ok := p.d.services[to.service]; !ok {
					w.warnAt(to.node, join(to.path, "service"), "expose to unknown service %q", to.service)
				}
			}
			out = append(out, x)
		}
		if len(e.accept) > 0 {
			ingress := false
			for _, x := range out {
				if x.Port == e.port && isIngress(x) {
					ingress = true
				}
			}
			if !ingress {
				w.warnAt(e.acceptNodes[0], join(e.path, "accept"), "accept only applies to HTTP (tcp, global, port or `as` 80); it has no effect here")
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		return a.Global && !b.Global
	})
	return out
}

func (p *parser) httpOptions(h httpOpts) HTTPOptions {
	w := p.w
	o := HTTPOptions{
		MaxBodySize: h.maxBodySize,
		ReadTimeout: h.readTimeout,
		SendTimeout: h.sendTimeout,
		NextTries:   h.nextTries,
		NextTimeout: h.nextTimeout,
		NextCases:   h.nextCases,
	}
	if o.MaxBodySize == 0 {
		o.MaxBodySize = defaultMaxBodySize
	} else if o.MaxBodySize > maxBodySize {
		w.errAt(h.node, join(h.path, "max_body_size"), fmt.Sprint(o.MaxBodySize), "must be at most %d bytes (100Mi)", maxBodySize)
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = defaultReadTimeout
	} else if o.ReadTimeout > maxReadTimeout {
		w.errAt(h.node, join(h.path, "read_timeout"), fmt.Sprint(o.ReadTimeout), "must be at most %d ms", maxReadTimeout)
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = defaultSendTimeout
	} else if o.SendTimeout > maxSendTimeout {
		w.errAt(h.node, join(h.path, "send_timeout"), fmt.Sprint(o.SendTimeout), "must be at most %d ms", maxSendTimeout)
	}
	if o.NextTries == 0 {
		o.NextTries = defaultNextTries
	}
	if len(o.NextCases) == 0 {
		o.NextCases = []string{"error", "timeout"}
	} else {
		for _, c := range o.NextCases {
			switch {
			case !nextCases[c]:
				w.errAt(h.node, join(h.path, "next_cases"), c, "unknown next case; allowed: error, timeout, 500, 502, 503, 504, 403, 404, 429, off")
			case c == "off" && len(o.NextCases) != 1:
				w.errAt(h.node, join(h.path, "next_cases"), c, "if off is given, no other case may be")
			}
		}
	}
	return o
}

func isIngress(e Expose) bool {
	ext := e.ExternalPort
	if ext == 0 {
		ext = e.Port
	}
	return e.Proto == "TCP" && e.Global && ext == 80
}

var endpointOrder = map[string]int{EndpointSharedHTTP: 0, EndpointRandomPort: 1, EndpointLeasedIP: 2}

func exposeEndpoints(e Expose) []Endpoint {
	if !e.Global {
		return nil
	}
	var eps []Endpoint
	if e.IP != "" {
		eps = append(eps, Endpoint{Kind: EndpointLeasedIP, SequenceNumber: e.EndpointSequenceNumber})
	}
	kind := EndpointRandomPort
	if isIngress(e) {
		kind = EndpointSharedHTTP
	}
	eps = append(eps, Endpoint{Kind: kind})
	sortEndpoints(eps)
	return eps
}

func sortEndpoints(eps []Endpoint) {
	sort.SliceStable(eps, func(i, j int) bool {
		a, b := endpointOrder[eps[i].Kind], endpointOrder[eps[j].Kind]
		if a != b {
			return a < b
		}
		return eps[i].SequenceNumber < eps[j].SequenceNumber
	})
}

// checkChain applies Akash's on-chain deployment validation to the groups.
func (p *parser) checkChain(groups map[string]*groupBuilder) {
	w := p.w
	if len(groups) > maxGroups {
		w.errAt(nil, "profiles.placement", fmt.Sprint(len(groups)), "a deployment may have at most %d groups (placements in use)", maxGroups)
	}
	denom, denomAt := "", ""
	for _, name := range sortedKeys(groups) {
		g := groups[name]
		if name == "" {
			w.errAt(nil, "profiles.placement", "", "placement name must not be empty")
		}
		if n := len(g.group.Resources); n > maxGroupUnits {
			w.errAt(nil, join("profiles.placement", name), fmt.Sprint(n), "a group may have at most %d resource units (distinct service/profile pairs)", maxGroupUnits)
		}
		var totCPU, totGPU, totMem big.Int
		for i, u := range g.group.Resources {
			pr := g.priceAt[i]
			cp := p.profileOf(name, u.ID)
			p.checkUnit(cp, u)
			if c := u.Count; c < minUnitCount || c > maxUnitCount {
				w.errAt(g.countAt[i], p.countPath(name, u.ID), fmt.Sprint(c), "count must be %d-%d (it is the number of instances; Akash has no default)", minUnitCount, maxUnitCount)
			}
			amt, _ := new(big.Rat).SetString(u.SourcePrice.Amount)
			if amt != nil && amt.Cmp(big.NewRat(maxUnitPrice, 1)) > 0 {
				w.errAt(pr.node, join(pr.path, "amount"), u.SourcePrice.Amount, "must be at most %d %s per block", maxUnitPrice, u.SourcePrice.Denom)
			}
			if denom == "" {
				denom, denomAt = u.SourcePrice.Denom, pr.path
			} else if u.SourcePrice.Denom != denom && u.SourcePrice.Denom != "" {
				w.errAt(pr.node, join(pr.path, "denom"), u.SourcePrice.Denom, "all prices must use one denomination; %s uses %q", denomAt, denom)
			}
			cnt := new(big.Int).SetUint64(uint64(u.Count))
			totCPU.Add(&totCPU, new(big.Int).Mul(new(big.Int).SetUint64(u.CPUMilli), cnt))
			totGPU.Add(&totGPU, new(big.Int).Mul(new(big.Int).SetUint64(uint64(u.GPU.Units)), cnt))
			totMem.Add(&totMem, new(big.Int).Mul(new(big.Int).SetUint64(u.MemoryBytes), cnt))
		}
		gp := join("profiles.placement", name)
		if totCPU.Cmp(big.NewInt(maxUnitCPU*maxUnitCount)) > 0 {
			w.errAt(nil, gp, totCPU.String(), "group total CPU (millicpu × count) must be at most %d", maxUnitCPU*maxUnitCount)
		}
		if totGPU.Cmp(big.NewInt(maxUnitGPU*maxUnitCount)) > 0 {
			w.errAt(nil, gp, totGPU.String(), "group total GPUs (units × count) must be at most %d", maxUnitGPU*maxUnitCount)
		}
		if totMem.Cmp(new(big.Int).SetUint64(maxUnitMemory*maxUnitCount)) > 0 {
			w.errAt(nil, gp, totMem.String(), "group total memory (size × count) must be at most 100Ti")
		}
	}
}

// profileOf finds the compute profile behind a unit, for error locations.
func (p *parser) profileOf(placement string, id uint32) *computeProfile {
	n := uint32(0)
	seen := map[string]bool{}
	for _, svcName := range sortedKeys(p.d.deployment) {
		sd := p.d.deployment[svcName][placement]
		if sd == nil || p.d.services[svcName] == nil {
			continue
		}
		c := p.d.compute[sd.profile]
		if c == nil || c.resources == nil {
			continue
		}
		if p.d.v21 && seen[sd.profile] {
			continue
		}
		seen[sd.profile] = true
		n++
		if n == id {
			return c
		}
	}
	return nil
}

func (p *parser) countPath(placement string, id uint32) string {
	n := uint32(0)
	seen := map[string]bool{}
	for _, svcName := range sortedKeys(p.d.deployment) {
		sd := p.d.deployment[svcName][placement]
		if sd == nil || p.d.services[svcName] == nil {
			continue
		}
		c := p.d.compute[sd.profile]
		if c == nil || c.resources == nil {
			continue
		}
		if p.d.v21 && seen[sd.profile] {
			continue
		}
		seen[sd.profile] = true
		n++
		if n == id {
			return join(sd.path, "count")
		}
	}
	return join("deployment", placement)
}

// checkUnit applies the per-instance limits. Problems of a profile used
// twice are reported once.
func (p *parser) checkUnit(c *computeProfile, u ResourceUnit) {
	if c == nil || c.resources == nil {
		return
	}
	w, r := p.w, c.resources
	key := c.path
	if p.checked == nil {
		p.checked = map[string]bool{}
	}
	if p.checked[key] {
		return
	}
	p.checked[key] = true
	if r.cpu != nil && !r.cpu.bad && (u.CPUMilli < minUnitCPU || u.CPUMilli > maxUnitCPU) {
		w.errAt(r.cpu.node, join(r.path, "cpu.units"), fmtMilli(u.CPUMilli), "CPU must be 10m-384 (0.01 to 384 CPUs) per instance (value in millicpu)")
	}
	if r.gpu != nil && r.gpu.units > maxUnitGPU {
		w.errAt(r.gpu.node, join(r.path, "gpu.units"), fmt.Sprint(r.gpu.units), "GPU units must be 0-%d per instance", maxUnitGPU)
	}
	if r.gpu != nil && r.gpu.units == 0 && len(r.gpu.attrs) > 0 {
		w.errAt(r.gpu.node, join(r.path, "gpu.attributes"), "", "GPU attributes are not allowed when units is 0; remove them or set units")
	}
	if r.memory != nil && !r.memory.bad && (u.MemoryBytes < minUnitMemory || u.MemoryBytes > maxUnitMemory) {
		w.errAt(r.memory.node, join(r.path, "memory.size"), fmt.Sprint(u.MemoryBytes), "memory must be 1Mi-2Ti per instance (bytes shown)")
	}
	for _, v := range r.storage {
		if !v.bad && (v.bytes < minUnitStorage || v.bytes > maxUnitStorage) {
			w.errAt(v.node, join(v.path, "size"), fmt.Sprint(v.bytes), "storage volume size must be 5Mi-32Ti (bytes shown)")
		}
	}
}

func fmtMilli(m uint64) string { return fmt.Sprintf("%dm", m) }

// checkManifest applies Akash's manifest validation.
func (p *parser) checkManifest(m Manifest) {
	w := p.w
	hosts := map[string]string{}
	global := 0
	for _, g := range m.Groups {
		for _, s := range g.Services {
			svc := p.d.services[s.Name]
			if !serviceNameRe.MatchString(s.Name) {
				w.errAt(svc.key, svc.path, s.Name, "service name must be lower-case letters, digits and '-', starting with a letter and not ending with '-'")
			}
			if s.Image == "" {
				at := svc.imageNode
				if at == nil {
					at = svc.key
				}
				w.errAt(at, join(svc.path, "image"), "", "image is required")
			}
			for i, env := range s.Env {
				name, _, _ := strings.Cut(env, "=")
				if !envNameRe.MatchString(name) || strings.HasPrefix(name, "..") || name == "." {
					var at *yaml.Node
					if i < len(svc.envNodes) {
						at = resolve(svc.envNodes[i])
					}
					w.errAt(at, fmt.Sprintf("%s.env[%d]", svc.path, i), env, "environment variable must be NAME=value with NAME made of letters, digits, '_', '-', '.' and not starting with a digit")
				}
			}
			for _, e := range svc.expose {
				if e.port == 0 || e.port > 65535 {
					at := e.portNode
					if at == nil {
						at = e.node
					}
					w.errAt(at, join(e.path, "port"), fmt.Sprint(e.port), "port must be 1-65535")
				}
				if e.as > 65535 {
					w.warnAt(e.asNode, join(e.path, "as"), "as %d is not a valid port (1-65535); Akash accepts it but no provider can honour it", e.as)
				}
			}
			for _, x := range s.Expose {
				if x.Global {
					global++
				}
			}
			for _, e := range svc.expose {
				copies := max(1, len(e.to))
				for i, h := range e.accept {
					ip := fmt.Sprintf("%s.accept[%d]", e.path, i)
					if !validHostname(h) {
						w.errAt(e.acceptNodes[i], ip, h, "must be a DNS name (lower-case letters, digits, '-' and '.', at most 253 characters)")
						continue
					}
					if other, dup := hosts[h]; dup {
						w.errAt(e.acceptNodes[i], ip, h, "host name already accepted by service %q; each host may be used once", other)
						continue
					}
					if copies > 1 {
						// NB: Akash copies accept into every `to` entry and
						// then refuses the copies as duplicates.
						w.errAt(e.acceptNodes[i], ip, h, "accept is copied to each of the %d `to` entries and Akash then refuses the duplicate host; use accept only on an expose with a single `to`", copies)
					}
					hosts[h] = s.Name
				}
			}
		}
	}
	if global == 0 && len(m.Groups) > 0 {
		w.errAt(nil, "services", "", "no service is exposed globally; Akash requires at least one expose with to: [{global: true}]")
	}
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) > 63 || !dnsLabelRe.MatchString(label) {
			return false
		}
	}
	return true
}

func (p *parser) warnUnused(usedCompute, usedPlacement map[string]bool) {
	w, d := p.w, &p.d
	for _, name := range sortedKeys(d.services) {
		if _, ok := d.deployment[name]; !ok {
			s := d.services[name]
			w.warnAt(s.key, s.path, "service is not in deployment and is ignored")
		}
	}
	for _, name := range sortedKeys(d.compute) {
		if !usedCompute[name] {
			c := d.compute[name]
			w.warnAt(c.node, c.path, "compute profile is not used by any deployment and is ignored")
		}
	}
	for _, name := range sortedKeys(d.placement) {
		if !usedPlacement[name] {
			pl := d.placement[name]
			w.warnAt(pl.node, pl.path, "placement profile is not used by any deployment and is ignored")
		}
	}
}
