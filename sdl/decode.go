package sdl

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-network/kiln/quantity"
	"gopkg.in/yaml.v3"
)

// This file turns the YAML tree into the SDL's structure, applying the
// rules that Akash's parser applies while decoding (its UnmarshalYAML
// methods): these hold for every service and profile in the file, deployed
// or not. Rules that Akash applies only to what is deployed are in
// validate.go.

type doc struct {
	version    string
	v21        bool
	services   map[string]*service
	compute    map[string]*computeProfile
	placement  map[string]*placementProfile
	deployment map[string]map[string]*svcDeployment // service → placement
	deplNodes  map[string]*yaml.Node                // service → its deployment node
	endpoints  map[string]*endpointDecl
	endpointsN *yaml.Node
	reclaim    *Reclamation
}

type service struct {
	node, key    *yaml.Node
	path         string
	image        string
	imageNode    *yaml.Node
	command      []string
	args         []string
	env          []string
	envNodes     []*yaml.Node
	expose       []*expose
	dependencies []string
	depNodes     []*yaml.Node
	params       *params
	creds        *creds
	credsNode    *yaml.Node
}

type expose struct {
	node        *yaml.Node
	path        string
	port, as    uint32
	portNode    *yaml.Node
	asNode      *yaml.Node
	proto       string
	protoNode   *yaml.Node
	to          []*exposeTo
	accept      []string
	acceptNodes []*yaml.Node
	http        httpOpts
}

type exposeTo struct {
	node    *yaml.Node
	path    string
	service string
	global  bool
	ip      string
	ipNode  *yaml.Node
}

type httpOpts struct {
	node                                  *yaml.Node
	path                                  string
	maxBodySize, readTimeout, sendTimeout uint32
	nextTries, nextTimeout                uint32
	nextCases                             []string
}

type params struct {
	storage     map[string]*storageParam
	storageN    *yaml.Node
	permissions *Permissions
	tee         string
	teeNode     *yaml.Node
}

type storageParam struct {
	node     *yaml.Node
	path     string
	mount    string
	readOnly bool
}

type creds struct {
	host, email, username, password string
}

type computeProfile struct {
	node      *yaml.Node
	path      string
	resources *computeResources
}

type computeResources struct {
	node     *yaml.Node
	path     string
	cpu      *cpuRes
	gpu      *gpuRes
	memory   *memRes
	storage  []*volume
	storageN *yaml.Node
}

type cpuRes struct {
	bad   bool // units did not parse; limits are not checked
	node  *yaml.Node
	milli uint64
	attrs []Attribute
}

type gpuRes struct {
	node   *yaml.Node
	path   string
	units  uint64
	models []GPUModel
	attrs  []Attribute
}

type memRes struct {
	bad   bool
	node  *yaml.Node
	bytes uint64
}

type volume struct {
	bad        bool
	node       *yaml.Node
	path       string
	name       string
	bytes      uint64
	hasAttrs   bool
	class      string
	persistent bool
	unnamed    bool
}

type placementProfile struct {
	node     *yaml.Node
	path     string
	attrs    []Attribute
	signedBy SignedBy
	pricing  map[string]*price
}

type price struct {
	node *yaml.Node
	path string
	coin Coin
}

type svcDeployment struct {
	node        *yaml.Node
	path        string
	profile     string
	profileNode *yaml.Node
	count       uint32
	countNode   *yaml.Node
}

type endpointDecl struct {
	key  *yaml.Node
	kind string
	path string
}

// decodeTop reads the top-level mapping. Akash refuses unknown top-level
// keys.
func (w *walker) decodeTop(root *yaml.Node, d *doc) {
	pairs, ok := w.pairs(root, "")
	if !ok {
		return
	}
	for _, p := range pairs {
		switch p.key {
		case "version":
			// read by the caller
		case "include":
			// Akash decodes and then ignores it.
			if _, ok := w.strs(p.v, "include"); ok && !isNull(p.v) {
				w.warnAt(p.k, "include", "include is accepted but ignored (as by Akash)")
			}
		case "services":
			w.decodeServices(p.v, d)
		case "profiles":
			w.decodeProfiles(p.v, d)
		case "deployment":
			w.decodeDeployment(p.v, d)
		case "endpoints":
			w.decodeEndpoints(p.v, d)
		case "reclamation":
			d.reclaim = w.decodeReclamation(p.k, p.v, d)
		default:
			w.errAt(p.k, p.key, "", "unknown top-level key; allowed: version, services, profiles, deployment, endpoints, reclamation, include")
		}
	}
}

