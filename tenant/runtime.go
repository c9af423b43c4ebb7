package tenant

import (
	"fmt"

	"github.com/kiln-network/kiln/provider/api"
	"github.com/kiln-network/kiln/provider/imageref"
)

// markContainers sets Containers on every group a service of the plan runs a
// container image in (named, or uploaded as an archive), so that the order is only
// leased to a provider whose runtime runs containers. A service's unit names its
// group (api.GroupIndex); unit 0 is the only group.
func markContainers(p *Plan) {
	for _, s := range p.Manifest.Services {
		if _, archive := p.Images[s.Name]; s.Image == "" && !archive {
			continue
		}
		i, ok := api.GroupIndex(s.Resources.Unit)
		if !ok {
			i = 0 // unit 0: the only group
		}
		if i < len(p.Groups) {
			p.Groups[i].Containers = true
		}
	}
}

// tagWarnings warns of services naming an image by tag: providers run only images
// uploaded to the lease or pinned by digest from a registry they allow
// (provider/imageref), so such a manifest would be refused after the lease is made.
func tagWarnings(p Plan) []string {
	var out []string
	for _, s := range p.Manifest.Services {
		if _, archive := p.Images[s.Name]; s.Image == "" || archive || imageref.Pinned(s.Image) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: service %s: image %q is named by tag: providers run only images pinned by digest (name@sha256:…) from registries they allow, or uploaded with image_archive; pin it, or the provider will refuse the manifest (image_not_allowed) and the order is closed with a refund",
			p.Name, s.Name, s.Image))
	}
	return out
}
