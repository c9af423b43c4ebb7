package tenant

// markContainers sets Containers on every group a service of the plan runs a
// container image in (named, or uploaded as an archive), so that the order is only
// leased to a provider whose runtime runs containers. Service unit n is group n-1;
// unit 0 is the only group.
func markContainers(p *Plan) {
	for _, s := range p.Manifest.Services {
		if _, archive := p.Images[s.Name]; s.Image == "" && !archive {
			continue
		}
		i := 0
		if s.Resources.Unit > 0 {
			i = int(s.Resources.Unit) - 1
		}
		if i < len(p.Groups) {
			p.Groups[i].Containers = true
		}
	}
}