func (w *walker) decodeServices(n *yaml.Node, d *doc) {
	pairs, _ := w.pairs(n, "services")
	for _, p := range pairs {
		path := join("services", p.key)
		s := &service{node: resolve(p.v), key: p.k, path: path}
		d.services[p.key] = s
		fields, _ := w.pairs(p.v, path)
		for _, f := range fields {
			fp := join(path, f.key)
			switch f.key {
			case "image":
				s.image, _ = w.str(f.v, fp)
				s.imageNode = resolve(f.v)
			case "command":
				s.command, _ = w.strs(f.v, fp)
			case "args":
				s.args, _ = w.strs(f.v, fp)
			case "env":
				s.env, _ = w.strs(f.v, fp)
				if items, ok := w.items(f.v, fp); ok {
					s.envNodes = items
				}
			case "expose":
				items, _ := w.items(f.v, fp)
				for i, it := range items {
					s.expose = append(s.expose, w.decodeExpose(it, fp+"["+strconv.Itoa(i)+"]"))
				}
			case "dependencies":
				items, _ := w.items(f.v, fp)
				for i, it := range items {
					ip := fp + "[" + strconv.Itoa(i) + "]"
					deps, _ := w.pairs(it, ip)
					for _, dp := range deps {
						if dp.key != "service" {
							w.unknown(dp.k, join(ip, dp.key))
							continue
						}
						name, _ := w.str(dp.v, join(ip, "service"))
						s.dependencies = append(s.dependencies, name)
						s.depNodes = append(s.depNodes, resolve(dp.v))
					}
				}
			case "params":
				s.params = w.decodeParams(f.v, fp)
			case "credentials":
				s.creds = w.decodeCreds(f.v, fp)
				s.credsNode = resolve(f.v)
			default:
				w.unknown(f.k, fp)
			}
		}
	}
}

func (w *walker) decodeExpose(n *yaml.Node, path string) *expose {
	e := &expose{node: resolve(n), path: path}
	fields, _ := w.pairs(n, path)
	const portHelp = "a port number 1-65535"
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "port":
			e.port, _ = w.uint32(f.v, fp, portHelp)
			e.portNode = resolve(f.v)
		case "as":
			e.as, _ = w.uint32(f.v, fp, portHelp)
			e.asNode = resolve(f.v)
		case "proto":
			e.proto, _ = w.str(f.v, fp)
			e.protoNode = resolve(f.v)
		case "to":
			items, _ := w.items(f.v, fp)
			for i, it := range items {
				e.to = append(e.to, w.decodeExposeTo(it, fp+"["+strconv.Itoa(i)+"]"))
			}
		case "accept":
			items, ok := w.items(f.v, fp)
			if !ok {
				continue
			}
			for i, it := range items {
				ip := fp + "[" + strconv.Itoa(i) + "]"
				host, ok := w.str(it, ip)
				if !ok {
					continue
				}
				// Akash checks each entry with url.ParseRequestURI.
				if _, err := url.ParseRequestURI("http://" + host); err != nil {
					w.errAt(it, ip, host, "must be a host name (e.g. example.com)")
					continue
				}
				e.accept = append(e.accept, host)
				e.acceptNodes = append(e.acceptNodes, resolve(it))
			}
		case "http_options":
			e.http = w.decodeHTTPOptions(f.v, fp)
		default:
			w.unknown(f.k, fp)
		}
	}
	return e
}

