// Package tenant is the tenant's side of Kiln: it turns a Kiln spec or an Akash SDL file
// into orders, places them, follows bids and leases, and talks to the provider over
// mutual TLS to send the manifest and inputs and fetch outputs.
package tenant

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/vault"
	"github.com/kiln-network/kiln/types"
	"github.com/kiln-network/kiln/x/market"
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
	// Pricing and Fill are the order's pricing mode and (order book) fill policy.
	Pricing, Fill string
	// Session makes a sealed-bid order a session (duration, client location, RTT).
	Session *market.Session
	// Inputs are local files uploaded before the manifest is sent.
	Inputs []string
	// Images maps a service name to a local `docker save` archive, uploaded
	// before the manifest; the service's image is then the loaded image's ID.
	Images map[string]string
	// Source is "kiln" or "sdl".
	Source string
	// TEE is the confidential-compute type the order needs (sdl.TEECPU,
	// sdl.TEECPUGPU: SDL params.tee, or the Kiln spec's tee); "" when none.
	TEE string
	// AllowedMeasurements are the launch measurements (hex) the tenant accepts of a
	// TEE provider (Kiln spec allowed_measurements); empty: any attested one.
	AllowedMeasurements []string
	// ReclaimMinWindowSeconds, when not 0, says the tenant accepts a reclaimable
	// lease that runs at least this long (SDL reclamation.min_window).
	ReclaimMinWindowSeconds uint64
	// Cluster makes the order a GPU cluster (Kiln spec cluster:, or an SDL
	// placement with the kiln-cluster attribute): every member runs Manifest.
	Cluster *market.Cluster
}

// Msg is the order plan p places for owner.
func (p Plan) Msg(owner types.Address) *market.MsgCreateOrder {
	return &market.MsgCreateOrder{Owner: owner, Kind: p.Kind, Groups: p.Groups, MaxPrice: p.MaxPrice,
		Deposit: p.Deposit, Manual: p.Manual, AutoRedeploy: p.AutoRedeploy, Mode: p.Pricing, Fill: p.Fill, Session: p.Session, ReclaimWindowSeconds: p.ReclaimMinWindowSeconds,
		TEE: p.TEE, AllowedMeasurements: p.AllowedMeasurements, Cluster: p.Cluster}
}

// DefaultDepositBlocks is how many blocks at max price a deposit covers when the spec
// names none: 600 one-second blocks, ten minutes.
const DefaultDepositBlocks = 600

// Spec is the Kiln YAML deployment spec: an order (OrderSpec: kind, max_price,
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
	OrderSpec `yaml:",inline"`
	Services  []ServiceSpec `yaml:"services"`
	Inputs    []string      `yaml:"inputs"`
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
// Files a Kiln spec names (inputs, image archives) must lie in the spec's directory
// or below it. A file over MaxSpecBytes is refused; so is a Kiln spec over
// MaxSpecNodes nodes or with a mapping of more than MaxSpecMapEntries entries.
func Load(path string) ([]Plan, []string, error) {
	b, err := readSpecFile(path)
	if err != nil {
		return nil, nil, err
	}
	top, err := parseYAMLNode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	// An SDL file has version/profiles/deployment; a Kiln spec has groups instead.
	var plans []Plan
	var warnings []string
	sdl := false
	if top != nil && top.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(top.Content); i += 2 {
			switch top.Content[i].Value {
			case "version", "profiles", "deployment":
				sdl = true
			}
		}
	}
	if sdl {
		if plans, warnings, err = loadSDL(path, b); err != nil {
			return nil, nil, err
		}
	} else {
		dir, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		p, err := parseSpec(b, dir)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		plans = []Plan{p}
	}
	for i := range plans {
		markContainers(&plans[i])
		warnings = append(warnings, tagWarnings(plans[i])...)
	}
	return plans, warnings, nil
}