func (w *walker) decodeExposeTo(n *yaml.Node, path string) *exposeTo {
	t := &exposeTo{node: resolve(n), path: path}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "service":
			t.service, _ = w.str(f.v, fp)
		case "global":
			t.global, _ = w.bool(f.v, fp)
		case "ip":
			t.ip, _ = w.str(f.v, fp)
			t.ipNode = resolve(f.v)
		case "http_options":
			// Akash decodes it here and never uses it.
			w.decodeHTTPOptions(f.v, fp)
			w.warnAt(f.k, fp, "http_options under `to` is ignored (as by Akash); put it on the expose entry")
		default:
			w.unknown(f.k, fp)
		}
	}
	return t
}

func (w *walker) decodeHTTPOptions(n *yaml.Node, path string) httpOpts {
	h := httpOpts{node: resolve(n), path: path}
	fields, _ := w.pairs(n, path)
	const help = "a non-negative integer"
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "max_body_size":
			h.maxBodySize, _ = w.uint32(f.v, fp, help+" (bytes)")
		case "read_timeout":
			h.readTimeout, _ = w.uint32(f.v, fp, help+" (milliseconds)")
		case "send_timeout":
			h.sendTimeout, _ = w.uint32(f.v, fp, help+" (milliseconds)")
		case "next_tries":
			h.nextTries, _ = w.uint32(f.v, fp, help)
		case "next_timeout":
			h.nextTimeout, _ = w.uint32(f.v, fp, help+" (milliseconds)")
		case "next_cases":
			h.nextCases, _ = w.strs(f.v, fp)
		default:
			w.unknown(f.k, fp)
		}
	}
	return h
}

func (w *walker) decodeParams(n *yaml.Node, path string) *params {
	if isNull(n) {
		return nil
	}
	p := &params{}
	fields, ok := w.pairs(n, path)
	if !ok {
		return nil
	}
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "storage":
			p.storageN = resolve(f.v)
			vols, _ := w.pairs(f.v, fp)
			if len(vols) > 0 {
				p.storage = map[string]*storageParam{}
			}
			for _, v := range vols {
				vp := join(fp, v.key)
				sp := &storageParam{node: resolve(v.v), path: vp}
				p.storage[v.key] = sp
				attrs, _ := w.pairs(v.v, vp)
				for _, a := range attrs {
					ap := join(vp, a.key)
					switch a.key {
					case "mount":
						sp.mount, _ = w.str(a.v, ap)
					case "readOnly":
						sp.readOnly, _ = w.bool(a.v, ap)
					default:
						w.unknown(a.k, ap)
					}
				}
			}
		case "tee":
			p.teeNode = resolve(f.v)
			v, ok := w.str(f.v, fp)
			if !ok {
				continue
			}
			if v != TEECPU && v != TEECPUGPU {
				w.errAt(f.v, fp, v, "unknown TEE type; allowed: %s (confidential VM: SEV-SNP or TDX), %s (plus an NVIDIA GPU in confidential-computing mode)", TEECPU, TEECPUGPU)
				continue
			}
			p.tee = v
		case "permissions":
			perms, _ := w.pairs(f.v, fp)
			p.permissions = &Permissions{}
			for _, pe := range perms {
				pp := join(fp, pe.key)
				if pe.key != "read" {
					w.unknown(pe.k, pp)
					continue
				}
				p.permissions.Read, _ = w.strs(pe.v, pp)
				items, _ := w.items(pe.v, pp)
				for i, it := range items {
					switch v := scalarValue(it); v {
					case "logs", "events":
					default:
						w.warnAt(it, pp+"["+strconv.Itoa(i)+"]", "unknown permission %q; known: logs, events", v)
					}
				}
			}
		default:
			w.unknown(f.k, fp)
		}
	}
	return p
}

// Reclamation window bounds: Akash's governance defaults
// (min_reclamation_window, max_reclamation_window).
const (
	minReclaimWindow = time.Hour
	maxReclaimWindow = 720 * time.Hour
)

// decodeReclamation reads the top-level reclamation block (AEP-82):
// {min_window: Go duration within 1h-720h}, SDL 2.1 only.
func (w *walker) decodeReclamation(k, n *yaml.Node, d *doc) *Reclamation {
	if isNull(n) {
		return nil
	}
	if !d.v21 {
		w.errAt(k, "reclamation", "", `reclamation requires version "2.1"`)
	}
	fields, ok := w.pairs(n, "reclamation")
	if !ok {
		return nil
	}
	var r *Reclamation
	seen := false
	for _, f := range fields {
		fp := join("reclamation", f.key)
		if f.key != "min_window" {
			w.errAt(f.k, fp, "", "unknown reclamation field; allowed: min_window")
			continue
		}
		seen = true
		s, ok := w.str(f.v, fp)
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(s)
		switch {
		case err != nil:
			w.errAt(f.v, fp, s, `must be a duration such as "24h" or "90m"`)
		case dur <= 0:
			w.errAt(f.v, fp, s, "must be a positive duration")
		case dur < minReclaimWindow || dur > maxReclaimWindow:
			w.errAt(f.v, fp, s, "must be between %v and %v (Akash's reclamation window bounds)", minReclaimWindow, maxReclaimWindow)
		default:
			r = &Reclamation{MinWindow: s, MinWindowSeconds: uint64(dur / time.Second)}
		}
	}
	if !seen {
		w.errAt(k, "reclamation.min_window", "", `reclamation needs min_window (e.g. "24h")`)
	}
	return r
}

func (w *walker) decodeCreds(n *yaml.Node, path string) *creds {
	if isNull(n) {
		return nil
	}
	c := &creds{}
	fields, ok := w.pairs(n, path)
	if !ok {
		return nil
	}
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "host":
			c.host, _ = w.str(f.v, fp)
		case "email":
			c.email, _ = w.str(f.v, fp)
		case "username":
			c.username, _ = w.str(f.v, fp)
		case "password":
			c.password, _ = w.str(f.v, fp)
		default:
			w.unknown(f.k, fp)
		}
	}
	return c
}

func (w *walker) decodeProfiles(n *yaml.Node, d *doc) {
	pairs, _ := w.pairs(n, "profiles")
	for _, p := range pairs {
		path := join("profiles", p.key)
		switch p.key {
		case "compute":
			profiles, _ := w.pairs(p.v, path)
			for _, cp := range profiles {
				d.compute[cp.key] = w.decodeCompute(cp.v, join(path, cp.key))
			}
		case "placement":
			profiles, _ := w.pairs(p.v, path)
			for _, pp := range profiles {
				d.placement[pp.key] = w.decodePlacement(pp.v, join(path, pp.key))
			}
		default:
			w.unknown(p.k, path)
		}
	}
}

func (w *walker) decodeCompute(n *yaml.Node, path string) *computeProfile {
	c := &computeProfile{node: resolve(n), path: path}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		if f.key != "resources" {
			w.unknown(f.k, fp)
			continue
		}
		if isNull(f.v) {
			continue
		}
		r := &computeResources{node: resolve(f.v), path: fp}
		c.resources = r
		res, _ := w.pairs(f.v, fp)
		for _, rf := range res {
			rp := join(fp, rf.key)
			switch rf.key {
			case "cpu":
				r.cpu = w.decodeCPU(rf.v, rp)
			case "gpu":
				r.gpu = w.decodeGPU(rf.v, rp)
			case "memory":
				r.memory = w.decodeMemory(rf.v, rp)
			case "storage":
				r.storageN = resolve(rf.v)
				r.storage = w.decodeStorage(rf.v, rp)
			default:
				w.unknown(rf.k, rp)
			}
		}
	}
	return c
}

func (w *walker) decodeCPU(n *yaml.Node, path string) *cpuRes {
	if isNull(n) {
		return nil
	}
	c := &cpuRes{node: resolve(n)}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "units":
			v := resolve(f.v)
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.ScalarNode {
				w.errAt(v, fp, "", "must be a number of CPUs, not %s", kindName(v))
				c.bad = true
				continue
			}
			milli, err := quantity.ParseCPU(v.Value)
			if err != nil {
				w.errAt(v, fp, v.Value, "%v", err)
				c.bad = true
				continue
			}
			c.milli = milli
		case "attributes":
			attrs, _ := w.pairs(f.v, fp)
			for _, a := range attrs {
				ap := join(fp, a.key)
				// Akash refuses any CPU attribute but arch.
				if a.key != "arch" {
					w.errAt(a.k, ap, "", "unsupported CPU attribute; only arch is allowed")
					continue
				}
				v, _ := w.str(a.v, ap)
				c.attrs = append(c.attrs, Attribute{Key: "arch", Value: v})
			}
		default:
			w.unknown(f.k, fp)
		}
	}
	return c
}