// parseSpec parses a Kiln spec whose files are relative to dir (absolute).
func parseSpec(b []byte, dir string) (Plan, error) {
	var sp Spec
	if err := decodeSpec(b, &sp); err != nil {
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
	p := Plan{Kind: msg.Kind, Groups: msg.Groups, MaxPrice: msg.MaxPrice, Manual: msg.Manual, AutoRedeploy: msg.AutoRedeploy, Pricing: msg.Mode, Fill: msg.Fill, Source: "kiln",
		TEE: msg.TEE, AllowedMeasurements: msg.AllowedMeasurements, Cluster: msg.Cluster}
	if p.ReclaimMinWindowSeconds, err = sp.ReclaimSeconds(); err != nil {
		return Plan{}, err
	}
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
			Resources: serviceResources(api.UnitID(gi), g)}
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
			path, err := specFile(dir, f+".image_archive", ss.ImageArchive)
			if err != nil {
				return Plan{}, err
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
	named := map[string]string{} // upload name -> the entry that claimed it
	for i, in := range sp.Inputs {
		f := fmt.Sprintf("inputs[%d]", i)
		path, err := specFile(dir, f, in)
		if err != nil {
			return Plan{}, err
		}
		// The provider stores an input under its base name, where the job reads it
		// ($KILN_IN/NAME): two entries with one base name would overwrite each other.
		name := filepath.Base(path)
		if err := vault.ValidateName(name); err != nil {
			return Plan{}, fmt.Errorf("%s: %q: the file name %q cannot be an input name: it must match %s", f, in, name, vault.NamePattern)
		}
		if prev, ok := named[name]; ok {
			return Plan{}, fmt.Errorf("%s: %q and %s are both uploaded as %s; rename one", f, in, prev, name)
		}
		named[name] = fmt.Sprintf("%s %q", f, in)
		p.Inputs = append(p.Inputs, path)
	}
	return p, nil
}

// specFile resolves a file a spec names (field f, entry as written) under the spec's
// directory dir (absolute). An absolute path, a path that leaves dir ("..") or a
// symbolic link that leads out of it is refused, naming the entry: a spec shared with
// you must not upload your other files, such as ~/.ssh keys or /etc/passwd. The file
// must be a regular file. It returns the file's absolute path, whose base name is the
// entry's.
func specFile(dir, f, entry string) (string, error) {
	if entry == "" {
		return "", fmt.Errorf("%s: empty file name", f)
	}
	if filepath.IsAbs(entry) || filepath.VolumeName(entry) != "" {
		return "", fmt.Errorf("%s: %q is an absolute path; name files relative to the spec's directory %s", f, entry, dir)
	}
	clean := filepath.Clean(entry)
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("%s: %q leaves the spec's directory %s; only files in it or below it may be uploaded", f, entry, dir)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("%s: open the spec's directory: %w", f, err)
	}
	defer root.Close()
	// NB: os.Root follows symbolic links only while they stay inside dir.
	fi, err := root.Stat(clean)
	if err != nil {
		if _, lerr := root.Lstat(clean); lerr == nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: %q is a symbolic link that leads out of the spec's directory %s; only files in it may be uploaded", f, entry, dir)
		}
		return "", fmt.Errorf("%s: %q: %w", f, entry, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: %q is a %s, not a regular file", f, entry, vault.EntryKind(fi.Mode()))
	}
	return filepath.Join(dir, clean), nil
}

// deposit is the order's deposit: s if set, otherwise DefaultDepositBlocks at
// maxPrice, refused where that does not fit in a uint64.
func deposit(s string, maxPrice uint64) (types.Coin, error) {
	if s == "" {
		hi, amount := bits.Mul64(maxPrice, DefaultDepositBlocks)
		if hi != 0 {
			return types.Coin{}, fmt.Errorf("max_price: %dukiln per block is too high for the default deposit (%d blocks at max price does not fit in 64 bits); the most it allows is %dukiln per block: lower max_price or set deposit",
				maxPrice, DefaultDepositBlocks, uint64(math.MaxUint64)/DefaultDepositBlocks)
		}
		return types.NewCoin(types.NativeDenom, amount), nil
	}
	c, err := types.ParseCoin(s)
	if err != nil || c.Denom != types.NativeDenom || c.Amount == 0 {
		return c, fmt.Errorf("deposit: want a positive amount of ukiln like 1000000ukiln (got %q)", s)
	}
	return c, nil
}