func (w *walker) decodeMemory(n *yaml.Node, path string) *memRes {
	if isNull(n) {
		return nil
	}
	m := &memRes{node: resolve(n)}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "size":
			var ok bool
			m.bytes, ok = w.size(f.v, fp, quantity.ParseBytes)
			m.bad = !ok
		case "attributes":
			// Akash's memory type has attributes `yaml:"-"`: never read.
			w.warnAt(f.k, fp, "memory attributes are ignored (as by Akash)")
		default:
			w.unknown(f.k, fp)
		}
	}
	return m
}

func (w *walker) size(n *yaml.Node, path string, parse func(string) (uint64, error)) (uint64, bool) {
	v := resolve(n)
	if isNull(v) {
		return 0, true
	}
	if v.Kind != yaml.ScalarNode {
		w.errAt(v, path, "", "must be %s, not %s", quantity.SizeHelp, kindName(v))
		return 0, false
	}
	b, err := parse(v.Value)
	if err != nil {
		// NB: Akash Console accepts sizes its Go CLI refuses; a file written
		// for Console is read as Console reads it, with a warning, rather
		// than refused.
		if canon, ok := quantity.Lenient(v.Value); ok {
			if lb, lerr := parse(canon); lerr == nil {
				w.warnAt(v, path, "size %q is read as %s (Akash Console accepts it, but Akash's Go CLI refuses it: suffixes are case-sensitive and have no B); write %s to keep the file portable", v.Value, canon, canon)
				return lb, true
			}
		}
		w.errAt(v, path, v.Value, "%v", err)
		return 0, false
	}
	return b, true
}

func (w *walker) decodeGPU(n *yaml.Node, path string) *gpuRes {
	if isNull(n) {
		return nil
	}
	g := &gpuRes{node: resolve(n), path: path}
	fields, ok := w.pairs(n, path)
	if !ok {
		return g
	}
	var attrsNode *yaml.Node
	hasAttrs := false
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "units":
			v := resolve(f.v)
			if isNull(v) {
				continue
			}
			u, err := strconv.ParseUint(scalarValue(v), 10, 64)
			if v.Kind != yaml.ScalarNode || err != nil {
				w.errAt(v, fp, scalarValue(v), "must be a whole number of GPUs (0-%d)", maxUnitGPU)
				continue
			}
			g.units = u
		case "attributes":
			attrsNode = resolve(f.v)
			if isNull(f.v) {
				continue
			}
			hasAttrs = w.decodeGPUAttributes(f.v, fp, g)
		default:
			// Akash refuses unknown keys here.
			w.errAt(f.k, fp, "", "unsupported GPU field; allowed: units, attributes")
		}
	}
	if g.units > 0 && !hasAttrs && len(g.attrs) == 0 {
		at := attrsNode
		if at == nil {
			at = g.node
		}
		w.errAt(at, join(path, "attributes"), "", "GPU attributes are required when units > 0 (e.g. attributes: {vendor: {nvidia: null}} for any NVIDIA model)")
	}
	return g
}

// decodeGPUAttributes reads gpu.attributes. It reports whether attributes
// were produced (errors aside).
func (w *walker) decodeGPUAttributes(n *yaml.Node, path string, g *gpuRes) bool {
	fields, ok := w.pairs(n, path)
	if !ok {
		return true // error already reported; do not add "required"
	}
	var vendorNode *yaml.Node
	for _, f := range fields {
		fp := join(path, f.key)
		if f.key != "vendor" {
			w.errAt(f.k, fp, "", "unsupported GPU attribute; only vendor is allowed")
			continue
		}
		vendorNode = f.v
	}
	if isNull(vendorNode) {
		w.errAt(resolve(n), join(path, "vendor"), "", "at least one GPU vendor must be set (e.g. vendor: {nvidia: null})")
		return true
	}
	vp := join(path, "vendor")
	vendors, ok := w.pairs(vendorNode, vp)
	if !ok {
		return true
	}
	for _, v := range vendors {
		np := join(vp, v.key)
		if v.key != "nvidia" {
			w.warnAt(v.k, np, "GPU vendor %q is ignored: Akash only reads nvidia", v.key)
			continue
		}
		items, _ := w.items(v.v, np)
		for i, it := range items {
			g.models = append(g.models, w.decodeGPUModel(it, np+"["+strconv.Itoa(i)+"]"))
		}
	}
	// Akash: no nvidia models listed means any NVIDIA GPU.
	if len(g.models) == 0 {
		g.models = []GPUModel{{Vendor: "nvidia", Model: "*"}}
	}
	seen := map[string]bool{}
	for _, m := range g.models {
		key := "vendor/nvidia/model/" + m.Model
		if m.RAM != "" {
			key += "/ram/" + m.RAM
		}
		if m.Interface != "" {
			key += "/interface/" + m.Interface
		}
		if !attrKeyRe.MatchString(key) {
			w.errAt(resolve(vendorNode), vp, m.Model, "GPU model makes an invalid attribute key %q; model names may use letters, digits, _ . - and /", key)
			continue
		}
		if seen[key] {
			w.errAt(resolve(vendorNode), vp, m.Model, "GPU model listed twice (%s)", key)
			continue
		}
		seen[key] = true
		g.attrs = append(g.attrs, Attribute{Key: key, Value: "true"})
	}
	sort.Slice(g.attrs, func(i, j int) bool { return g.attrs[i].Key < g.attrs[j].Key })
	return true
}

func (w *walker) decodeGPUModel(n *yaml.Node, path string) GPUModel {
	m := GPUModel{Vendor: "nvidia"}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "model":
			m.Model, _ = w.str(f.v, fp)
		case "ram":
			if isNull(f.v) {
				continue
			}
			if b, ok := w.size(f.v, fp, quantity.ParseBinaryBytes); ok {
				m.RAMBytes = b
				m.RAM = quantity.FormatGi(b)
			}
		case "interface":
			if isNull(f.v) {
				continue
			}
			v := resolve(f.v)
			switch v.Value {
			case "pcie", "sxm":
				m.Interface = v.Value
			default:
				w.errAt(v, fp, v.Value, "GPU interface must be pcie or sxm")
			}
		default:
			w.unknown(f.k, fp)
		}
	}
	if m.Model == "" {
		w.warnAt(resolve(n), join(path, "model"), "GPU model is empty; Akash accepts it but no provider advertises it")
	}
	return m
}

var allowedStorageClasses = map[string]bool{"default": true, "beta1": true, "beta2": true, "beta3": true, "ram": true}

func (w *walker) decodeStorage(n *yaml.Node, path string) []*volume {
	n = resolve(n)
	var vols []*volume
	switch {
	case isNull(n):
		return nil
	case n.Kind == yaml.SequenceNode:
		items, _ := w.items(n, path)
		for i, it := range items {
			v := w.decodeVolume(it, path+"["+strconv.Itoa(i)+"]")
			if v.name == "" {
				v.name, v.unnamed = "default", true
			}
			vols = append(vols, v)
		}
	case n.Kind == yaml.MappingNode:
		v := w.decodeVolume(n, path)
		// Akash names the single-mapping form "default" whatever it says.
		v.name, v.unnamed = "default", true
		vols = append(vols, v)
	default:
		// Akash silently ignores a scalar here and then refuses the missing
		// storage; say so directly.
		w.errAt(n, path, scalarValue(n), "must be a volume mapping or a list of volumes (e.g. storage: {size: 1Gi})")
		return nil
	}
	names := map[string]*volume{}
	for _, v := range vols {
		if prev, dup := names[v.name]; dup {
			if v.unnamed && prev.unnamed {
				w.errAt(v.node, v.path, "", "only one root ephemeral volume (a storage entry without a name) is allowed; name the others")
			} else {
				w.errAt(v.node, join(v.path, "name"), v.name, "duplicated volume name")
			}
			continue
		}
		names[v.name] = v
	}
	sortVolumes(vols)
	return vols
}

func (w *walker) decodeVolume(n *yaml.Node, path string) *volume {
	v := &volume{node: resolve(n), path: path}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "name":
			v.name, _ = w.str(f.v, fp)
		case "size":
			var ok bool
			v.bytes, ok = w.size(f.v, fp, quantity.ParseBytes)
			v.bad = !ok
		case "attributes":
			if isNull(f.v) {
				continue
			}
			w.decodeStorageAttributes(f.v, fp, v)
		default:
			w.unknown(f.k, fp)
		}
	}
	return v
}

// decodeStorageAttributes follows Akash's v2StorageAttributes.UnmarshalYAML
// step by step, including its order: the class rules look at persistent as
// written, before yes/on/no/off are normalised.
func (w *walker) decodeStorageAttributes(n *yaml.Node, path string, v *volume) {
	fields, ok := w.pairs(n, path)
	if !ok {
		return
	}
	v.hasAttrs = true
	raw := map[string]string{}
	nodes := map[string]*yaml.Node{}
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "persistent", "class":
			s, _ := w.str(f.v, fp)
			raw[f.key] = s
			nodes[f.key] = resolve(f.v)
		default:
			w.errAt(f.k, fp, "", "unsupported storage attribute; allowed: persistent, class")
		}
	}
	persistent, set := raw["persistent"]
	if !set {
		persistent = "false"
	}
	class := raw["class"]
	switch class {
	case "":
		if persistent == "true" {
			class = "default"
		}
	case "ram":
		if persistent != "false" {
			w.errAt(nodes["persistent"], join(path, "persistent"), persistent, "storage class ram (shared memory) cannot be persistent")
		}
	default:
		if persistent == "false" {
			at := nodes["class"]
			w.errAt(at, join(path, "class"), class, "an ephemeral volume must not set a class; set persistent: true or remove class")
		}
	}
	switch persistent {
	case "true", "on", "yes":
		v.persistent = true
	case "false", "off", "no":
	default:
		w.errAt(nodes["persistent"], join(path, "persistent"), persistent, "must be true or false")
	}
	if class != "" && !allowedStorageClasses[class] {
		w.errAt(nodes["class"], join(path, "class"), class, "unknown storage class; allowed: default, beta1, beta2, beta3, ram")
	}
	v.class = class
}

// sortVolumes orders volumes as Akash does: by size, then those without a
// persistent attribute first, then persistent=false first, then by name.
func sortVolumes(vols []*volume) {
	sort.SliceStable(vols, func(i, j int) bool {
		a, b := vols[i], vols[j]
		if a.bytes != b.bytes {
			return a.bytes < b.bytes
		}
		// NB: Akash compares the persistent attribute's string here
		// ("false" < "true"); an absent attribute sorts first.
		ap, bp := boolStr(a.hasAttrs, a.persistent), boolStr(b.hasAttrs, b.persistent)
		if ap == "" && bp != "" || ap != "" && bp != "" && ap < bp {
			return true
		}
		if ap != "" && bp == "" {
			return false
		}
		if !a.persistent {
			return true
		}
		if !b.persistent {
			return false
		}
		return a.name < b.name
	})
}

func boolStr(has, v bool) string {
	if !has {
		return ""
	}
	return strconv.FormatBool(v)
}

func (w *walker) decodePlacement(n *yaml.Node, path string) *placementProfile {
	p := &placementProfile{node: resolve(n), path: path, pricing: map[string]*price{}}
	fields, _ := w.pairs(n, path)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "attributes":
			// Akash reads null as no attributes.
			attrs, _ := w.pairs(f.v, fp)
			for _, a := range attrs {
				v, _ := w.str(a.v, join(fp, a.key))
				p.attrs = append(p.attrs, Attribute{Key: a.key, Value: v})
			}
			sort.Slice(p.attrs, func(i, j int) bool { return p.attrs[i].Key < p.attrs[j].Key })
		case "signedBy":
			sb, _ := w.pairs(f.v, fp)
			for _, s := range sb {
				sp := join(fp, s.key)
				switch s.key {
				case "allOf":
					p.signedBy.AllOf, _ = w.strs(s.v, sp)
				case "anyOf":
					p.signedBy.AnyOf, _ = w.strs(s.v, sp)
				default:
					w.unknown(s.k, sp)
				}
			}
		case "pricing":
			prices, _ := w.pairs(f.v, fp)
			for _, pr := range prices {
				p.pricing[pr.key] = w.decodePrice(pr.v, join(fp, pr.key))
			}
		default:
			w.unknown(f.k, fp)
		}
	}
	return p
}

func (w *walker) decodePrice(n *yaml.Node, path string) *price {
	p := &price{node: resolve(n), path: path}
	fields, ok := w.pairs(n, path)
	if !ok {
		return p
	}
	var amountNode, denomNode *yaml.Node
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "amount":
			p.coin.Amount, _ = w.str(f.v, fp)
			amountNode = resolve(f.v)
		case "denom":
			p.coin.Denom, _ = w.str(f.v, fp)
			denomNode = resolve(f.v)
		default:
			w.unknown(f.k, fp)
		}
	}
	if amountNode == nil {
		amountNode = p.node
	}
	if denomNode == nil {
		denomNode = p.node
	}
	amt := strings.TrimSpace(p.coin.Amount)
	switch {
	case !decRe.MatchString(amt):
		w.errAt(amountNode, join(path, "amount"), p.coin.Amount, "must be a decimal number with at most 18 decimals (e.g. 1000 or 0.5)")
	case strings.HasPrefix(amt, "-") && !isZeroDec(amt):
		w.errAt(amountNode, join(path, "amount"), p.coin.Amount, "must not be negative")
	case isZeroDec(amt):
		w.errAt(amountNode, join(path, "amount"), p.coin.Amount, "must be greater than zero")
	}
	p.coin.Amount = strings.TrimPrefix(amt, "+")
	if !denomRe.MatchString(p.coin.Denom) {
		w.errAt(denomNode, join(path, "denom"), p.coin.Denom, "must be a denomination such as uact, uakt or ibc/<hash>")
	}
	return p
}

func isZeroDec(s string) bool {
	return strings.Trim(s, "+-0.") == ""
}

func (w *walker) decodeDeployment(n *yaml.Node, d *doc) {
	svcs, _ := w.pairs(n, "deployment")
	for _, s := range svcs {
		path := join("deployment", s.key)
		d.deplNodes[s.key] = s.k
		placements, _ := w.pairs(s.v, path)
		m := map[string]*svcDeployment{}
		d.deployment[s.key] = m
		for _, p := range placements {
			pp := join(path, p.key)
			sd := &svcDeployment{node: resolve(p.v), path: pp}
			m[p.key] = sd
			fields, _ := w.pairs(p.v, pp)
			for _, f := range fields {
				fp := join(pp, f.key)
				switch f.key {
				case "profile":
					sd.profile, _ = w.str(f.v, fp)
					sd.profileNode = resolve(f.v)
				case "count":
					sd.count, _ = w.uint32(f.v, fp, "a whole number of instances 1-50")
					sd.countNode = resolve(f.v)
				default:
					w.unknown(f.k, fp)
				}
			}
		}
	}
}

func (w *walker) decodeEndpoints(n *yaml.Node, d *doc) {
	d.endpointsN = resolve(n)
	eps, _ := w.pairs(n, "endpoints")
	for _, e := range eps {
		path := join("endpoints", e.key)
		ep := &endpointDecl{key: e.k, path: path}
		d.endpoints[e.key] = ep
		fields, _ := w.pairs(e.v, path)
		for _, f := range fields {
			fp := join(path, f.key)
			if f.key != "kind" {
				w.unknown(f.k, fp)
				continue
			}
			ep.kind, _ = w.str(f.v, fp)
		}
	}
}
